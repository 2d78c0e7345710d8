"""`SDCGuard`: guarded training steps over data-parallel replicas. Always on: fingerprints of the
weights and optimizer state at rest, of the loss and the all-reduced gradients (compared across
replicas before any optimizer runs) and of the updated state (compared across replicas). On check
steps: a deterministic replay of the steps since the last verified state, compared step by step. Any
mismatch restores the last verified state and raises SilentDataCorruptionError."""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.distributed as dist

from iquest_core.reliability.errors import SilentDataCorruptionError
from iquest_core.reliability.replay_state import RngState, deterministic_algorithms, enable_deterministic_cublas
from iquest_core.reliability.replicas import compare_across_ranks, describe, majority_verdict
from iquest_core.reliability.state import digests_of, optimizer_tensors


@dataclass
class StepRecord:
    """One run of a step: digests (n, 2) of the loss, every replica's gradients and every replica's
    updated state, under `names`."""

    names: list[str]
    digests: torch.Tensor

    def first_difference(self, other: StepRecord) -> str | None:
        if self.names != other.names:
            return next((a for a, b in zip(self.names, other.names) if a != b), "<the set of checked tensors>")
        differs = (self.digests != other.digests).any(dim=1).nonzero()
        return self.names[int(differs[0])] if len(differs) else None


@dataclass
class TrainingState:
    """Copies of replicas' parameters, buffers and per-parameter optimizer state."""

    params: list[list[torch.Tensor]]
    buffers: list[list[torch.Tensor]]
    optim: list[list[dict]]

    @classmethod
    def capture(cls, models: Sequence[torch.nn.Module], optimizers: Sequence[torch.optim.Optimizer]) -> TrainingState:
        return cls([[p.detach().clone() for p in m.parameters()] for m in models],
                   [[b.detach().clone() for b in m.buffers()] for m in models],
                   [[_copy_state(o.state.get(p, {})) for p in m.parameters()] for m, o in zip(models, optimizers)])

    def restore(self, models: Sequence[torch.nn.Module], optimizers: Sequence[torch.optim.Optimizer]) -> None:
        """Copies the values back (the copies stay intact for another restore); clears the gradients."""
        with torch.no_grad():
            for r, (model, optimizer) in enumerate(zip(models, optimizers)):
                model.zero_grad(set_to_none=True)
                for p, saved in zip(model.parameters(), self.params[r]):
                    p.copy_(saved)
                for b, saved in zip(model.buffers(), self.buffers[r]):
                    b.copy_(saved)
                optimizer.state.clear()
                for p, saved in zip(model.parameters(), self.optim[r]):
                    if saved:
                        optimizer.state[p] = _copy_state(saved)


@dataclass
class _Snapshot:
    """The last verified state, the RNG then, and the state's digests."""

    step: int
    state: TrainingState
    rng: RngState
    digests: list[torch.Tensor]


