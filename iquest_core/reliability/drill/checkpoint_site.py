"""Fault sites in the trainer's checkpoint files (`iquest_core.reliability.checkpoint`: DCP shards,
.metadata, trainer.json, the RNG file, fingerprints.json): replica 0 and its optimizer are saved, one bit
of one file is flipped, and the checkpoint is loaded into fresh copies.

Effective: a reader without checks (`checkpoint.read`) fails, or loads a model, optimizer, RNG or trainer
state that differs bitwise from the clean one. Detected: the real loader (`checkpoint.load`) refuses it.
The field of an effective fault is the bit field of the first changed tensor element ("header" for
anything else: the file formats' own structure, trainer.json, a load that fails).

The unchecked reader believes the sizes a corrupted file claims: one flipped bit of .metadata made DCP
allocate 8.6 GB before failing. It therefore runs with its address space capped at READ_HEADROOM above the
process's current size (Linux); an allocation past the cap fails the read, which counts as effective."""

from __future__ import annotations

import contextlib
import copy
import logging
import resource
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch.distributed.checkpoint.api import CheckpointException

from iquest_core.reliability import checkpoint
from iquest_core.reliability.errors import SilentDataCorruptionError
from iquest_core.reliability.faults import bit_field
from iquest_core.reliability.replay_state import RngState
from iquest_core.reliability.state import optimizer_tensors

READ_HEADROOM = 1 << 30


class CheckpointSite:
    """files: which files of the checkpoint a fault may hit (a bit drawn uniformly over their bytes)."""

    def __init__(self, name: str, order: int, files=lambda path: True):
        self.name, self.order, self.files = name, order, files

    def experiment(self, drill: Any) -> dict:
        record = {"site": self.name, "kind": None, "replica": 0, "step": drill.guard.step_count}
        rng_state = RngState.capture()
        try:
            with tempfile.TemporaryDirectory() as folder:
                path = checkpoint.save(folder, drill.guard.step_count, drill.models[0], drill.optimizers[0],
                                       trainer_state={"drill": True})
                clean = self._loaded(drill, path)
                target, byte, bit = self._pick(drill.rng, path)
                data = bytearray(target.read_bytes())
                data[byte] ^= 1 << bit
                target.write_bytes(bytes(data))
                changed = _difference(clean, self._loaded(drill, path))
                record.update(where=target.name, field=changed[1] if changed else "header",
                              effective=changed is not None)
                try:
                    model = copy.deepcopy(drill.models[0])
                    with _quiet_dcp():
                        checkpoint.load(path, model, torch.optim.AdamW(model.parameters(), lr=1e-3))
                    record.update(outcome="missed", flagged=False)
                except SilentDataCorruptionError as e:
                    record.update(outcome="detected_before_update", flagged=True, latency=0, detected_by=e.kind,
                                  tensor=e.tensor)
        finally:
            rng_state.restore()
        return record

    def _pick(self, rng, path: Path) -> tuple[Path, int, int]:
        """A uniformly random bit of the files this site may hit."""
        files = [(p, p.stat().st_size) for p in sorted(path.iterdir()) if self.files(p)]
        index = rng.randrange(sum(size for _, size in files))
        for target, size in files:
            if index < size:
                return target, index, rng.randrange(8)
            index -= size
        raise AssertionError("unreachable")

    @staticmethod
    def _loaded(drill: Any, path: Path) -> dict[str, Any] | None:
        """Everything an unchecked reader loads from the checkpoint into fresh copies (None: it fails)."""
        model = copy.deepcopy(drill.models[0])
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
        try:
            with _quiet_dcp(), address_space_cap(READ_HEADROOM):
                trainer = checkpoint.read(path, model, optimizer)
        except (Exception, CheckpointException):  # noqa: BLE001  (any failure makes the checkpoint unusable)
            return None
        tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
        tensors.update({f"optimizer.{k}": v for k, v in optimizer_tensors(optimizer).items()})
        tensors["rng"] = torch.get_rng_state()
        return {"tensors": tensors, "trainer": trainer, "hyper": optimizer.state_dict()["param_groups"]}


@contextlib.contextmanager
def address_space_cap(headroom: int):
    """Inside: allocations that would take the process's address space more than `headroom` bytes past its
    size on entry fail (MemoryError, or the allocating library's error). No cap where /proc/self/status
    does not exist."""
    status = Path("/proc/self/status")
    if not status.is_file():
        yield
        return
    size_kb = next(int(line.split()[1]) for line in status.read_text().splitlines() if line.startswith("VmSize:"))
    old = resource.getrlimit(resource.RLIMIT_AS)
    cap = size_kb * 1024 + headroom
    resource.setrlimit(resource.RLIMIT_AS, (cap if old[1] == resource.RLIM_INFINITY else min(cap, old[1]), old[1]))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, old)


@contextlib.contextmanager
def _quiet_dcp():
    """DCP logs a traceback for every unreadable .metadata before it raises, through its own loggers and
    the root logger; the drill expects them. Root-logger records of other modules pass."""
    dcp_dir = CheckpointException.__module__.rpartition(".")[0].replace(".", "/")

    def not_dcp(record: logging.LogRecord) -> bool:
        return dcp_dir not in Path(record.pathname).as_posix()

    root, dcp = logging.getLogger(), logging.getLogger("torch.distributed.checkpoint")
    level = dcp.level
    dcp.setLevel(logging.CRITICAL)
    root.addFilter(not_dcp)
    try:
        yield
    finally:
        root.removeFilter(not_dcp)
        dcp.setLevel(level)


def _difference(clean: dict, loaded: dict | None) -> tuple[str, str] | None:
    """(what, field) of the first difference between two loads, None when they are bitwise equal."""
    if loaded is None:
        return "load", "header"
    for name, value in clean["tensors"].items():
        other = loaded["tensors"].get(name)
        if other is None or other.dtype != value.dtype or other.shape != value.shape:
            return name, "header"
        if not torch.equal(value.view(-1).view(torch.uint8), other.view(-1).view(torch.uint8)):
            return name, _changed_field(value, other)
    if clean["trainer"] != loaded["trainer"] or clean["hyper"] != loaded["hyper"]:
        return "trainer", "header"
    return None


def _changed_field(a: torch.Tensor, b: torch.Tensor) -> str:
    """The bit field of the lowest changed bit of the first changed element of two equal-shape tensors."""
    width = a.element_size()
    xa, xb = (t.contiguous().view(-1).view(torch.uint8).view(-1, width) for t in (a, b))
    row = int((xa != xb).any(1).nonzero()[0])
    diff = int.from_bytes(bytes((xa[row] ^ xb[row]).tolist()), "little")
    bit = (diff & -diff).bit_length() - 1
    return "integer" if a.dtype == torch.bool else bit_field(a.dtype, bit)
