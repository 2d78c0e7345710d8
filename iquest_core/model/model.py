"""LoopCoder: a Llama-style decoder whose layers run `loop_num` times (loop_num = 1: dense IQuest-Coder).

Module tree and state-dict keys are the published ones:

    model.embed_tokens.weight
    model.layers.N.self_attn.{q,k,v,o}_proj.weight
    model.layers.N.mlp.{gate,up,down}_proj.weight
    model.layers.N.{input,post_attention}_layernorm.weight
    model.gate_projections.N.{weight,bias}       (H, D) and (H,); only when loop_num >= 2
    model.norm.weight
    lm_head.weight                               (absent from checkpoints when tie_word_embeddings)

Loop 1 runs every layer with causal attention and keeps each layer's K/V; each later loop runs the
same layers again with gated loop attention over those K/V and its own (windowed) K/V. There is no
norm between loops; the final norm runs after the last loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from iquest_core.model.attention import LoopCoderAttention
from iquest_core.model.backends import AttentionMetadata
from iquest_core.model.cache import KV, LoopCache
from iquest_core.model.checkpoint import load_pretrained, save_pretrained
from iquest_core.model.config import LoopCoderConfig
from iquest_core.model.generation import generate
from iquest_core.model.layers import RMSNorm, SwiGLU
from iquest_core.model.rope import rope_cos_sin


class DecoderLayer(nn.Module):
    """Pre-norm block: x + attn(norm(x)), then + mlp(norm(.))."""

    def __init__(self, config: LoopCoderConfig, layer: int, attn_implementation: str) -> None:
        super().__init__()
        self.self_attn = LoopCoderAttention(config, layer, attn_implementation)
        self.mlp = SwiGLU(config.hidden_size, config.intermediate_size)
        self.input_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.post_attention_layernorm = RMSNorm(config.hidden_size, config.rms_norm_eps)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor,
                **attn_kwargs) -> tuple[torch.Tensor, KV | None]:
        """x (B, L, C) -> (B, L, C), plus loop-1 K/V (see LoopCoderAttention.forward for attn_kwargs)."""
        attn_out, kv = self.self_attn(self.input_layernorm(x), cos, sin, **attn_kwargs)
        x = x + attn_out
        return x + self.mlp(self.post_attention_layernorm(x)), kv


class LoopCoderModel(nn.Module):
    """Embedding, shared layers run loop_num times, final norm: input_ids (B, L) -> hidden (B, L, C)."""

    def __init__(self, config: LoopCoderConfig, attn_implementation: str = "fused") -> None:
        super().__init__()
        self.config = config
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        self.layers = nn.ModuleList(DecoderLayer(config, i, attn_implementation)
                                    for i in range(config.num_hidden_layers))
        if config.loop_num > 1:
            self.gate_projections = nn.ModuleList(nn.Linear(config.head_dim, config.num_attention_heads)
                                                  for _ in range(config.num_hidden_layers))
        self.norm = RMSNorm(config.hidden_size, config.rms_norm_eps)

    def forward(self, input_ids: torch.Tensor, meta: AttentionMetadata) -> torch.Tensor:
        """Final-norm hidden states (B, L, C) for input_ids (B, L) laid out as `meta` says (checked by
        LoopCoderForCausalLM.forward). Appends to meta.cache and advances it by L."""
        hidden = self.embed_tokens(input_ids)
        cos, sin = rope_cos_sin(meta.positions, self.config.head_dim, self.config.rope_theta, hidden.dtype)
        kv_global: list[KV | None] = [None] * len(self.layers)
        for loop in range(self.config.loop_num):
            for i, layer in enumerate(self.layers):
                kwargs = dict(loop=loop, meta=meta, kv_global=kv_global[i],
                              gate=self.gate_projections[i] if loop else None)
                hidden, kv = layer(hidden, cos, sin, **kwargs)
                if loop == 0:
                    kv_global[i] = kv
        if meta.cache is not None:
            meta.cache.advance(input_ids.shape[1])
        return self.norm(hidden)


@dataclass
class CausalLMOutput:
    logits: torch.Tensor  # (B, L, vocab_size), in the model's dtype


class LoopCoderForCausalLM(nn.Module):
    """LoopCoder with its LM head. `attn_implementation` picks the gated loop attention of loops >= 2:
    "fused" (iquest_core.ops.loop_attention), "reference" (two SDPA calls + gate mix) or "banded" (the same
    with the window branch banded, iquest_core.ops.reference.loop_attention_banded)."""

    def __init__(self, config: LoopCoderConfig, attn_implementation: str = "fused") -> None:
        super().__init__()
        self.config = config
        self.model = LoopCoderModel(config, attn_implementation)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        self.tie_weights()
        self.apply(self._init_weights)

    def tie_weights(self) -> None:
        """Share lm_head.weight with model.embed_tokens.weight when config.tie_word_embeddings."""
        if self.config.tie_word_embeddings:
            self.lm_head.weight = self.model.embed_tokens.weight

    def _init_weights(self, module: nn.Module) -> None:
        std = self.config.initializer_range
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=std)
            if getattr(module, "bias", None) is not None:
                nn.init.zeros_(module.bias)

    def forward(self, input_ids: torch.Tensor, position_ids: torch.Tensor | None = None,
                cu_seqlens: torch.Tensor | None = None, max_seqlen: int | None = None,
                cache: LoopCache | None = None, logits_to_keep: int = 0) -> CausalLMOutput:
        """Logits (B, L, vocab) for input_ids (B, L) (int64 token ids).

        position_ids (B, L): defaults to 0..L-1 (or to cache.length + 0..L-1 with a cache).
        cu_seqlens (num_docs + 1,) int32 with B = 1: packed documents, offsets into the L tokens ending at
        L; no attention across documents; position_ids then default to restarting at 0 per document.
        max_seqlen: optional bound on the longest document (saves the op a host sync).
        cache: a LoopCache from `new_cache` for incremental decoding (no cu_seqlens).
        logits_to_keep: if > 0, logits of the last that many positions only (B, logits_to_keep, vocab).
        After apply_cp(model, group) (context parallelism, applied from outside the model), input_ids is
        this rank's zigzag shard (zigzag_shard) of sequences of cp * L tokens, position_ids default to the
        shard's global positions (restarting per document with cu_seqlens, which then describe the whole
        sequence of cp * L tokens), and the logits are the shard's.
        """
        position_ids = self._check_inputs(input_ids, position_ids, cu_seqlens, cache)
        if isinstance(logits_to_keep, bool) or not isinstance(logits_to_keep, int) or logits_to_keep < 0:
            raise ValueError(f"logits_to_keep: expected a non-negative int, got {logits_to_keep!r}")
        meta = AttentionMetadata(position_ids, cu_seqlens=cu_seqlens, max_seqlen=max_seqlen, cache=cache)
        for layer in self.model.layers:
            layer.self_attn.backend.check(meta)
        hidden = self.model(input_ids, meta)
        return CausalLMOutput(logits=self.lm_head(hidden[:, -logits_to_keep:] if logits_to_keep else hidden))

    def new_cache(self) -> LoopCache:
        """Empty decode caches for `forward(..., cache=)`: a full loop-1 cache and a window cache per later
        loop, for every layer."""
        return LoopCache(self.config.num_hidden_layers, self.config.loop_num, self.config.loop_window_size)

    def _check_inputs(self, input_ids, position_ids, cu_seqlens, cache) -> torch.Tensor:
        if not isinstance(input_ids, torch.Tensor) or input_ids.dim() != 2 or input_ids.dtype.is_floating_point:
            raise ValueError(f"input_ids: expected an integer tensor (B, L), got "
                             f"{getattr(input_ids, 'shape', type(input_ids).__name__)}")
        batch, length = input_ids.shape
        if cu_seqlens is not None:
            if batch != 1:
                raise ValueError(f"input_ids: packed documents (cu_seqlens) need batch size 1, got shape "
                                 f"{tuple(input_ids.shape)}")
            if cache is not None:
                raise ValueError("cache: incremental decoding of packed documents (cu_seqlens) is not supported")
            if not isinstance(cu_seqlens, torch.Tensor) or cu_seqlens.dtype != torch.int32 or cu_seqlens.dim() != 1 \
                    or cu_seqlens.numel() < 2:
                raise ValueError(f"cu_seqlens: expected a 1-D int32 tensor (num_docs + 1,), got {cu_seqlens.dtype} "
                                 f"{tuple(cu_seqlens.shape)}")
        if position_ids is not None:
            if position_ids.shape != input_ids.shape:
                raise ValueError(f"position_ids: expected shape {tuple(input_ids.shape)} like input_ids, got "
                                 f"{tuple(position_ids.shape)}")
            return position_ids
        if cache is not None:
            return torch.arange(cache.length, cache.length + length, device=input_ids.device).expand(batch, length)
        backend = self.model.layers[0].self_attn.backend
        return backend.positions(length, input_ids.device, cu_seqlens).expand(batch, length)

    # --- Hugging Face layout and generation (implemented in checkpoint.py and generation.py) ---

    @classmethod
    def from_pretrained(cls, path: str | Path, *, dtype: torch.dtype | None = None,
                        device: torch.device | str = "cpu", attn_implementation: str = "fused") -> LoopCoderForCausalLM:
        """Load config.json + model.safetensors (or a sharded model.safetensors.index.json) from a local
        directory. dtype: cast floating weights to it (None: keep the stored dtypes). Mismatched keys or
        shapes raise CheckpointMismatchError (a ValueError) listing every one."""
        return load_pretrained(cls, path, dtype=dtype, device=device, attn_implementation=attn_implementation)

    def save_pretrained(self, path: str | Path, *, max_shard_bytes: int | None = None) -> None:
        """Write config.json and model.safetensors (or shards + index when larger than max_shard_bytes)."""
        save_pretrained(self, path, max_shard_bytes=max_shard_bytes)

    def generate(self, input_ids: torch.Tensor, max_new_tokens: int, **kwargs):
        """Greedy or sampled decoding with the two-level cache; see iquest_core.model.generation.generate."""
        return generate(self, input_ids, max_new_tokens, **kwargs)
