"""What a deterministic replay of a training step needs: the RNG states to restore and the
deterministic-algorithms mode to run under."""

from __future__ import annotations

import contextlib
import os
import random
from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class RngState:
    """The states of torch's CPU and CUDA generators, Python's `random` and numpy's global generator."""

    torch_cpu: torch.Tensor
    torch_cuda: list[torch.Tensor] | None
    python: object
    numpy: object

    @classmethod
    def capture(cls) -> RngState:
        cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None
        return cls(torch.get_rng_state(), cuda, random.getstate(), np.random.get_state())

    def restore(self) -> None:
        torch.set_rng_state(self.torch_cpu)
        if self.torch_cuda is not None:
            torch.cuda.set_rng_state_all(self.torch_cuda)
        random.setstate(self.python)
        np.random.set_state(self.numpy)


def enable_deterministic_cublas() -> None:
    """Sets CUBLAS_WORKSPACE_CONFIG (unless set), which deterministic cuBLAS needs; it takes effect only
    if cuBLAS has not been initialised yet in this process."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")


@contextlib.contextmanager
def deterministic_algorithms():
    """Runs the body with torch.use_deterministic_algorithms(True) and deterministic cuDNN, then
    restores the previous settings."""
    before = (torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),
              torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before[0], warn_only=before[1])
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = before[2], before[3]
