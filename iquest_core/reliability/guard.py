"""`SDCGuard`: guarded training steps over data-parallel replicas. Always on: fingerprints of the
weights and optimizer state at rest, of the loss and the all-reduced gradients (compared across
replicas before any optimizer runs) and of the updated state (compared across replicas). On check
steps: a deterministic replay of the steps since the last verified state, compared step by step. Any
mismatch restores the last verified state and raises SilentDataCorruptionError; in a torch.distributed
job every rank does so together."""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.distributed as dist

from iquest_core.reliability.errors import SilentDataCorruptionError
from iquest_core.reliability.replay_state import RngState, deterministic_algorithms, enable_deterministic_cublas
from iquest_core.reliability.replicas import describe, majority_verdict, replica_verdict
from iquest_core.reliability.state import digests_of, optimizer_tensors


@dataclass
class StepRecord:
    """One run of a step: digests (n, 2) of the loss, every replica's gradients and every replica's
    updated state, under `names` ("<tensor>@<replica>"). A live record may stop after the gradients."""

    names: list[str]
    digests: torch.Tensor

    def first_difference(self, other: StepRecord) -> int | None:
        """Index of the first of this record's tensors that differs in `other` (None if none does)."""
        if self.names != other.names[:len(self.names)]:
            return next((i for i, (a, b) in enumerate(zip(self.names, other.names)) if a != b), 0)
        differs = (self.digests != other.digests[:len(self.names)]).any(dim=1).nonzero()
        return int(differs[0]) if len(differs) else None


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


@dataclass
class _Finding:
    """A failed check: its kind, the step, the first differing tensor as an index into the checked names
    (the same list on every rank), the rank (or replica) to blame, persistence and a description."""

    kind: str
    step: int
    index: int
    rank: int | None
    persistent: bool | None
    message: str


_KINDS = ("at_rest", "replica", "replay", "snapshot")
_PERSISTENCE = (None, False, True)


