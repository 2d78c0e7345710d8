"""Hugging Face checkpoint layout: config.json plus model.safetensors, or shards listed by
model.safetensors.index.json ({"metadata": {"total_size": bytes}, "weight_map": {key: shard file}}).

Loading builds the model on the meta device, checks every key and shape against the files before
reading any tensor data, then assigns the tensors (no second copy of the weights). Local files only.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from iquest_core.model.config import LoopCoderConfig

SINGLE_FILE = "model.safetensors"
INDEX_FILE = "model.safetensors.index.json"
ARCHITECTURE = "IQuestLoopCoderForCausalLM"


class CheckpointMismatchError(ValueError):
    """The checkpoint's keys or shapes differ from the model's; lists all the differences."""

    def __init__(self, missing: list[str], unexpected: list[str], mis_shaped: list[str]) -> None:
        parts = [f"{title} ({len(items)}): {', '.join(items)}"
                 for title, items in (("missing keys", missing), ("unexpected keys", unexpected),
                                      ("mis-shaped keys", mis_shaped)) if items]
        super().__init__("checkpoint does not match the model: " + "; ".join(parts))
        self.missing, self.unexpected, self.mis_shaped = missing, unexpected, mis_shaped


def _weight_files(path: Path) -> dict[str, Path]:
    """Key -> safetensors file holding it."""
    if (path / INDEX_FILE).is_file():
        weight_map = json.loads((path / INDEX_FILE).read_text())["weight_map"]
        return {key: path / name for key, name in weight_map.items()}
    if (path / SINGLE_FILE).is_file():
        with safe_open(path / SINGLE_FILE, framework="pt") as f:
            return {key: path / SINGLE_FILE for key in f.keys()}
    raise ValueError(f"path: neither {SINGLE_FILE} nor {INDEX_FILE} in {path}")


def _stored_shapes(files: dict[str, Path]) -> dict[str, tuple[int, ...]]:
    shapes = {}
    for file in sorted(set(files.values())):
        with safe_open(file, framework="pt") as f:
            for key in f.keys():
                if files.get(key) == file:
                    shapes[key] = tuple(f.get_slice(key).get_shape())
    missing_files = {key for key in files if key not in shapes}
    if missing_files:
        raise ValueError(f"path: the index names keys its shard files lack: {sorted(missing_files)}")
    return shapes


def check_keys(expected: dict[str, tuple[int, ...]], stored: dict[str, tuple[int, ...]],
               optional: set[str] = frozenset()) -> None:
    """Raise CheckpointMismatchError unless stored has exactly the expected keys (optional ones may be
    absent or present) with the expected shapes."""
    missing = sorted(set(expected) - set(stored) - optional)
    unexpected = sorted(set(stored) - set(expected) - optional)
    mis_shaped = sorted(f"{key} (model {list(shape)}, checkpoint {list(stored[key])})"
                        for key, shape in expected.items() if key in stored and stored[key] != shape)
    if missing or unexpected or mis_shaped:
        raise CheckpointMismatchError(missing, unexpected, mis_shaped)


def load_pretrained(cls: type[torch.nn.Module], path: str | Path, *, dtype: torch.dtype | None,
                    device: torch.device | str, attn_implementation: str) -> torch.nn.Module:
    """An instance of `cls` (the model class, passed in: this module does not import the model), built as
    cls(config, attn_implementation=...) on the meta device, with the weights of the directory `path`."""
    path = Path(path)
    if not path.is_dir():
        raise ValueError(f"path: expected a local directory with config.json and safetensors weights, got {path}")
    config = LoopCoderConfig.from_json(path / "config.json")
    with torch.device("meta"):
        model = cls(config, attn_implementation=attn_implementation)
    expected = {key: tuple(t.shape) for key, t in model.state_dict().items()}
    tied = {"lm_head.weight"} if config.tie_word_embeddings else set()
    files = _weight_files(path)
    check_keys({k: s for k, s in expected.items() if k not in tied}, _stored_shapes(files), optional=tied)
    state = {}
    for file in sorted(set(files.values())):
        with safe_open(file, framework="pt", device=str(device)) as f:
            for key in f.keys():
                if files[key] == file and key not in tied:
                    tensor = f.get_tensor(key)
                    state[key] = tensor.to(dtype) if dtype is not None and tensor.is_floating_point() else tensor
    model.load_state_dict(state, strict=not tied, assign=True)
    model.tie_weights()
    return model


def save_pretrained(model: torch.nn.Module, path: str | Path, *, max_shard_bytes: int | None = None) -> None:
    """Write config.json and the weights; shards (model-0000i-of-0000n.safetensors + index) when the
    weights exceed max_shard_bytes. Weight files of an earlier save in the directory are removed first.
    Tied lm_head.weight is not written (as Hugging Face does)."""
    if max_shard_bytes is not None and max_shard_bytes < 1:
        raise ValueError(f"max_shard_bytes: expected a positive int or None, got {max_shard_bytes!r}")
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    for stale in [path / SINGLE_FILE, path / INDEX_FILE, *path.glob("model-*-of-*.safetensors")]:
        stale.unlink(missing_ok=True)  # weights of an earlier save must not shadow this one
    state = {key: t.detach().contiguous().cpu() for key, t in model.state_dict().items()}
    if model.config.tie_word_embeddings:
        state.pop("lm_head.weight")
    dtype = str(next(iter(state.values())).dtype).removeprefix("torch.")
    config = LoopCoderConfig.from_dict({**model.config.to_dict(), "architectures": [ARCHITECTURE],
                                        "torch_dtype": dtype})
    config.to_json(path / "config.json")

    shards: list[dict[str, torch.Tensor]] = [{}]
    shard_bytes = 0
    for key, tensor in state.items():
        size = tensor.numel() * tensor.element_size()
        if max_shard_bytes is not None and shards[-1] and shard_bytes + size > max_shard_bytes:
            shards.append({})
            shard_bytes = 0
        shards[-1][key] = tensor
        shard_bytes += size
    if len(shards) == 1:
        save_file(shards[0], path / SINGLE_FILE, metadata={"format": "pt"})
        return
    weight_map = {}
    for i, shard in enumerate(shards, start=1):
        name = f"model-{i:05d}-of-{len(shards):05d}.safetensors"
        save_file(shard, path / name, metadata={"format": "pt"})
        weight_map.update(dict.fromkeys(shard, name))
    total = sum(t.numel() * t.element_size() for t in state.values())
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (path / INDEX_FILE).write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")
