"""Builds iquest_core._C: the C++ CPU kernels always; the CUDA kernels (csrc/**/cuda/*.cu and the
python/*.cu registrations) when nvcc and a CUDA build of torch are present. IQUEST_SKIP_CUDA_BUILD=1
builds CPU-only; TORCH_CUDA_ARCH_LIST picks the GPU targets (default 9.0, Hopper). Install with
`pip install -e . --no-build-isolation` so that the build sees the installed torch."""

import glob
import importlib.util
import os
import re
import shutil
import subprocess

import torch
from setuptools import setup


def cuda_home_of_nvcc() -> str | None:
    """The toolkit folder of the nvcc on PATH, even when PATH holds a wrapper script (nvcc reports it)."""
    if shutil.which("nvcc") is None:
        return None
    dryrun = subprocess.run(["nvcc", "--dryrun", "-c", "-x", "cu", os.devnull], capture_output=True, text=True)
    top = re.search(r"TOP=(\S+)", dryrun.stdout + dryrun.stderr)
    return os.path.realpath(top.group(1)) if top else None


# cpp_extension reads CUDA_HOME when imported: settle it first.
if "CUDA_HOME" not in os.environ and cuda_home_of_nvcc():
    os.environ["CUDA_HOME"] = cuda_home_of_nvcc()

from torch.utils.cpp_extension import BuildExtension, CppExtension, CUDAExtension  # noqa: E402

ROOT = os.path.dirname(os.path.abspath(__file__))
CXX_FLAGS = ["-O3", "-std=c++20", "-fopenmp"]
NVCC_FLAGS = ["-O3", "-std=c++20", "--expt-relaxed-constexpr", "-lineinfo"]


def sources(pattern: str) -> list[str]:
    return sorted(os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, pattern), recursive=True))


def package_dir(package: str, *parts: str) -> str | None:
    """A folder inside an installed package (found without importing it), or None."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = os.path.join(spec.submodule_search_locations[0], *parts)
    return path if os.path.isdir(path) else None


def build_cuda() -> bool:
    if os.environ.get("IQUEST_SKIP_CUDA_BUILD") == "1":
        return False
    return torch.version.cuda is not None and shutil.which("nvcc") is not None


def extension():
    cpu_sources = sources("csrc/**/cpu/*.cpp") + sources("csrc/text/*.cpp") + sources("python/*.cpp")
    if not build_cuda():
        return CppExtension(name="iquest_core._C", sources=cpu_sources, include_dirs=[ROOT],
                            extra_compile_args={"cxx": CXX_FLAGS}, extra_link_args=["-fopenmp"])
    os.environ.setdefault("TORCH_CUDA_ARCH_LIST", "9.0")
    # Headers the toolkit lacks (cusparse.h, cublas_v2.h, ...) come from the nvidia wheels; CUTLASS/CuTe
    # from the nvidia-cutlass package.
    include_dirs = [ROOT] + [d for d in (package_dir("nvidia", "cu13", "include"),
                                         package_dir("cutlass_library", "source", "include")) if d]
    return CUDAExtension(
        name="iquest_core._C",
        sources=cpu_sources + sources("csrc/**/cuda/*.cu") + sources("python/*.cu"),
        include_dirs=include_dirs,
        extra_compile_args={"cxx": CXX_FLAGS, "nvcc": NVCC_FLAGS},
        extra_link_args=["-fopenmp"],
    )


setup(
    ext_modules=[extension()],
    cmdclass={"build_ext": BuildExtension.with_options(use_ninja=True)},
)