class SDCGuard:
    """Guards the training steps of data-parallel replicas.

    models, optimizers: the replicas this process holds, one optimizer per model over its parameters (a
    single model in a multi-process job; several when replicas are simulated in one process). Replicas
    must be bit-identical at construction. start_step: the number of steps already done (a resumed run),
    so that steps and `verified_step` count from the run's start.

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
    Every check_every-th step after the last verified state (and at `verify()`) replays the window of
    steps since that state from it (parameters, buffers, optimizer state, RNG) and compares every step's digests
    (kind "replay"); a second replay classifies a mismatch as transient (it agrees with the first
    replay) or persistent (it agrees with neither run).

    Multi-rank jobs (FSDP/HSDP, torch.distributed initialised with several ranks): every rank of the job
    builds the guard and calls step/verify together. DTensors are fingerprinted on their local shards.
    `group` holds the ranks with bit-identical tensors (HSDP's replicate group: the same shards); the
    replica checks compare over it (none when it is None; the replay and at-rest checks still run on
    every rank). step_fn's loss must be the same on all replicas: return the loss all-reduced over the job
    (it then sums what every rank computed and is checked like the gradients; a per-rank loss would
    differ between replicas by design). Each check's verdict is agreed by one all-reduce over the whole
    job, so a fault seen on one rank makes every rank roll back and raise the same error (step, tensor,
    rank, kind): none runs on into a collective alone. With no majority among the replicas (two of them)
    every rank replays the window and this step, and the lowest rank whose live run differs from its
    replay is named (None if none does). A compute fault before the reduction reaches every rank through
    it (the reduced loss and gradients): the replica check cannot see it, the replay check catches it on
    every rank and names the lowest rank, not necessarily the faulty one.

    On a mismatch the guard rolls back to the last verified state (the state after the last passed
    check, or the initial one) and raises SilentDataCorruptionError naming the step, the first
    differing tensor ("<name>", "<name>.grad", "optimizer.state.<i>.<key>", "loss") and the replica
    (its global rank in a job); `verified_step` is then the number of steps to redo from. With
    check_every=1 no update computed from a corrupted value outlives the step it was computed in. Limits:
    a fault that recurs identically in the replay (a deterministic defect) is invisible to the replay;
    param_groups (learning rates) are not part of the snapshot, so a scheduler must not change them
    inside a window (set them inside step_fn instead).
    """

    def __init__(self, models: torch.nn.Module | Sequence[torch.nn.Module],
                 optimizers: torch.optim.Optimizer | Sequence[torch.optim.Optimizer], *, check_every: int = 1,
                 group: dist.ProcessGroup | None = None, start_step: int = 0):
        models = [models] if isinstance(models, torch.nn.Module) else list(models)
        optimizers = [optimizers] if isinstance(optimizers, torch.optim.Optimizer) else list(optimizers)
        if not models or not all(isinstance(m, torch.nn.Module) for m in models):
            raise ValueError(f"models: expected a torch.nn.Module or a non-empty list of them, got {models!r:.80}")
        if len(optimizers) != len(models) or not all(isinstance(o, torch.optim.Optimizer) for o in optimizers):
            raise ValueError(f"optimizers: expected one torch.optim.Optimizer per model ({len(models)}), "
                             f"got {optimizers!r:.80}")
        if not isinstance(check_every, int) or isinstance(check_every, bool) or check_every < 1:
            raise ValueError(f"check_every: expected an int >= 1, got {check_every!r}")
        if not isinstance(start_step, int) or isinstance(start_step, bool) or start_step < 0:
            raise ValueError(f"start_step: expected an int >= 0, got {start_step!r}")
        job = dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1
        if job and len(models) > 1:
            raise ValueError(f"models: a multi-rank job guards one model per rank, got {len(models)}")
        enable_deterministic_cublas()
        self.models, self.optimizers, self.check_every, self.group = models, optimizers, check_every, group
        self.rank = dist.get_rank() if job else None
        self._device = torch.device("cpu")  # where verdicts travel: the backend's device
        if job and dist.get_backend() == "nccl":
            self._device = torch.device("cuda", torch.cuda.current_device())
        self.param_names = [name for name, _ in models[0].named_parameters()]
        self.step_count = start_step
        self._window: list[tuple[Callable[[], torch.Tensor], RngState, StepRecord]] = []
        self._snapshot = self._take_snapshot()
        self._compare_replicas(self.param_names + self._optim_names(0), self._snapshot.digests, step=start_step)
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
        step, finding = self.step_count, None
        for replica, before in enumerate(self._reference):
            names, now = self._state_digests(replica)
            if finding is None and not torch.equal(now, before):
                first = int((now != before).any(dim=1).nonzero()[0])
                finding = _Finding("at_rest", step, first, self._blame(replica), None,
                                   f"{names[first]!r} changed at rest since the last update")
        self._settle(finding, names)
        rng = RngState.capture()
        loss, record = self._run(step_fn, step, live=True, rng=rng)
        self._window.append((step_fn, rng, record))
        self.step_count += 1
        if len(self._window) == self.check_every:
            self._verify_window()
        return loss

    def verify(self) -> None:
        """Replays the steps since the last verified state now (e.g. before a checkpoint is written),
        as a check step would; nothing to do when there are none."""
        if self._window:
            self._verify_window()

    # -- internals ----------------------------------------------------------------------------------

    def _run(self, step_fn, step: int, *, live: bool, rng: RngState | None = None) -> tuple[torch.Tensor, StepRecord]:
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
            self._compare_replicas(names, per_replica, step, pending=(step_fn, rng, _record(names, per_replica)))
        for model, optimizer in zip(self.models, self.optimizers):
            optimizer.step()
            model.zero_grad(set_to_none=True)
        states = [self._state_digests(r) for r in range(len(self.models))]
        record = _record(names, per_replica, states)
        if live:
            self._compare_replicas(states[0][0], [d for _, d in states], step, pending=(step_fn, rng, record))
            self._reference = [d for _, d in states]
        return loss, record

    def _replay(self, window) -> tuple[list[StepRecord], tuple[int, int] | None]:
        """Reruns `window` ((step_fn, rng, live record) per step) from the verified state; returns the
        replayed records and the first (step offset, tensor index) where a live record differs."""
        self._restore_state()
        replay = []
        for step_fn, rng, _ in window:
            rng.restore()
            replay.append(self._run(step_fn, self._snapshot.step + len(replay), live=False)[1])
        mismatch = next(((i, d) for i, ((_, _, live), again) in enumerate(zip(window, replay))
                         if (d := live.first_difference(again)) is not None), None)
        return replay, mismatch

    def _verify_window(self) -> None:
        live_end = RngState.capture()
        first, mismatch = self._replay(self._window)
        if self._agree(self._replay_finding(mismatch, None)) is None:
            live_end.restore()
            self._window.clear()
            self._snapshot = self._take_snapshot()
            self._reference = self._snapshot.digests
            return
        second, _ = self._replay(self._window)
        persistent = any(a.first_difference(b) is not None for a, b in zip(first, second))
        finding = self._agree(self._replay_finding(mismatch, persistent))
        names = [n.rpartition("@")[0] for n in self._window[finding.step - self._snapshot.step][2].names]
        self._fail(finding, names)

    def _replay_finding(self, mismatch: tuple[int, int] | None, persistent: bool | None) -> _Finding | None:
        if mismatch is None:
            return None
        offset, index = mismatch
        step = self._snapshot.step + offset
        replica = int(self._window[offset][2].names[index].rpartition("@")[2])
        verdict = ("" if persistent is None else " (persistent: a second replay agrees with neither run)"
                   if persistent else " (transient: a second replay agrees with the first)")
        return _Finding("replay", step, index, self._blame(replica), persistent,
                        f"a replay of step {step} differs from the step{verdict}")

    def _compare_replicas(self, names: list[str], digests: list[torch.Tensor], step: int, pending=None) -> None:
        """Compares the replicas held here, or this rank's digests over `group`; `pending` (the step's
        step_fn, RNG and live record) lets a job find the rank to blame when no majority exists."""
        finding = None
        if len(digests) > 1:
            verdict = majority_verdict(torch.stack(digests))
            if verdict is not None:
                first, outliers, count = verdict
                bad = outliers[0] if len(outliers) < len(digests) else None
                finding = _Finding("replica", step, first, bad, None, "replicas disagree: "
                                   + describe(outliers, count, len(digests), list(range(len(digests)))))
        elif self.group is not None and dist.get_world_size(self.group) > 1:
            verdict = replica_verdict(digests[0].to(self._device), group=self.group)
            if verdict is not None:
                first, bad, text = verdict
                finding = _Finding("replica", step, first, bad, None, f"replicas disagree after the all-reduce: {text}")
        self._settle(finding, names, pending)

    def _settle(self, finding: _Finding | None, names: list[str], pending=None) -> None:
        """Agrees on the verdict over the job; on a failure finds the rank to blame if the replicas could
        not, rolls back and raises."""
        finding = self._agree(finding)
        if finding is None:
            return
        if finding.kind == "replica" and finding.rank is None and self.rank is not None and pending is not None:
            _, mismatch = self._replay(self._window + [pending])
            mine = None if mismatch is None else _Finding("replica", finding.step, 0, self.rank, None, "")
            blamed = self._agree(mine)
            if blamed is not None:
                finding.rank = blamed.rank
                finding.message += f"; rank {blamed.rank}'s replay differs from its live run"
        self._fail(finding, names)

    def _agree(self, finding: _Finding | None) -> _Finding | None:
        """In a job: every rank learns every rank's finding (one all-reduce) and all return the same one,
        of the earliest step and then the lowest rank (None when no rank found anything)."""
        if self.rank is None:
            return finding
        world = dist.get_world_size()
        rows = torch.zeros(world, 5, dtype=torch.int64)
        if finding is not None:
            rows[self.rank] = torch.tensor([_KINDS.index(finding.kind) + 1, finding.step, finding.index,
                                            -1 if finding.rank is None else finding.rank,
                                            _PERSISTENCE.index(finding.persistent)])
        rows = rows.to(self._device)
        dist.all_reduce(rows)
        rows = rows.cpu()
        found = [r for r in range(world) if rows[r, 0] > 0]
        if not found:
            return None
        reporter = min(found, key=lambda r: (int(rows[r, 1]), r))
        if reporter == self.rank:
            return finding
        kind, step, index, rank, persistent = rows[reporter].tolist()
        kind, persistent = _KINDS[kind - 1], _PERSISTENCE[persistent]
        how = "" if persistent is None else " (persistent)" if persistent else " (transient)"
        return _Finding(kind, step, index, None if rank < 0 else rank, persistent,
                        f"the {kind} check of step {step} failed on rank {reporter}{how}")

    def _blame(self, replica: int) -> int:
        return self.rank if self.rank is not None else replica

    def _fail(self, finding: _Finding, names: list[str]):
        self._rollback()
        raise SilentDataCorruptionError(f"{finding.message}; rolled back to the verified state after step "
                                        f"{self._snapshot.step}", step=finding.step, tensor=names[finding.index],
                                        rank=finding.rank, kind=finding.kind, persistent=finding.persistent)

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
        """The snapshot's parameters, buffers and optimizer state, checked against its digests (on every
        rank of a job: any rank's corrupted snapshot stops them all)."""
        snap = self._snapshot
        snap.state.restore(self.models, self.optimizers)
        bad = next((r for r in range(len(self.models)) if not torch.equal(self._state_digests(r)[1], snap.digests[r])),
                   None)
        corrupted = None if bad is None else _Finding("snapshot", snap.step, 0, self._blame(bad), True, "")
        if self._agree(corrupted) is not None:
            raise RuntimeError("the guard's verified snapshot itself is corrupted (its digests changed): "
                               "no clean state to roll back to; restart from a checkpoint")


def _record(names: list[str], grads: list[torch.Tensor],
            states: list[tuple[list[str], torch.Tensor]] | None = None) -> StepRecord:
    """The StepRecord of per-replica loss+gradient digests and, when given, updated-state digests."""
    states = states or [([], torch.empty(0, 2, dtype=torch.int64))] * len(grads)
    return StepRecord([f"{n}@{r}" for r, (state_names, _) in enumerate(states) for n in names + state_names],
                      torch.cat([torch.cat([g, s]) for g, (_, s) in zip(grads, states)]))


def _copy_state(state: dict) -> dict:
    return {k: v.detach().clone() if isinstance(v, torch.Tensor) else copy.deepcopy(v) for k, v in state.items()}
