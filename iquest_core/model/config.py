"""`LoopCoderConfig`: the model hyper-parameters under their Hugging Face config.json names.

A config.json written by the published checkpoints (``model_type: "iquestloopcoder"``) or by a dense
IQuest-Coder / Llama checkpoint loads with `from_json`; fields this package does not use
(architectures, torch_dtype, auto_map, ...) are kept in `extra` and written back by `to_json`, so a
load/save round trip loses nothing.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

LOOP_MODEL_TYPE = "iquestloopcoder"


@dataclasses.dataclass
class LoopCoderConfig:
    """Hyper-parameters of LoopCoder (loop_num >= 2) and of its dense sibling (loop_num = 1).

    head_dim defaults to hidden_size // num_attention_heads. loop_num is how many times the shared
    layers run; loops >= 2 use gated loop attention with a sliding window of loop_window_size keys.
    """

    vocab_size: int = 76800
    hidden_size: int = 5120
    intermediate_size: int = 27648
    num_hidden_layers: int = 80
    num_attention_heads: int = 40
    num_key_value_heads: int = 8
    head_dim: int | None = None
    hidden_act: str = "silu"
    max_position_embeddings: int = 131072
    rms_norm_eps: float = 1e-5
    rope_theta: float = 500000.0
    rope_scaling: dict[str, Any] | None = None
    attention_bias: bool = False
    mlp_bias: bool = False
    tie_word_embeddings: bool = False
    initializer_range: float = 0.02
    loop_num: int = 2
    loop_window_size: int = 64
    bos_token_id: int | None = None
    eos_token_id: int | list[int] | None = None
    pad_token_id: int | None = None
    model_type: str = LOOP_MODEL_TYPE
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.head_dim is None:
            if self.num_attention_heads < 1 or self.hidden_size % self.num_attention_heads:
                raise ValueError(f"head_dim: not given and hidden_size={self.hidden_size} is not divisible by "
                                 f"num_attention_heads={self.num_attention_heads}")
            self.head_dim = self.hidden_size // self.num_attention_heads
        self.validate()

    def validate(self) -> None:
        """Raise ValueError naming the first field whose value the model cannot run."""
        for name in ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                     "num_key_value_heads", "head_dim", "max_position_embeddings", "loop_num", "loop_window_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}: expected a positive int, got {value!r}")
        if self.num_attention_heads % self.num_key_value_heads:
            raise ValueError(f"num_key_value_heads: expected a divisor of num_attention_heads="
                             f"{self.num_attention_heads}, got {self.num_key_value_heads}")
        if self.hidden_act != "silu":
            raise ValueError(f"hidden_act: only 'silu' (SwiGLU) is supported, got {self.hidden_act!r}")
        scaling = self.rope_scaling
        if scaling is not None and (not isinstance(scaling, dict)
                                    or scaling.get("rope_type", scaling.get("type")) != "default"):
            raise ValueError(f"rope_scaling: only plain RoPE (None or rope_type 'default') is supported, "
                             f"got {self.rope_scaling!r}")
        for name in ("attention_bias", "mlp_bias"):
            if getattr(self, name):
                raise ValueError(f"{name}: LoopCoder projections have no bias; got True")
        if not self.rope_theta > 0 or not self.rms_norm_eps > 0:
            raise ValueError(f"rope_theta, rms_norm_eps: expected positive values, got {self.rope_theta}, "
                             f"{self.rms_norm_eps}")

    @property
    def eos_token_ids(self) -> list[int]:
        """eos_token_id as a list (config.json allows an int or a list)."""
        if self.eos_token_id is None:
            return []
        return [self.eos_token_id] if isinstance(self.eos_token_id, int) else list(self.eos_token_id)

    # --- config.json --------------------------------------------------------------------------------

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> LoopCoderConfig:
        """Known fields become attributes, the rest goes to `extra`. A config without loop_num is the
        dense model (loop_num = 1) unless its model_type is LoopCoder's."""
        names = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        known = {k: v for k, v in values.items() if k in names}
        extra = {k: v for k, v in values.items() if k not in names}
        if "rope_theta" not in known and isinstance(extra.get("rope_parameters"), dict):
            known["rope_theta"] = extra["rope_parameters"].get("rope_theta", cls.rope_theta)  # transformers 5 layout
        if "loop_num" not in known and known.get("model_type", LOOP_MODEL_TYPE) != LOOP_MODEL_TYPE:
            known["loop_num"] = 1
        return cls(**known, extra=extra)

    def to_dict(self) -> dict[str, Any]:
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "extra"}
        return {**self.extra, **values}

    @classmethod
    def from_json(cls, path: str | Path) -> LoopCoderConfig:
        """Read a config.json file (or a directory holding one)."""
        path = Path(path)
        if path.is_dir():
            path = path / "config.json"
        if not path.is_file():
            raise ValueError(f"path: no config.json at {path}")
        return cls.from_dict(json.loads(path.read_text()))

    def to_json(self, path: str | Path) -> None:
        """Write config.json (a directory gets config.json inside it), unknown fields included."""
        path = Path(path)
        if path.is_dir():
            path = path / "config.json"
        path.write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")

    # --- presets ------------------------------------------------------------------------------------

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> LoopCoderConfig:
        """A named configuration (see PRESETS), with fields overridden by keyword."""
        if name not in PRESETS:
            raise ValueError(f"name: unknown preset {name!r}; known: {sorted(PRESETS)}")
        return cls(**{**PRESETS[name], **overrides})


_PUBLISHED = dict(vocab_size=76800, hidden_size=5120, intermediate_size=27648, num_attention_heads=40,
                  num_key_value_heads=8, head_dim=128, rope_theta=500000.0, max_position_embeddings=131072,
                  tie_word_embeddings=False)

PRESETS: dict[str, dict[str, Any]] = {
    # IQuest-Coder-V1-40B-Loop-{Instruct,Thinking} (published config).
    "40B-Loop": dict(_PUBLISHED, num_hidden_layers=80, loop_num=2, loop_window_size=64),
    # The dense IQuest-Coder-V1 sizes: layers, hidden size and heads from the published model table; the
    # other values taken to be 40B-Loop's (parameter counts come out at 7.6B / 14.4B / 39.8B). A
    # checkpoint's own config.json, which from_pretrained reads, always wins.
    "7B": dict(_PUBLISHED, num_hidden_layers=14, loop_num=1, model_type="iquestcoder"),
    "14B": dict(_PUBLISHED, num_hidden_layers=28, loop_num=1, model_type="iquestcoder"),
    "40B": dict(_PUBLISHED, num_hidden_layers=80, loop_num=1, model_type="iquestcoder"),
    # Tests: a few thousand parameters; window 8 so short prompts already exceed it.
    "tiny": dict(vocab_size=128, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, head_dim=16, rope_theta=10000.0, max_position_embeddings=4096,
                 loop_num=2, loop_window_size=8),
    "tiny-dense": dict(vocab_size=128, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                       num_attention_heads=4, num_key_value_heads=2, head_dim=16, rope_theta=10000.0,
                       max_position_embeddings=4096, loop_num=1, model_type="iquestcoder"),
    # CPU training demo and benchmark: byte vocabulary, long rows where attention matters.
    "small-cpu": dict(vocab_size=256, hidden_size=256, intermediate_size=512, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, head_dim=64, rope_theta=10000.0,
                      max_position_embeddings=16384, loop_num=2, loop_window_size=64, tie_word_embeddings=True),
}
