"""The only door to the kernels of iquest-core; each module holds one op's checks, registration and entry point."""

from iquest_core.ops.attention_with_lse import attention_with_lse
from iquest_core.ops.fingerprint import fingerprint, fingerprint_many
from iquest_core.ops.loop_attention import loop_attention

__all__ = ["attention_with_lse", "fingerprint", "fingerprint_many", "loop_attention"]
