"""Autoregressive decoding with LoopCoder's two-level cache (see cache.py).

The prompt is prefilled in one forward pass over an empty cache, then each step feeds one token.
Every sequence in the batch has the same prompt length (no padding).
"""

from __future__ import annotations

from collections.abc import Callable

import torch


def _check_args(input_ids, max_new_tokens, do_sample, temperature, top_p, top_k) -> None:
    if not isinstance(input_ids, torch.Tensor) or input_ids.dim() != 2 or input_ids.shape[1] < 1 \
            or input_ids.dtype.is_floating_point:
        raise ValueError(f"input_ids: expected an integer tensor (B, P) with P >= 1, got "
                         f"{getattr(input_ids, 'shape', type(input_ids).__name__)}")
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, int) or max_new_tokens < 0:
        raise ValueError(f"max_new_tokens: expected a non-negative int, got {max_new_tokens!r}")
    if do_sample and not temperature > 0:
        raise ValueError(f"temperature: expected > 0 when sampling, got {temperature!r}")
    if not 0 < top_p <= 1:
        raise ValueError(f"top_p: expected a float in (0, 1], got {top_p!r}")
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 0:
        raise ValueError(f"top_k: expected a non-negative int (0: no limit), got {top_k!r}")


def sample_next(logits: torch.Tensor, *, temperature: float, top_p: float, top_k: int,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """Sample one token per row of logits (B, V) after temperature, top-k and nucleus (top-p) filtering;
    the most likely token always survives the filters. Returns (B,) int64."""
    logits = logits.float() / temperature
    if top_k:
        kth = torch.topk(logits, min(top_k, logits.shape[-1]), dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
        probs = sorted_logits.softmax(-1)
        drop_sorted = probs.cumsum(-1) - probs >= top_p  # tokens entirely beyond the top_p mass
        logits = logits.masked_fill(drop_sorted.scatter(-1, order, drop_sorted), float("-inf"))
    return torch.multinomial(logits.softmax(-1), 1, generator=generator)[:, 0]


@torch.no_grad()
def generate(model: torch.nn.Module, input_ids: torch.Tensor, max_new_tokens: int, *, do_sample: bool = False,
             temperature: float = 1.0, top_p: float = 1.0, top_k: int = 0,
             eos_token_id: int | list[int] | None = None, generator: torch.Generator | None = None,
             stop: Callable[[torch.Tensor], torch.Tensor] | None = None,
             return_logits: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Token ids (B, P + n), prompt included, n <= max_new_tokens new tokens. `model`: a LoopCoderForCausalLM
    (passed in: this module does not import the model).

    Greedy unless do_sample. eos_token_id (default: the config's): a sequence that emitted it is
    continued with that eos token, and decoding stops early once every sequence has. stop, if given, is
    called after every new token with the ids so far (B, P + t) and returns a bool (B,) tensor: a row
    where it is True has ended (e.g. a stop string appeared in its text): it is continued with eos when
    there is one, and decoding stops once every row has ended.
    With return_logits, also the float32 logits (B, n, V) each new token was chosen from.
    """
    _check_args(input_ids, max_new_tokens, do_sample, temperature, top_p, top_k)
    if stop is not None and not callable(stop):
        raise ValueError(f"stop: expected a callable ids -> bool (B,) tensor, got {type(stop).__name__}")
    total = input_ids.shape[1] + max_new_tokens
    if total > model.config.max_position_embeddings:
        raise ValueError(f"max_new_tokens: prompt ({input_ids.shape[1]}) + {max_new_tokens} new tokens exceeds "
                         f"max_position_embeddings={model.config.max_position_embeddings}")
    eos = model.config.eos_token_ids if eos_token_id is None else (
        [eos_token_id] if isinstance(eos_token_id, int) else list(eos_token_id))
    eos = torch.tensor(eos, dtype=torch.long, device=input_ids.device)
    cache = model.new_cache()
    finished = torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
    tokens, step_logits = [input_ids], []
    step_input = input_ids
    for _ in range(max_new_tokens):
        logits = model(step_input, cache=cache, logits_to_keep=1).logits[:, -1].float()
        step_logits.append(logits)
        if do_sample:
            next_token = sample_next(logits, temperature=temperature, top_p=top_p, top_k=top_k, generator=generator)
        else:
            next_token = logits.argmax(-1)
        if eos.numel():
            next_token = torch.where(finished, eos[0], next_token)
            finished |= torch.isin(next_token, eos)
        step_input = next_token[:, None]
        tokens.append(step_input)
        if stop is not None:
            finished |= _stopped(stop, torch.cat(tokens, dim=1))
        if (eos.numel() or stop is not None) and bool(finished.all()):
            break
    ids = torch.cat(tokens, dim=1)
    if not return_logits:
        return ids
    empty = input_ids.new_empty((input_ids.shape[0], 0, model.config.vocab_size), dtype=torch.float32)
    return ids, torch.stack(step_logits, dim=1) if step_logits else empty


def _stopped(stop: Callable[[torch.Tensor], torch.Tensor], ids: torch.Tensor) -> torch.Tensor:
    ended = stop(ids)
    if not isinstance(ended, torch.Tensor) or ended.dtype != torch.bool or ended.shape != ids.shape[:1]:
        raise ValueError(f"stop: expected it to return a bool tensor of shape ({ids.shape[0]},), got "
                         f"{getattr(ended, 'dtype', type(ended).__name__)} {tuple(getattr(ended, 'shape', ()))}")
    return ended.to(ids.device)
