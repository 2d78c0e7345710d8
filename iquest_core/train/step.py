"""The one language-model training step shared by every job (trainer, demo, drill, benchmarks).

`next_token_loss` is the objective; `train_step` is forward + backward + clip + optimizer step.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

IGNORE_INDEX = -100


def next_token_loss(model: torch.nn.Module, input_ids: torch.Tensor, labels: torch.Tensor, *,
                    reduction: str = "mean", **model_kwargs) -> torch.Tensor:
    """Mean (reduction="sum": summed) cross-entropy over the positions whose label is not IGNORE_INDEX
    (-100), in float32.

    input_ids (B, L) int64; labels (B, L) int64, labels[b, i] the token expected after input_ids[b, i]
    (already shifted). model_kwargs (position_ids, cu_seqlens, max_seqlen, ...) go to the model."""
    logits = model(input_ids, **model_kwargs).logits
    return F.cross_entropy(logits.flatten(0, 1).float(), labels.flatten(), ignore_index=IGNORE_INDEX,
                           reduction=reduction)


@dataclass
class StepResult:
    loss: float
    grad_norm: float


def train_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, input_ids: torch.Tensor,
               labels: torch.Tensor, *, max_grad_norm: float | None = 1.0, **model_kwargs) -> StepResult:
    """Forward, backward, gradient clipping (when max_grad_norm is not None) and one optimizer step;
    gradients are cleared afterwards."""
    loss = next_token_loss(model, input_ids, labels, **model_kwargs)
    loss.backward()
    params = [p for p in model.parameters() if p.grad is not None]
    if max_grad_norm is None:
        grad_norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(p.grad) for p in params]))
    else:
        grad_norm = torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return StepResult(loss=loss.item(), grad_norm=float(grad_norm))
