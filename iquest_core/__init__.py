"""iquest-core: the training stack for IQuest-Coder-V1 and its looped variant LoopCoder."""

from iquest_core import _C  # noqa: F401  (registers the torch.ops.iquest kernels)

__version__ = "0.1.0"
