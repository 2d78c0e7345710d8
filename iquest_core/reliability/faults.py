"""Fault injection: single-bit flips in parameters, gradients, activations or optimizer state at a
chosen step and run of an `SDCGuard` (run 0: the step itself, 1 and 2: its replays).

Each fault models a silent error during one run: parameter and optimizer-state flips are applied
before the run and undone once its fingerprints are taken (a wrong value read during that run);
gradient flips are applied to the run's gradients after backward; activation flips to the output of
the named module, on every call of that module during the run."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from iquest_core.reliability.guard import RunHooks, SDCGuard
from iquest_core.reliability.state import optimizer_tensors

TARGETS = ("param", "grad", "activation", "optimizer")
_BITS_VIEW = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}


def field_bits(dtype: torch.dtype) -> dict[str, range]:
    """Bit positions (0 = least significant) of each field of an element: sign / exponent / mantissa for
    floating dtypes, sign / value for signed integers, value for unsigned integers and bool."""
    bits = torch.empty(0, dtype=dtype).element_size() * 8
    if dtype.is_floating_point:
        mantissa = round(-torch.log2(torch.tensor(torch.finfo(dtype).eps, dtype=torch.float64)).item())
        sign = range(bits - 1, bits) if torch.finfo(dtype).min < 0 else range(0)
        return {"sign": sign, "exponent": range(mantissa, bits - len(sign)), "mantissa": range(0, mantissa)}
    if dtype.is_signed:
        return {"sign": range(bits - 1, bits), "value": range(0, bits - 1)}
    return {"value": range(0, bits)}


def bit_field(dtype: torch.dtype, bit: int) -> str:
    """The field of `field_bits(dtype)` that holds `bit`."""
    for name, bits in field_bits(dtype).items():
        if bit in bits:
            return name
    raise ValueError(f"bit: expected 0 <= bit < {torch.empty(0, dtype=dtype).element_size() * 8}, got {bit}")


def flip_bit(t: torch.Tensor, index: int, bit: int) -> None:
    """Flips bit `bit` of element `index` (row-major flat index) of t in place, bypassing autograd."""
    if not t.is_contiguous():
        raise ValueError("t: expected a contiguous tensor")
    if not 0 <= index < t.numel():
        raise ValueError(f"index: expected 0 <= index < {t.numel()}, got {index}")
    bits = t.element_size() * 8
    if not 0 <= bit < bits:
        raise ValueError(f"bit: expected 0 <= bit < {bits}, got {bit}")
    mask = 1 << bit
    if mask >= 2 ** (bits - 1) and bits > 8:
        mask -= 2**bits  # the signed view's bit pattern
    flat = t.detach().reshape(-1).view(_BITS_VIEW[t.element_size()])
    flat[index] ^= mask


@dataclass(frozen=True)
class Fault:
    """A single-bit flip. name: a parameter name (target "param" or "grad"), a module name
    ("activation"; the flip lands in the module's first output tensor, index taken modulo its size) or
    an optimizer state name "state.<index>.<key>" ("optimizer")."""

    target: str
    name: str
    index: int
    bit: int
    step: int
    run: int = 0


class FaultInjector(RunHooks):
    """Applies scheduled faults to the runs of `guard`'s steps; `applied` lists the faults in the order
    they took effect."""

    def __init__(self, guard: SDCGuard):
        if not isinstance(guard, SDCGuard):
            raise ValueError(f"guard: expected an SDCGuard, got {type(guard).__name__}")
        self.guard = guard
        self.pending: list[Fault] = []
        self.applied: list[Fault] = []
        self._undo: list[tuple[torch.Tensor, int, int]] = []
        self._handles: list = []
        guard.hooks.append(self)

    def remove(self) -> None:
        """Detaches the injector from the guard."""
        self.guard.hooks.remove(self)

    def schedule(self, fault: Fault) -> None:
        """Queues a fault; checks that its target tensor (or module) exists and the bit is in range
        (activation bits are checked when the output is known)."""
        if fault.target not in TARGETS:
            raise ValueError(f"fault.target: expected one of {TARGETS}, got {fault.target!r}")
        if fault.run not in (0, 1, 2):
            raise ValueError(f"fault.run: expected 0 (the step), 1 or 2 (replays), got {fault.run}")
        if fault.target == "activation":
            if fault.name not in dict(self.guard.model.named_modules()):
                raise ValueError(f"fault.name: expected a submodule name of the model, got {fault.name!r}")
        else:
            t = self._tensor(fault)
            bits = t.element_size() * 8
            if not 0 <= fault.bit < bits:
                raise ValueError(f"fault.bit: expected 0 <= bit < {bits}, got {fault.bit}")
            if not 0 <= fault.index < t.numel():
                raise ValueError(f"fault.index: expected 0 <= index < {t.numel()}, got {fault.index}")
        self.pending.append(fault)

    def _tensor(self, fault: Fault) -> torch.Tensor:
        if fault.target in ("param", "grad"):
            if fault.name not in self.guard.params:
                raise ValueError(f"fault.name: expected a parameter name of the model, got {fault.name!r}")
            # A gradient has its parameter's dtype and shape; it exists only once the run's backward is done.
            return self.guard.params[fault.name]
        if self.guard.optimizer is None:
            raise ValueError("fault.target: 'optimizer' needs a guard constructed with an optimizer")
        state = optimizer_tensors(self.guard.optimizer)
        if fault.name not in state:
            example = next(iter(state), "state.0.exp_avg")
            raise ValueError(f"fault.name: expected an optimizer state name like {example!r}, got {fault.name!r}")
        return state[fault.name]

    def _due(self, step: int, run: int, targets: tuple[str, ...]) -> list[Fault]:
        due = [f for f in self.pending if f.step == step and f.run == run and f.target in targets]
        for f in due:
            self.pending.remove(f)
            self.applied.append(f)
        return due

    def before_run(self, step: int, run: int) -> None:
        for f in self._due(step, run, ("param", "optimizer")):
            t = self._tensor(f)
            flip_bit(t, f.index, f.bit)
            self._undo.append((t, f.index, f.bit))
        modules = dict(self.guard.model.named_modules())
        for f in self._due(step, run, ("activation",)):
            self._handles.append(modules[f.name].register_forward_hook(self._activation_flip(f), prepend=True))

    def after_backward(self, step: int, run: int) -> None:
        for f in self._due(step, run, ("grad",)):
            grad = self.guard.params[f.name].grad
            if grad is None:
                raise ValueError(f"fault.name: parameter {f.name!r} got no gradient in step {step}")
            flip_bit(grad, f.index, f.bit)

    def after_fingerprint(self, step: int, run: int) -> None:
        for t, index, bit in reversed(self._undo):
            flip_bit(t, index, bit)
        self._undo.clear()
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    @staticmethod
    def _activation_flip(fault: Fault):
        def hook(module, args, output):
            first = output if isinstance(output, torch.Tensor) else output[0]
            if not isinstance(first, torch.Tensor):
                raise ValueError(f"fault.name: module {fault.name!r} returns neither a tensor nor a tuple/list "
                                 "starting with one")
            flipped = first.clone()
            flip_bit(flipped, fault.index % flipped.numel(), fault.bit)
            return flipped if first is output else type(output)([flipped, *output[1:]])
        return hook
