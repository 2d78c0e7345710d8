"""Fault sites inside a training step (`StepSite`): the fault strikes at a random step of the next check
window, and is classified by experiment (see `StepSite.experiment`)."""

from __future__ import annotations

from typing import Any

import torch

from iquest_core.reliability.drill.injection import Injection
from iquest_core.reliability.errors import SilentDataCorruptionError
from iquest_core.reliability.faults import bit_field, flip_bit
from iquest_core.reliability.simulated_dp import MessageFault
from iquest_core.reliability.state import same_bits


class StepSite:
    """A site that strikes one replica inside a training step.

    fires: the injection point of the drill's step where an `Injection` fires ("compute": the ops of a
    replica's forward + backward; "allreduce": a message of the ring; "optimizer_update": the ops of a
    replica's optimizer step), or None for a fault at rest (`at_rest` names the tensors it may flip).
    counted: the target is the k-th op, drawn after counting the ops in a fault-free run. shots: 1 for a
    transient fault, math.inf for one that recurs identically in every re-execution."""

    fires: str | None = None
    counted: bool = False
    shots: float = 1

    def __init__(self, name: str, order: int):
        self.name, self.order = name, order

    def kind(self, rng) -> str | None:
        """The variant of this fault, drawn per experiment (None: one variant)."""
        return None

    def variant(self, kind: str | None) -> StepSite:
        """The site that injects variant `kind`."""
        return self

    def message(self, rng, replica: int, world: int, element: float) -> MessageFault | None:
        """The ring message to corrupt (allreduce sites)."""
        return None

    def at_rest(self, drill: Any, replica: int) -> dict[str, torch.Tensor] | None:
        """The tensors, by name, a fault at rest flips a bit of, as they are now (None: not at rest)."""
        return None

    def experiment(self, drill: Any) -> dict:
        """The same steps from the same state without and with the fault, unguarded: if the parameters and
        optimizer state come out equal it is masked, else effective. Then the guarded steps with it:
        detected before the update, detected later (at the window's check) or missed (the drill then goes
        on from the fault-free state, so that later faults strike a healthy run)."""
        rng, window = drill.rng, drill.guard.check_every
        offset = rng.randrange(window)
        batches = [drill.next_batch() for _ in range(window)]
        replica = rng.randrange(len(drill.models))
        kind = self.kind(rng)
        site = self.variant(kind)
        at_rest = site.fires is None
        saved, verified = drill.save(), drill.snapshot()
        target, element, bit, message = None, rng.random(), rng.random(), None

        def make() -> Injection | None:
            return None if at_rest else Injection(site.fires, replica, target, element, bit, message, site.shots)

        counter = make() if site.counted else None  # counts, flips nothing
        drill.run_plain(batches[:offset + 1], offset, counter, None)
        clean, clean_state = drill.snapshot(), drill.save()
        drill.load(saved)
        if counter is not None:
            target = rng.randrange(counter.count)
        message = site.message(rng, replica, len(drill.models), element)
        flip = site.pick_at_rest(drill, replica) if at_rest else None

        def flip_now() -> None:
            name, index, bit_index, _ = flip
            flip_bit(site.at_rest(drill, replica)[name], index, bit_index)
        faulty = make()
        drill.run_plain(batches[:offset + 1], offset, faulty, flip_now if at_rest else None)
        effective = not same_bits(clean, drill.state_tensors())
        drill.load(saved)

        live = make()
        start, detected_at, error = drill.guard.step_count, None, None
        for i, batch in enumerate(batches):
            if i == offset and flip is not None:
                flip_now()
            try:
                drill.guarded_step(drill.step_fn(batch, live if i == offset else None))
            except SilentDataCorruptionError as e:
                detected_at, error = i, e
                break
        record = {"site": self.name, "kind": kind, "replica": replica, "step": start + offset,
                  "where": flip[0] if flip else faulty.where, "field": flip[3] if flip else faulty.field,
                  "effective": effective}
        if detected_at is None:
            record.update(outcome="missed", flagged=False)
            if effective:
                drill.load(clean_state)
                drill.guard.reset()
        else:
            record.update(outcome="detected_before_update" if detected_at == offset else "detected_later",
                          flagged=True, latency=detected_at - offset, detected_by=error.kind,
                          named_step=error.step == start + offset, tensor=error.tensor,
                          rolled_back=same_bits(verified, drill.state_tensors()))
        return record

    def pick_at_rest(self, drill: Any, replica: int) -> tuple[str, int, int, str]:
        """(name, element, bit, field): a uniformly random bit of one replica's at-rest tensors."""
        named = self.at_rest(drill, replica)
        index = drill.rng.randrange(sum(t.numel() for t in named.values()))
        for name, t in named.items():
            if index < t.numel():
                bit = drill.rng.randrange(t.element_size() * 8)
                return name, index, bit, bit_field(t.dtype, bit)
            index -= t.numel()
        raise AssertionError("unreachable")
