"""Names -> digests of a model's parameters, gradients and buffers and of an optimizer's state.

Naming: parameters and buffers under their `named_parameters` / `named_buffers` names, gradients
under "<parameter name>.grad", optimizer state under "state.<index>.<key>" where index is the
parameter's position in `optimizer.state_dict()["state"]` (param_groups order)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch.distributed.tensor import DTensor

from iquest_core.reliability.fingerprint import fingerprint_many


def digests_of(tensors: list[torch.Tensor]) -> torch.Tensor:
    """(n, 2) digests of tensors that may live on several devices: one launch per device. The result
    is on the tensors' device when they share one (no synchronisation), else on the CPU. A DTensor is
    fingerprinted on its local shard (what this rank holds)."""
    tensors = [t.to_local() if isinstance(t, DTensor) else t for t in tensors]
    devices = {t.device for t in tensors}
    if len(devices) <= 1:
        return fingerprint_many(tensors)
    out = torch.empty(len(tensors), 2, dtype=torch.int64)
    for device in devices:
        rows = [i for i, t in enumerate(tensors) if t.device == device]
        out[rows] = fingerprint_many([tensors[i] for i in rows]).cpu()
    return out


def fingerprint_named(tensors: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """name -> (2,) int64 CPU digest of each tensor."""
    digests = digests_of(list(tensors.values())).cpu()
    return dict(zip(tensors, digests.unbind(0)))


def module_tensors(model: torch.nn.Module, *, params: bool = True, grads: bool = True,
                   buffers: bool = True) -> dict[str, torch.Tensor]:
    """The model's tensors under the names of this module's docstring (gradients only where set)."""
    if not isinstance(model, torch.nn.Module):
        raise ValueError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
    out: dict[str, torch.Tensor] = {}
    for name, p in model.named_parameters():
        if params:
            out[name] = p
        if grads and p.grad is not None:
            out[f"{name}.grad"] = p.grad
    if buffers:
        out.update(model.named_buffers())
    return out


def optimizer_tensors(optimizer: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
    """The optimizer's per-parameter state: tensors as they are, Python numbers as 0-dim tensors."""
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise ValueError(f"optimizer: expected a torch.optim.Optimizer, got {type(optimizer).__name__}")
    out: dict[str, torch.Tensor] = {}
    for index, state in optimizer.state_dict()["state"].items():
        for key, value in state.items():
            out[f"state.{index}.{key}"] = value if isinstance(value, torch.Tensor) else torch.as_tensor(value)
    return out


def fingerprint_module(model: torch.nn.Module, *, params: bool = True, grads: bool = True,
                       buffers: bool = True) -> dict[str, torch.Tensor]:
    """name -> (2,) int64 CPU digest of the model's parameters, gradients and buffers."""
    return fingerprint_named(module_tensors(model, params=params, grads=grads, buffers=buffers))


def fingerprint_optimizer(optimizer: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
    """name -> (2,) int64 CPU digest of the optimizer's per-parameter state ("state.<index>.<key>")."""
    return fingerprint_named(optimizer_tensors(optimizer))


def same_bits(a: Sequence[torch.Tensor], b: Sequence[torch.Tensor]) -> bool:
    """Whether two lists of tensors are bitwise equal, pair by pair: same dtype, shape and bytes (torch.equal
    of byte views, so a NaN equals the same NaN and -0.0 differs from 0.0)."""
    if len(a) != len(b):
        return False
    for x, y in zip(a, b):
        if x.dtype != y.dtype or x.shape != y.shape:
            return False
        if not torch.equal(x.detach().contiguous().reshape(-1).view(torch.uint8),
                           y.detach().contiguous().reshape(-1).view(torch.uint8)):
            return False
    return True
