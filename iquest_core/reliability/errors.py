"""The error every silent-data-corruption check raises."""

from __future__ import annotations


class SilentDataCorruptionError(RuntimeError):
    """A check found tensors that should be bit-identical and are not.

    step: the training step (None where unknown); tensor: the first differing tensor's name;
    rank: the process whose data is wrong (its own rank for replay checks, the majority's verdict for
    replica checks, None when no majority exists); kind: the check that fired ("replay", "replica",
    "checkpoint"); persistent: True when the corruption stays (a replay fault that a second replay
    reproduced, a corrupted file), False when it did not reproduce (transient), None when the check
    cannot tell.
    """

    def __init__(self, message: str, *, step: int | None, tensor: str, rank: int | None, kind: str,
                 persistent: bool | None):
        super().__init__(f"silent data corruption ({kind} check, step {step}, rank {rank}, tensor {tensor!r}): "
                         f"{message}")
        self.step = step
        self.tensor = tensor
        self.rank = rank
        self.kind = kind
        self.persistent = persistent
