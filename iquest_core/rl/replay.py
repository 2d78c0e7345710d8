"""Replay in the RL stage: an auxiliary next-token loss on earlier stages' data (the RL recipe's data.replay).

Every policy-update minibatch of `iquest rl` minimises grpo_loss + weight x the token-mean next-token loss
of the replay loader's next batch: round(share x rl.minibatch) packed rows of data.seq_len tokens drawn
from data.replay.sources by the trainer's BatchLoader (its own seeded stream, documents packed within
rows, attention within documents). The loader's state and the count of batches drawn go into every
checkpoint, so a resumed run draws the same rows as an uninterrupted one. With no replay sources or
weight 0 nothing is built and the update is the plain GRPO one.

Text is tokenized with data.tokenizer (a tokenizer directory), or with "" by the toy tasks' byte
vocabulary (`ByteVocabulary`: text records only, each ending with EOS).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from iquest_core.data.loader import BatchLoader, model_inputs, open_sources
from iquest_core.data.tokenizer import EOS_TOKEN, load_tokenizer
from iquest_core.model.loss import next_token_loss
from iquest_core.rl import tasks as rl_tasks


class ByteVocabulary:
    """The toy tasks' byte vocabulary (id = ASCII code, EOS_ID ends a document) as a loader tokenizer."""

    vocab_size = rl_tasks.VOCAB_SIZE

    def encode(self, text: str) -> list[int]:
        return rl_tasks.encode(text)

    def special_id(self, token: str) -> int:
        if token != EOS_TOKEN:
            raise ValueError(f"data.tokenizer: the byte vocabulary has no {token} (chat records need a tokenizer "
                             f"directory); replay text records only")
        return rl_tasks.EOS_ID


def rows_per_update(share: float, minibatch: int) -> int:
    """Replay rows per policy update: round(share x minibatch); ValueError naming data.replay.share when a
    positive share rounds to none."""
    rows = round(share * minibatch)
    if share > 0 and rows < 1:
        raise ValueError(f"data.replay.share: {share} x rl.minibatch={minibatch} rounds to no replay row")
    return rows


class ReplayLoss:
    """The weighted auxiliary next-token loss of one policy update (see the module doc)."""

    def __init__(self, data, *, minibatch: int, vocab_size: int, seed: int) -> None:
        """data: the RL recipe's data section (rl.recipe.RLData: replay, tokenizer, seq_len)."""
        replay = data.replay
        tokenizer = load_tokenizer(data.tokenizer) if data.tokenizer else ByteVocabulary()
        sources = open_sources([dataclasses.asdict(s) for s in replay.sources], tokenizer, vocab_size,
                               key="data.replay.sources")
        self.weight = float(replay.weight)
        self.loader = BatchLoader(sources, [s.weight for s in replay.sources], seq_len=data.seq_len,
                                  rows_per_step=rows_per_update(replay.share, minibatch), seed=seed)
        self.drawn = 0  # batches drawn so far: the loader's step counter

    def unweighted(self, model) -> torch.Tensor:
        """The token-mean next-token loss of the next replay batch (draws it)."""
        inputs = model_inputs(self.loader.next_batch(self.drawn), document_mask=True)
        self.drawn += 1
        device = next(model.parameters()).device
        inputs = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in inputs.items()}
        return next_token_loss(model, **inputs)

    def state_dict(self) -> dict[str, Any]:
        return {"loader": self.loader.state_dict(), "drawn": self.drawn}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.loader.load_state_dict(state["loader"])
        self.drawn = state["drawn"]


def build_replay(recipe, vocab_size: int) -> ReplayLoss | None:
    """The ReplayLoss of an RL recipe (rl.recipe.RLRecipe: data, rl.minibatch, seed), or None when it has no
    replay sources or weight 0."""
    replay = recipe.data.replay
    if not replay.sources or replay.weight == 0:
        return None
    return ReplayLoss(recipe.data, minibatch=recipe.rl.minibatch, vocab_size=vocab_size, seed=recipe.seed + 1)
