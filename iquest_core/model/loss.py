"""The language-model objective shared by every job (trainer, RL, drill, sweep, benchmarks)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from iquest_core.data.packing import IGNORE_INDEX


def next_token_loss(model: torch.nn.Module, input_ids: torch.Tensor, labels: torch.Tensor, *,
                    reduction: str = "mean", **model_kwargs) -> torch.Tensor:
    """Mean (reduction="sum": summed) cross-entropy over the positions whose label is not IGNORE_INDEX
    (-100), in float32.

    input_ids (B, L) int64; labels (B, L) int64, labels[b, i] the token expected after input_ids[b, i]
    (already shifted). model_kwargs (position_ids, cu_seqlens, max_seqlen, ...) go to the model."""
    logits = model(input_ids, **model_kwargs).logits
    return F.cross_entropy(logits.flatten(0, 1).float(), labels.flatten(), ignore_index=IGNORE_INDEX,
                           reduction=reduction)
