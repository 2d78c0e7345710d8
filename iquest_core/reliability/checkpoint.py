"""The one checkpoint format: torch.distributed.checkpoint (DCP) directories, fingerprinted, verified on load.

    DIRECTORY/step-N/
        .metadata, __R_0.distcp     DCP: model and optimizer state (FSDP2 shards, any world size reads them)
        rng-rank-R.pt                each rank's torch RNG state
        trainer.json                 step and the caller's trainer state (loader, stage, model config, ...)
        fingerprints.json            every other file's 128-bit fingerprint (`fingerprint` of its bytes)

A checkpoint is written to a hidden temporary directory and renamed into place once complete, so a
crash never leaves a step-N that looks whole. Loading first checks every file's fingerprint (a changed
byte raises SilentDataCorruptionError naming the file), then reads the state. The trainer
(`iquest_core.train.checkpoint`) adds its model-shape check; the drill corrupts these files.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint.state_dict import (get_model_state_dict, get_optimizer_state_dict,
                                                     set_model_state_dict, set_optimizer_state_dict)

from iquest_core.reliability.errors import SilentDataCorruptionError
from iquest_core.reliability.fingerprint import digest_hex, fingerprint

TRAINER_FILE = "trainer.json"
FINGERPRINT_FILE = "fingerprints.json"
_STEP_DIR = re.compile(r"^step-(\d+)$")


def _rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


@contextlib.contextmanager
def quiet_single_process():
    """DCP warns that it assumes a single process when there is no process group: that is intended."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="torch.distributed is disabled")
        yield


def _barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def checkpoints(directory: str | Path) -> list[Path]:
    """The complete checkpoints step-N under directory, oldest first."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in directory.iterdir() if (m := _STEP_DIR.match(p.name)) and p.is_dir()]
    return [p for _, p in sorted(found)]


def file_fingerprints(directory: Path) -> dict[str, str]:
    """name -> fingerprint hex of every file in directory except fingerprints.json."""
    digests = {}
    for path in sorted(directory.iterdir()):
        if path.name != FINGERPRINT_FILE and path.is_file():
            data = np.fromfile(path, dtype=np.uint8)
            digests[path.name] = digest_hex(fingerprint(torch.from_numpy(data)))
    return digests


def save(directory: str | Path, step: int, model: torch.nn.Module, optimizer: torch.optim.Optimizer, *,
         trainer_state: dict[str, Any], keep: int = 0) -> Path:
    """Write directory/step-{step} (all ranks call this); keep > 0 removes all but the newest `keep`."""
    directory = Path(directory)
    final, tmp = directory / f"step-{step}", directory / f".step-{step}.tmp"
    if _rank() == 0:
        directory.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
    _barrier()
    state = {"model": get_model_state_dict(model), "optim": get_optimizer_state_dict(model, optimizer)}
    with quiet_single_process():
        dcp.save(state, checkpoint_id=str(tmp))
    torch.save({"cpu": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state() if torch.cuda.is_available() else None},
               tmp / f"rng-rank-{_rank()}.pt")
    _barrier()
    if _rank() == 0:
        (tmp / TRAINER_FILE).write_text(json.dumps({"step": step, **trainer_state}, indent=1) + "\n")
        (tmp / FINGERPRINT_FILE).write_text(json.dumps(file_fingerprints(tmp), indent=1) + "\n")
        shutil.rmtree(final, ignore_errors=True)
        tmp.rename(final)
        if keep > 0:
            for old in checkpoints(directory)[:-keep]:
                shutil.rmtree(old)
    _barrier()
    return final


def read_trainer_state(path: str | Path) -> dict[str, Any]:
    """trainer.json of a checkpoint directory (ValueError if it is not one)."""
    path = Path(path)
    if not (path / TRAINER_FILE).is_file():
        raise ValueError(f"checkpoint: {path} is not a training checkpoint (no {TRAINER_FILE})")
    return json.loads((path / TRAINER_FILE).read_text())


def verify(path: str | Path) -> None:
    """Raise SilentDataCorruptionError(kind="checkpoint") if a file of the checkpoint differs from its
    fingerprint, is missing, or is not listed."""
    path = Path(path)

    def refuse(name: str, why: str) -> SilentDataCorruptionError:
        return SilentDataCorruptionError(f"checkpoint {path} refused: {why}", step=None, tensor=name, rank=_rank(),
                                         kind="checkpoint", persistent=True)

    listing = path / FINGERPRINT_FILE
    if not listing.is_file():
        raise refuse(FINGERPRINT_FILE, "it has no fingerprints")
    try:
        expected = json.loads(listing.read_bytes().decode())
    except ValueError:
        raise refuse(FINGERPRINT_FILE, f"{FINGERPRINT_FILE} does not parse") from None
    if not isinstance(expected, dict):
        raise refuse(FINGERPRINT_FILE, f"{FINGERPRINT_FILE} is not a mapping of file names to fingerprints")
    actual = file_fingerprints(path)
    for name in sorted(set(expected) | set(actual)):
        if expected.get(name) != actual.get(name):
            why = ("missing" if name not in actual else "not fingerprinted" if name not in expected
                   else f"stored {expected[name]}, read {actual[name]}")
            raise refuse(name, f"file {name} does not match its fingerprint ({why})")


def load(path: str | Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """Verify and load a checkpoint into model and optimizer (all ranks call this); returns its trainer
    state (step, loader, ...). The RNG state is restored when this rank saved one."""
    verify(path)
    return read(path, model, optimizer)


def read(path: str | Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """`load` without the verification: what a reader without checks would load (the drill's control)."""
    path = Path(path)
    state = {"model": get_model_state_dict(model), "optim": get_optimizer_state_dict(model, optimizer)}
    with quiet_single_process():
        dcp.load(state, checkpoint_id=str(path))
    set_model_state_dict(model, state["model"])
    set_optimizer_state_dict(model, optimizer, state["optim"])
    rng_file = path / f"rng-rank-{_rank()}.pt"
    if rng_file.is_file():
        rng = torch.load(rng_file, weights_only=True)
        torch.set_rng_state(rng["cpu"])
        if rng["cuda"] is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state(rng["cuda"])
    return read_trainer_state(path)
