"""A small model and step function for the guard tests: dropout draws from the RNG, batch norm
updates buffers, so a replay is faithful only if the guard restores both."""

import torch


def small_model() -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.BatchNorm1d(16), torch.nn.Dropout(0.3),
                               torch.nn.ReLU(), torch.nn.Linear(16, 2))


def step_fn(model: torch.nn.Module, x: torch.Tensor):
    def step():
        loss = model(x).square().mean()
        loss.backward()
        return loss
    return step
