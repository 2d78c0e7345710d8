"""The one language-model training step shared by the trainer, RL, the demo and the benchmarks: forward +
backward (`iquest_core.model.loss.next_token_loss`) + clip + optimizer step."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from iquest_core.model.loss import next_token_loss


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
