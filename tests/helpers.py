"""Shared test helpers: device parametrisation and error measures."""

import pytest
import torch

CUDA = pytest.param(
    "cuda",
    marks=[pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")],
)
DEVICES = ["cpu", CUDA]
CUDA_ONLY = [CUDA]  # for @pytest.mark.parametrize("device", CUDA_ONLY, indirect=True): tests of CUDA-only behaviour


def rel_err(actual: torch.Tensor, expected: torch.Tensor) -> float:
    """max |actual - expected| / max |expected|, computed in float64."""
    expected = expected.double()
    return ((actual.double() - expected).abs().max() / expected.abs().max().clamp_min(1e-30)).item()


def max_err(actual: torch.Tensor, expected: torch.Tensor) -> float:
    return (actual.double() - expected.double()).abs().max().item()


def assert_rel_close(actual: torch.Tensor, expected: torch.Tensor, tol: float, name: str = "") -> None:
    """rel_err <= tol; a reference that is zero up to float64 rounding (e.g. dK for a single key, whose
    softmax gradient vanishes) is instead compared absolutely, at tol."""
    if expected.abs().max().item() < 1e-10:
        assert max_err(actual, expected) <= tol, name
    else:
        assert rel_err(actual, expected) <= tol, name


# What the attention kernels take, per device type. The CPU kernels take float32, bfloat16 and float16 at
# any head_dim <= 256 (computing in float32); the CUDA kernels, like FlashAttention, take only bfloat16 /
# float16 at head_dim 64 or 128 and raise ValueError otherwise. Stated here independently of the library.
CPU_DTYPES = (torch.float32, torch.bfloat16, torch.float16)
CPU_MAX_HEAD_DIM = 256
CUDA_DTYPES = (torch.bfloat16, torch.float16)
CUDA_HEAD_DIMS = (64, 128)
LOW_PRECISION_DTYPES = (torch.bfloat16, torch.float16)


def _device_type(device) -> str:
    return torch.device(device).type


def supported_dtypes(device) -> tuple[torch.dtype, ...]:
    """Dtypes the attention kernels take on `device`; the first is the one device-generic tests use."""
    return CUDA_DTYPES if _device_type(device) == "cuda" else CPU_DTYPES


def supported_head_dims(device) -> tuple[int, ...]:
    """Head dims the attention kernels take on `device`."""
    return CUDA_HEAD_DIMS if _device_type(device) == "cuda" else tuple(range(1, CPU_MAX_HEAD_DIM + 1))


def device_dtype_params() -> list:
    """pytest params (device, dtype): every device of DEVICES with every dtype its kernels take, the CUDA ones
    carrying the cuda marks (skipped without CUDA). Use as
    ``@pytest.mark.parametrize("device,dtype", device_dtype_params(), indirect=["device"])``."""
    params = []
    for device in DEVICES:
        name, marks = (device.values[0], device.marks) if isinstance(device, type(CUDA)) else (device, ())
        for dtype in supported_dtypes(name):
            params.append(pytest.param(name, dtype, marks=marks, id=f"{name}-{str(dtype).removeprefix('torch.')}"))
    return params


def split_nonfinite(actual: torch.Tensor, expected: torch.Tensor, name: str = "") -> tuple[torch.Tensor, torch.Tensor]:
    """Asserts that actual is non-finite exactly where expected is, with the same values there (an lse of -inf
    for a query that sees no key), and returns the finite parts of both, as float64."""
    actual, expected = actual.detach().double(), expected.detach().double().to(actual.device)
    finite = torch.isfinite(expected)
    assert torch.equal(torch.isfinite(actual), finite), f"{name}: non-finite at other positions than the reference"
    assert torch.equal(actual[~finite], expected[~finite]), f"{name}: other non-finite values than the reference"
    return actual[finite], expected[finite]


def assert_within_twice_composition_error(actual: torch.Tensor, baseline: torch.Tensor, expected: torch.Tensor,
                                          name: str = "") -> None:
    """FlashAttention's rule for low-precision kernels: max|actual - expected| <= 2 * max|baseline - expected|,
    where expected is the float64 reference and baseline the plain PyTorch composition run in the kernel's
    dtype on the same inputs. Non-finite entries must match the reference exactly (split_nonfinite).

    Where the reference is zero up to float64 rounding (a gradient that vanishes in exact arithmetic, e.g.
    dK of a key that is the only one its queries see), the rule is degenerate (the composition can be
    exactly 0 while a float32 accumulator leaves ~1e-7), so there the kernel must instead stay within one
    unit of its dtype's rounding at unit scale (the tests' inputs are unit normal; a wrong kernel is O(1)).
    """
    got, ref = split_nonfinite(actual, expected, name)
    base, base_ref = split_nonfinite(baseline, expected, f"{name} (PyTorch composition)")
    err = (got - ref).abs().max().item() if ref.numel() else 0.0
    if ref.numel() == 0 or ref.abs().max().item() < 1e-10:
        bound = torch.finfo(actual.dtype).eps if actual.dtype.is_floating_point else 0.0
        assert err <= bound, f"{name}: reference is 0, kernel max |value| {err:.3g} > {bound:.3g}"
        return
    base_err = (base - base_ref).abs().max().item()
    assert err <= 2 * base_err, (f"{name}: max error {err:.3g} > 2 x {base_err:.3g} (the PyTorch composition's, "
                                 f"in {actual.dtype})")
