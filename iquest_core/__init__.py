"""iquest-core: the training stack for IQuest-Coder-V1 and its looped variant LoopCoder."""

import torch  # noqa: F401  (loads libtorch, which the compiled extension links against)

from iquest_core import _C  # noqa: F401  (registers the kernels as torch ops of the iquest namespace)

__version__ = "0.1.0"
