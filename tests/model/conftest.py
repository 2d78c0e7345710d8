"""Model tests run on the CPU in float32 (the acceptance tolerances are float32 ones; the CUDA kernels
take only bfloat16/float16 at head_dim 64/128, see tests/helpers.py)."""

import pytest
import torch

from iquest_core.model import LoopCoderConfig, LoopCoderForCausalLM


def make_model(preset: str = "tiny", seed: int = 0, attn_implementation: str = "fused", **overrides):
    """A tiny random model; a larger init than training's so logits are far from uniform (argmax
    decisions are not near-ties)."""
    torch.manual_seed(seed)
    config = LoopCoderConfig.preset(preset, **{"initializer_range": 0.1, **overrides})
    return LoopCoderForCausalLM(config, attn_implementation=attn_implementation).eval()


@pytest.fixture
def tiny_model():
    return make_model()
