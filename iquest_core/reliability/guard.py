"""`SDCGuard`: runs training steps under deterministic algorithms, fingerprints each step's loss and
gradients, and on check steps replays the step from its saved state and compares the fingerprints,
so that a silently wrong computation is caught before the optimizer can apply its gradients."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from iquest_core.reliability.errors import SilentDataCorruptionError
from iquest_core.reliability.fingerprint import fingerprint
from iquest_core.reliability.replay_state import RngState, deterministic_algorithms, enable_deterministic_cublas
from iquest_core.reliability.state import digests_of, optimizer_tensors


class RunHooks:
    """Called by the guard around each run of a step (run 0: the step itself, 1 and 2: replays):
    `before_run` before step_fn, `after_backward` after it returns (before fingerprinting),
    `after_fingerprint` once the run's fingerprints are taken. Subclass and override what you need;
    the fault injector is one."""

    def before_run(self, step: int, run: int) -> None:
        pass

    def after_backward(self, step: int, run: int) -> None:
        pass

    def after_fingerprint(self, step: int, run: int) -> None:
        pass


@dataclass
class RunRecord:
    """One run of a step: its loss, its gradients (None where a parameter got none) and the digests
    of its checked tensors, named, in causal order."""

    loss: torch.Tensor
    grads: list[torch.Tensor | None]
    names: list[str] = field(default_factory=list)
    digests: torch.Tensor | None = None

    def first_difference(self, other: RunRecord) -> str | None:
        """Name of the first checked tensor whose digest differs from other's (or that only one run
        has), None if all agree."""
        if self.names != other.names:
            mismatch = next((i for i, (a, b) in enumerate(zip(self.names, other.names)) if a != b),
                            min(len(self.names), len(other.names)))
            longer = self.names if len(self.names) > mismatch else other.names
            return longer[mismatch]
        differs = (self.digests.cpu() != other.digests.cpu()).any(dim=1).nonzero()
        return self.names[int(differs[0])] if len(differs) else None


def output_tensors(output) -> list[torch.Tensor]:
    """The tensors of a module output (a tensor, or tuples/lists/dicts of them), in order."""
    if isinstance(output, torch.Tensor):
        return [output]
    if isinstance(output, (tuple, list)):
        return [t for item in output for t in output_tensors(item)]
    if isinstance(output, dict):
        return [t for item in output.values() for t in output_tensors(item)]
    return []


class SDCGuard:
    """Deterministic-replay guard around the training steps of `model`.

    `loss = guard.run(step_fn)`: step_fn() runs one forward + backward and returns the loss. It must be
    a function of the model's parameters, its buffers, the random generators and data it closes over
    (it must not fetch a new batch itself). The guard owns the gradients: it sets them to None before
    each run, so step_fn accumulates from zero (put micro-batches inside step_fn).

    Every step runs under deterministic algorithms and the guard fingerprints the loss and every
    gradient (`last_digests`: names and (n, 2) digests, for cross-replica checks and logs;
    `fingerprint_seconds`: the host time spent taking them after each run, all runs summed; on CUDA
    that is launch time, the kernels run asynchronously). Every
    `check_every`-th step (steps 0, N, 2N, ...) also fingerprints the parameters, buffers, the
    optimizer's state (if `optimizer` is given; it must not change during a step) and the outputs of
    the modules named in `activations` (every output tensor of every call, through forward hooks,
    named "<module>#<k>", k counting the step's recorded activations), then replays the step from
    the saved RNG and buffer state and compares. If all agree, the first run's gradients are put back
    and its loss returned, with the RNG and buffers as the first run left them. If not, a second replay
    classifies the fault: transient when it agrees with one of the first two runs, persistent when it
    agrees with neither; all gradients are set to None (no optimizer can apply them) and
    SilentDataCorruptionError(kind="replay") is raised naming the step, the first differing tensor
    (order: parameters, optimizer state, buffers, activations, loss, gradients) and this rank.
    """

    def __init__(self, model: torch.nn.Module, check_every: int = 1, *,
                 optimizer: torch.optim.Optimizer | None = None, activations: tuple[str, ...] | list[str] = (),
                 rank: int | None = None):
        if not isinstance(model, torch.nn.Module):
            raise ValueError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
        if not isinstance(check_every, int) or isinstance(check_every, bool) or check_every < 1:
            raise ValueError(f"check_every: expected an int >= 1, got {check_every!r}")
        if optimizer is not None and not isinstance(optimizer, torch.optim.Optimizer):
            raise ValueError(f"optimizer: expected a torch.optim.Optimizer or None, got {type(optimizer).__name__}")
        modules = dict(model.named_modules())
        unknown = [name for name in activations if name not in modules]
        if unknown:
            raise ValueError(f"activations: expected names of submodules of model, got unknown {unknown}")
        if rank is None:
            dist = torch.distributed
            rank = dist.get_rank() if dist.is_available() and dist.is_initialized() else 0
        enable_deterministic_cublas()
        self.model = model
        self.check_every = check_every
        self.optimizer = optimizer
        self.rank = rank
        self.step = 0
        self.hooks: list[RunHooks] = []
        self.last_digests: tuple[list[str], torch.Tensor] | None = None
        self.fingerprint_seconds = 0.0
        self.params = dict(model.named_parameters())  # name -> parameter, as of construction
        self._activation_log: list[tuple[str, torch.Tensor]] | None = None
        self._handles = [modules[name].register_forward_hook(self._activation_hook(name)) for name in activations]

    def close(self) -> None:
        """Removes the guard's forward hooks."""
        for handle in self._handles:
            handle.remove()
        self._handles = []

    def is_check_step(self, step: int) -> bool:
        """Whether step (0-based) is replayed and compared: every check_every-th, starting at step 0."""
        return step % self.check_every == 0

    def run(self, step_fn: Callable[[], torch.Tensor]) -> torch.Tensor:
        """Runs (and on check steps replays) one step; returns its loss. See the class docstring."""
        step = self.step
        self.step += 1
        if not self.is_check_step(step):
            record = self._run(step_fn, step, 0, full=False)
            return record.loss
        rng_before, buffers_before = RngState.capture(), self._buffer_copies()
        first = self._run(step_fn, step, 0, full=True)
        rng_after, buffers_after = RngState.capture(), self._buffer_copies()
        runs = [first]
        try:
            for replay in (1, 2):
                rng_before.restore()
                self._load_buffers(buffers_before)
                runs.append(self._run(step_fn, step, replay, full=True))
                if runs[1].first_difference(first) is None:
                    break
        finally:
            rng_after.restore()
            self._load_buffers(buffers_after)
        differing = runs[1].first_difference(first)
        if differing is None:
            self._set_grads(first.grads)
            self.last_digests = (first.names, first.digests)
            return first.loss
        self._set_grads([None] * len(self.params))
        persistent = runs[2].first_difference(first) is not None and runs[2].first_difference(runs[1]) is not None
        verdict = "persistent: a second replay agrees with neither" if persistent else \
            "transient: a second replay agrees with one of them"
        raise SilentDataCorruptionError(
            f"a replay of the step differs from the step ({verdict}); the gradients were discarded",
            step=step, tensor=differing, rank=self.rank, kind="replay", persistent=persistent)

    # -- one run ------------------------------------------------------------------------------------

    def _run(self, step_fn, step: int, run: int, *, full: bool) -> RunRecord:
        self._set_grads([None] * len(self.params))
        for hooks in self.hooks:
            hooks.before_run(step, run)
        self._activation_log = [] if full else None
        try:
            with deterministic_algorithms():
                loss = step_fn()
        finally:
            activations, self._activation_log = self._activation_log, None
        if not isinstance(loss, torch.Tensor):
            raise ValueError(f"step_fn: expected it to return the loss tensor, got {type(loss).__name__}")
        for hooks in self.hooks:
            hooks.after_backward(step, run)
        started = time.perf_counter()
        record = RunRecord(loss, [p.grad for p in self.params.values()])
        parts: list[torch.Tensor] = []

        def add(names: list[str], digests: torch.Tensor) -> None:
            record.names += names
            parts.append(digests)

        if full:
            state: dict[str, torch.Tensor] = dict(self.params)
            if self.optimizer is not None:
                state.update({f"optimizer.{k}": v for k, v in optimizer_tensors(self.optimizer).items()})
            state.update(self.model.named_buffers())
            add(list(state), digests_of(list(state.values())))
        if activations:
            add([name for name, _ in activations], torch.stack([d for _, d in activations]))
        checked = {"loss": loss}
        checked.update((f"{name}.grad", g) for name, g in zip(self.params, record.grads) if g is not None)
        add(list(checked), digests_of(list(checked.values())))
        digests = parts[0] if len(parts) == 1 else torch.cat([part.cpu() for part in parts])
        record.digests = digests
        self.fingerprint_seconds += time.perf_counter() - started
        if not full:
            self.last_digests = (record.names, digests)
        for hooks in self.hooks:
            hooks.after_fingerprint(step, run)
        return record

    def _activation_hook(self, name: str):
        def hook(module, args, output):
            if self._activation_log is not None:
                for t in output_tensors(output):
                    self._activation_log.append((f"{name}#{len(self._activation_log)}", fingerprint(t)))
        return hook

    def _set_grads(self, grads: list[torch.Tensor | None]) -> None:
        for p, g in zip(self.params.values(), grads):
            p.grad = g

    def _buffer_copies(self) -> dict[str, torch.Tensor]:
        return {name: b.detach().clone() for name, b in self.model.named_buffers()}

    def _load_buffers(self, copies: dict[str, torch.Tensor]) -> None:
        with torch.no_grad():
            for name, b in self.model.named_buffers():
                b.copy_(copies[name])