class SDCGuard:
    """Guards the training steps of data-parallel replicas.

    models, optimizers: the replicas this process holds, one optimizer per model over its parameters (a
    single model in a multi-process job, where `group` is the data-parallel process group and
    `compare_across_ranks` compares the replicas; several when replicas are simulated in one process).
    Replicas must be bit-identical at construction.

    `loss = guard.step(step_fn)`: step_fn() runs forward and backward on every replica and the gradient
    all-reduce, and returns the loss (any tensor). It must depend only on the replicas' parameters and
    buffers, the random generators and data it closes over: check steps call it again. The guard owns
    the gradients and the optimizer steps. Every step (always-on):
      1. fingerprints every replica's parameters and optimizer state and compares them with their digests
         after the previous update (kind "at_rest": a flip in memory between steps);
      2. runs step_fn under deterministic algorithms, fingerprints the loss and the gradients and
         compares the replicas before any optimizer runs (kind "replica");
      3. steps every optimizer, clears the gradients, fingerprints the updated state and compares the
         replicas again (kind "replica").
    Each check_every-th step (steps N-1, 2N-1, ...) replays the window of steps since the last verified
    state from that state (parameters, buffers, optimizer state, RNG) and compares every step's digests
    (kind "replay"); a second replay classifies a mismatch as transient (it agrees with the first
    replay) or persistent (it agrees with neither run).

    On a mismatch the guard rolls back to the last verified state (the state after the last passed
    check, or the initial one) and raises SilentDataCorruptionError naming the step, the first
    differing tensor ("<name>", "<name>.grad", "optimizer.state.<i>.<key>", "loss") and the replica
    (its rank); `verified_step` is then the number of steps to redo from. With check_every=1 no update
    computed from a corrupted value outlives the step it was computed in. Limits: a fault that recurs
    identically in the replay (a deterministic defect) is invisible to the replay; param_groups
    (learning rates) are not part of the snapshot, so a scheduler must not change them inside a window.
    """

    def __init__(self, models: torch.nn.Module | Sequence[torch.nn.Module],
                 optimizers: torch.optim.Optimizer | Sequence[torch.optim.Optimizer], *, check_every: int = 1,
                 group: dist.ProcessGroup | None = None):
        models = [models] if isinstance(models, torch.nn.Module) else list(models)
        optimizers = [optimizers] if isinstance(optimizers, torch.optim.Optimizer) else list(optimizers)
        if not models or not all(isinstance(m, torch.nn.Module) for m in models):
            raise ValueError(f"models: expected a torch.nn.Module or a non-empty list of them, got {models!r:.80}")
        if len(optimizers) != len(models) or not all(isinstance(o, torch.optim.Optimizer) for o in optimizers):
            raise ValueError(f"optimizers: expected one torch.optim.Optimizer per model ({len(models)}), "
                             f"got {optimizers!r:.80}")
        if not isinstance(check_every, int) or isinstance(check_every, bool) or check_every < 1:
            raise ValueError(f"check_every: expected an int >= 1, got {check_every!r}")
        enable_deterministic_cublas()
        self.models, self.optimizers, self.check_every, self.group = models, optimizers, check_every, group
        self.rank = dist.get_rank(group) if group is not None else None
        self.param_names = [name for name, _ in models[0].named_parameters()]
        self.step_count = 0
        self._window: list[tuple[Callable[[], torch.Tensor], RngState, StepRecord]] = []
        self._snapshot = self._take_snapshot()
        self._compare_replicas(self.param_names + self._optim_names(0), self._snapshot.digests, step=0)
        self._reference = self._snapshot.digests

    def reset(self) -> None:
        """Adopts the replicas' current state as verified (after loading a checkpoint into them or
        repairing them by other means); the steps since the last check are not replayed."""
        self._window.clear()
        self._snapshot = self._take_snapshot()
        self._reference = self._snapshot.digests

    @property
    def verified_step(self) -> int:
        """Steps done up to the last verified state (where a rollback returns to)."""
        return self._snapshot.step

    def step(self, step_fn: Callable[[], torch.Tensor]) -> torch.Tensor:
        """Runs one guarded step (see the class docstring) and returns step_fn's loss."""
        step = self.step_count
        for replica, before in enumerate(self._reference):
            names, now = self._state_digests(replica)
            if not torch.equal(now, before):
                first = names[int((now != before).any(dim=1).nonzero()[0])]
                self._fail(f"{first!r} changed at rest since the last update", step, first, replica, "at_rest", None)
        rng = RngState.capture()
        loss, record = self._run(step_fn, step, live=True)
        self._window.append((step_fn, rng, record))
        self.step_count += 1
        if len(self._window) == self.check_every:
            self._verify_window()
        return loss

    # -- internals ----------------------------------------------------------------------------------

    def _run(self, step_fn, step: int, *, live: bool) -> tuple[torch.Tensor, StepRecord]:
        for model in self.models:
            model.zero_grad(set_to_none=True)
        with deterministic_algorithms():
            loss = step_fn()
        if not isinstance(loss, torch.Tensor):
            raise ValueError(f"step_fn: expected it to return the loss tensor, got {type(loss).__name__}")
        grads = [[p.grad for p in m.parameters()] for m in self.models]
        if any(g is None for g in grads[0]):
            missing = self.param_names[[g is None for g in grads[0]].index(True)]
            raise ValueError(f"step_fn: expected a gradient for every parameter, {missing!r} got none")
        names = ["loss"] + [f"{n}.grad" for n in self.param_names]
        per_replica = [digests_of([loss] + g).cpu() for g in grads]
        if live:
            self._compare_replicas(names, per_replica, step)
        for model, optimizer in zip(self.models, self.optimizers):
            optimizer.step()
            model.zero_grad(set_to_none=True)
        states = [self._state_digests(r) for r in range(len(self.models))]
        if live:
            self._compare_replicas(states[0][0], [d for _, d in states], step)
            self._reference = [d for _, d in states]
        record = StepRecord([f"{n}@{r}" for r in range(len(self.models)) for n in names + states[r][0]],
                            torch.cat([torch.cat([g, s]) for g, (_, s) in zip(per_replica, states)]))
        return loss, record

    def _verify_window(self) -> None:
        live_end = RngState.capture()
        live = [record for _, _, record in self._window]
        replays = []
        for _ in range(2):
            self._restore_state()
            replay = []
            for step_fn, rng, _ in self._window:
                rng.restore()
                replay.append(self._run(step_fn, self._snapshot.step + len(replay), live=False)[1])
            replays.append(replay)
            mismatch = next(((i, a.first_difference(b)) for i, (a, b) in enumerate(zip(live, replay))
                             if a.first_difference(b) is not None), None)
            if mismatch is None:
                live_end.restore()
                self._window.clear()
                self._snapshot = self._take_snapshot()
                self._reference = self._snapshot.digests
                return
            if len(replays) == 1:
                first_mismatch = mismatch
        persistent = any(a.first_difference(b) is not None for a, b in zip(replays[0], replays[1]))
        index, name = first_mismatch
        tensor, _, replica = name.rpartition("@")
        verdict = ("persistent: a second replay agrees with neither run" if persistent
                   else "transient: a second replay agrees with the first")
        self._fail(f"a replay of step {self._snapshot.step + index} differs from the step ({verdict})",
                   self._snapshot.step + index, tensor, int(replica), "replay", persistent)

    def _fail(self, message: str, step: int, tensor: str, replica: int | None, kind: str,
              persistent: bool | None):
        self._rollback()
        rank = self.rank if self.rank is not None else replica
        raise SilentDataCorruptionError(f"{message}; rolled back to the verified state after step "
                                        f"{self._snapshot.step}", step=step, tensor=tensor, rank=rank, kind=kind,
                                        persistent=persistent)

    def _compare_replicas(self, names: list[str], digests: list[torch.Tensor], step: int) -> None:
        verdict = majority_verdict(torch.stack(digests)) if len(digests) > 1 else None
        if verdict is not None:
            first, outliers, count = verdict
            bad = outliers[0] if len(outliers) < len(digests) else None
            self._fail(f"replicas disagree: {describe(outliers, count, len(digests), list(range(len(digests))))}",
                       step, names[first], bad, "replica", None)
        if self.group is not None:
            try:
                compare_across_ranks(names, digests[0], step=step, group=self.group)
            except SilentDataCorruptionError:
                self._rollback()
                raise

    def _optim_names(self, replica: int) -> list[str]:
        return [f"optimizer.{k}" for k in optimizer_tensors(self.optimizers[replica])]

    def _state_digests(self, replica: int) -> tuple[list[str], torch.Tensor]:
        """Names and (n, 2) CPU digests of one replica's parameters and optimizer state."""
        state = optimizer_tensors(self.optimizers[replica])
        tensors = list(self.models[replica].parameters()) + list(state.values())
        return self.param_names + [f"optimizer.{k}" for k in state], digests_of(tensors).cpu()

    def _take_snapshot(self) -> _Snapshot:
        digests = [self._state_digests(r)[1] for r in range(len(self.models))]
        return _Snapshot(self.step_count, TrainingState.capture(self.models, self.optimizers), RngState.capture(),
                         digests)

    def _rollback(self) -> None:
        """Back to the last verified state: weights, optimizer state, buffers, RNG and step count."""
        self._restore_state()
        self._snapshot.rng.restore()
        self._window.clear()
        self.step_count = self._snapshot.step
        self._reference = self._snapshot.digests

    def _restore_state(self) -> None:
        """The snapshot's parameters, buffers and optimizer state, checked against its digests."""
        snap = self._snapshot
        snap.state.restore(self.models, self.optimizers)
        for r in range(len(self.models)):
            if not torch.equal(self._state_digests(r)[1], snap.digests[r]):
                raise RuntimeError("the guard's verified snapshot itself is corrupted (its digests changed): "
                                       "no clean state to roll back to; restart from a checkpoint")


def _copy_state(state: dict) -> dict:
    return {k: v.detach().clone() if isinstance(v, torch.Tensor) else copy.deepcopy(v) for k, v in state.items()}
