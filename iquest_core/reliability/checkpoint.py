"""Fingerprinted checkpoints: safetensors files whose metadata holds the digest of every tensor and of
the rest of the metadata (step, optimizer hyperparameters); load verifies every digest before a single
value reaches the model or the optimizer."""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from iquest_core.atomic_io import atomic_path
from iquest_core.reliability.errors import SilentDataCorruptionError
from iquest_core.reliability.fingerprint import digest_hex, fingerprint
from iquest_core.reliability.state import fingerprint_named

FORMAT = "iquest-fingerprinted-checkpoint/1"


def _optimizer_split(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    """The optimizer's state dict as tensors ("optimizer.state.<i>.<key>") and a JSON-able rest."""
    state = optimizer.state_dict()
    tensors, rest = {}, {"param_groups": state["param_groups"], "state": {}}
    for index, entries in state["state"].items():
        for key, value in entries.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optimizer.state.{index}.{key}"] = value
            else:
                rest["state"].setdefault(str(index), {})[key] = value
    return tensors, rest


def save_checkpoint(path: str | os.PathLike, model: torch.nn.Module, optimizer: torch.optim.Optimizer | None = None,
                    *, step: int | None = None) -> None:
    """Writes the model's state dict (as "model.<name>") and the optimizer's state to one safetensors file
    with each tensor's fingerprint in its metadata. Atomic: written to a temporary file in the same
    folder, flushed to disk, then renamed over `path`, so a crash never leaves a half-written file."""
    if not isinstance(model, torch.nn.Module):
        raise ValueError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    optimizer_rest = None
    if optimizer is not None:
        optimizer_tensors, optimizer_rest = _optimizer_split(optimizer)
        tensors.update(optimizer_tensors)
    tensors = _unshared_cpu(tensors)
    digests = {name: digest_hex(d) for name, d in fingerprint_named(tensors).items()}
    metadata = {"format": FORMAT, "fingerprints": json.dumps(digests), "step": json.dumps(step),
                "optimizer": json.dumps(optimizer_rest)}
    metadata["metadata_fingerprint"] = _metadata_digest(metadata)
    with atomic_path(path) as tmp:
        save_file(tensors, tmp, metadata=metadata)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())


def _metadata_digest(metadata: dict[str, str]) -> str:
    """Digest of the metadata entries other than itself (the step and the optimizer's hyperparameters
    live there, outside every tensor)."""
    text = json.dumps({k: v for k, v in sorted(metadata.items()) if k != "metadata_fingerprint"})
    return digest_hex(fingerprint(torch.frombuffer(bytearray(text.encode()), dtype=torch.uint8)))


def _unshared_cpu(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Contiguous CPU tensors, each with storage of its own (safetensors refuses shared storage, e.g.
    tied weights); tensors that already qualify are not copied."""
    out, seen = {}, set()
    for name, t in tensors.items():
        t = t.detach().cpu().contiguous()
        key = t.untyped_storage().data_ptr()
        if key in seen or t.untyped_storage().nbytes() != t.nbytes:
            t = t.clone()
        seen.add(t.untyped_storage().data_ptr())
        out[name] = t
    return out


def load_checkpoint(path: str | os.PathLike, model: torch.nn.Module,
                    optimizer: torch.optim.Optimizer | None = None) -> int | None:
    """Verifies every tensor of the checkpoint at `path` against its stored fingerprint, then loads the
    model (strictly) and, if given, the optimizer; returns the saved step. A file that fails to parse,
    lacks fingerprints, or holds a tensor whose digest differs raises SilentDataCorruptionError
    (kind="checkpoint", tensor: the first bad tensor) and nothing is loaded."""
    if not isinstance(model, torch.nn.Module):
        raise ValueError(f"model: expected a torch.nn.Module, got {type(model).__name__}")
    tensors, metadata = _read_verified(Path(path))
    rest = json.loads(metadata["optimizer"])
    if optimizer is not None and rest is None:
        raise ValueError(f"optimizer: the checkpoint {path} holds no optimizer state")
    prefix = "model."
    model.load_state_dict({k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}, strict=True)
    if optimizer is not None:
        state: dict = {int(i): dict(entries) for i, entries in rest["state"].items()}
        for name, t in tensors.items():
            if name.startswith("optimizer.state."):
                index, key = name[len("optimizer.state."):].split(".", 1)
                state.setdefault(int(index), {})[key] = t
        optimizer.load_state_dict({"state": state, "param_groups": rest["param_groups"]})
    return json.loads(metadata["step"])


def _read_verified(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    def corrupt(tensor: str, why: str) -> SilentDataCorruptionError:
        return SilentDataCorruptionError(f"checkpoint {path} refused: {why}", step=None, tensor=tensor, rank=None,
                                         kind="checkpoint", persistent=True)

    try:
        with safe_open(path, framework="pt") as f:
            metadata = f.metadata() or {}
        tensors = load_file(path)
    except (SafetensorError, OSError, ValueError) as e:
        raise corrupt("<file>", f"unreadable ({e})") from e
    if metadata.get("format") != FORMAT:
        raise corrupt("<metadata>", f"expected format {FORMAT!r}, got {metadata.get('format')!r}")
    try:
        expected = json.loads(metadata["fingerprints"])
    except (KeyError, json.JSONDecodeError) as e:
        raise corrupt("<metadata>", "the fingerprints are missing or unreadable") from e
    if metadata.get("metadata_fingerprint") != _metadata_digest(metadata):
        raise corrupt("<metadata>", "the metadata (step, optimizer hyperparameters) does not match its fingerprint")
    if set(expected) != set(tensors):
        odd = sorted(set(expected) ^ set(tensors))
        raise corrupt(odd[0], f"tensors and fingerprints do not match one to one ({odd[:5]})")
    actual = fingerprint_named(tensors)
    for name, d in actual.items():
        if digest_hex(d) != expected[name]:
            raise corrupt(name, f"tensor {name!r} does not match its fingerprint (stored {expected[name]}, "
                                f"read {digest_hex(d)})")
    return tensors, metadata
