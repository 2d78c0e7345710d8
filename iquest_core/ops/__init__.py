"""Fused ops of iquest-core; each module holds one op's checks, registration and entry point."""

from iquest_core.ops.attention_with_lse import attention_with_lse
from iquest_core.ops.loop_attention import loop_attention

__all__ = ["attention_with_lse", "loop_attention"]
