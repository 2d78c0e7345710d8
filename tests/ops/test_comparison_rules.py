"""The comparison rules of tests.helpers that judge the kernels are not vacuous: they fail where they should."""

import pytest
import torch

from tests.helpers import assert_within_twice_composition_error, device_dtype_params, split_nonfinite


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_twice_composition_rule(dtype):
    expected = torch.randn(64, 32, dtype=torch.float64)
    baseline = expected.to(dtype)  # error: the dtype's rounding, at most half a unit
    base_err = (baseline.double() - expected).abs().max().item()
    assert base_err > 0
    assert_within_twice_composition_error(baseline, baseline, expected, "same error")
    close = expected.clone()
    close.view(-1)[0] += 1.9 * base_err
    assert_within_twice_composition_error(close.to(torch.float32), baseline, expected, "1.9x")
    far = expected.clone()
    far.view(-1)[torch.randint(far.numel(), ())] += 2.5 * base_err
    with pytest.raises(AssertionError, match="far"):
        assert_within_twice_composition_error(far.to(torch.float32), baseline, expected, "far")


def test_twice_composition_rule_where_the_reference_vanishes():
    expected = torch.randn(16, 8, dtype=torch.float64) * 1e-14  # zero up to float64 rounding
    exact = torch.zeros(16, 8, dtype=torch.bfloat16)
    assert_within_twice_composition_error(exact + 1e-6, exact, expected, "float32 noise")
    with pytest.raises(AssertionError, match="reference is 0"):
        assert_within_twice_composition_error(exact + 0.05 * torch.rand(()).item() + 0.01, exact, expected, "wrong")


def test_nonfinite_entries_must_match():
    expected = torch.randn(3, 10, dtype=torch.float64)
    expected[:, :4] = float("-inf")
    same = expected.float()
    got, ref = split_nonfinite(same, expected)
    assert got.numel() == ref.numel() == 18
    finite_there = same.clone()
    finite_there[1, 2] = 0.0
    with pytest.raises(AssertionError, match="non-finite at other positions"):
        split_nonfinite(finite_there, expected)
    wrong_sign = same.clone()
    wrong_sign[0, 0] = float("inf")
    with pytest.raises(AssertionError, match="other non-finite values"):
        split_nonfinite(wrong_sign, expected)


def test_device_dtype_params_cover_every_device_and_its_dtypes():
    params = {(p.values[0], p.values[1]): p for p in device_dtype_params()}
    assert set(params) == {("cpu", torch.float32), ("cpu", torch.bfloat16), ("cpu", torch.float16),
                           ("cuda", torch.bfloat16), ("cuda", torch.float16)}
    for (device, _), param in params.items():
        assert any(m.name == "cuda" for m in param.marks) == (device == "cuda")
