"""`parallelize(model, mesh, config)`: everything that makes a LoopCoder trainable at scale, applied from
outside the model in torchtitan's order: activation checkpointing of each decoder layer, context
parallelism, torch.compile of each decoder layer, then FSDP2/HSDP. The model itself knows none of it."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.distributed._composable import checkpoint as checkpoint_module

from iquest_core.parallel.context_parallel import apply_cp
from iquest_core.parallel.fsdp import TrainingMesh, shard_model


@dataclass(frozen=True)
class ParallelConfig:
    """activation_checkpointing: recompute each decoder layer's activations in backward (per layer and
    loop) instead of storing them. compile: torch.compile each decoder layer. param_dtype: the compute
    dtype (None: keep float32); under FSDP the parameters stay float32 and gradients reduce in float32."""

    activation_checkpointing: bool = False
    compile: bool = False
    param_dtype: torch.dtype | None = None


def apply_activation_checkpointing(model: nn.Module) -> None:
    """Checkpoint every decoder layer (`model.model.layers`) in place; parameter names do not change."""
    for layer in model.model.layers:
        checkpoint_module(layer)


def parallelize(model: nn.Module, mesh: TrainingMesh | None, config: ParallelConfig) -> nn.Module:
    """Applies `config` to `model` in place and returns it: activation checkpointing, context parallelism
    over mesh's "cp" dimension (when it has more than one rank), compile, then FSDP2/HSDP over mesh.fsdp
    (mesh None: a single process, the parameters cast to param_dtype instead)."""
    if config.activation_checkpointing:
        apply_activation_checkpointing(model)
    if mesh is not None and mesh.dp_cp["cp"].size() > 1:
        apply_cp(model, mesh.dp_cp["cp"].get_group())
    if config.compile:
        for layer in model.model.layers:
            layer.compile()
    if mesh is not None:
        shard_model(model, mesh, param_dtype=config.param_dtype)
    elif config.param_dtype is not None:
        model.to(config.param_dtype)
    return model
