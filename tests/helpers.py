"""Shared test helpers: device parametrisation and error measures."""

import pytest
import torch

CUDA = pytest.param(
    "cuda",
    marks=[pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")],
)
DEVICES = ["cpu", CUDA]


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
