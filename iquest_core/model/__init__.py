"""LoopCoder (IQuest-Coder-V1-Loop) and the dense IQuest-Coder: config, modules, Hugging Face
checkpoint IO and generation, on the fused gated loop attention op."""

from iquest_core.model.cache import LoopCache
from iquest_core.model.checkpoint import CheckpointMismatchError
from iquest_core.model.config import PRESETS, LoopCoderConfig
from iquest_core.model.model import CausalLMOutput, LoopCoderForCausalLM, LoopCoderModel

__all__ = ["PRESETS", "CausalLMOutput", "CheckpointMismatchError", "LoopCache", "LoopCoderConfig",
           "LoopCoderForCausalLM", "LoopCoderModel"]
