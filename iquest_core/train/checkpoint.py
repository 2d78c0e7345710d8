"""Training checkpoints: the fingerprinted DCP format of `iquest_core.reliability.checkpoint` (layout,
atomic writes, verification), with the trainer's check that a checkpoint holds the model shape being
trained: loading a checkpoint of another shape raises CheckpointShapeError naming the fields.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from iquest_core.reliability import checkpoint as fingerprinted
from iquest_core.reliability.checkpoint import checkpoints, quiet_single_process, read_trainer_state, save, verify

__all__ = ["CheckpointShapeError", "check_model_config", "checkpoints", "load", "quiet_single_process",
           "read_trainer_state", "save", "verify"]

SHAPE_FIELDS = ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                "num_key_value_heads", "head_dim", "loop_num", "tie_word_embeddings")


class CheckpointShapeError(ValueError):
    """The checkpoint holds a model of another shape than the one being trained."""


def check_model_config(path: Path, config: dict[str, Any]) -> None:
    """CheckpointShapeError naming every shape field in which the checkpoint's model differs from config."""
    stored = read_trainer_state(path)["model_config"]
    differ = [f"{k} (checkpoint {stored.get(k)!r}, recipe {config.get(k)!r})"
              for k in SHAPE_FIELDS if stored.get(k) != config.get(k)]
    if differ:
        raise CheckpointShapeError(f"checkpoint {path} holds another model shape: {', '.join(differ)}")


def load(path: str | Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, *,
         model_config: dict[str, Any]) -> dict[str, Any]:
    """Check the model shape, verify and load a checkpoint into model and optimizer (all ranks call this);
    returns its trainer state (step, loader, ...)."""
    check_model_config(Path(path), model_config)
    return fingerprinted.load(path, model, optimizer)
