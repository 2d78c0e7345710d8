"""Fingerprint throughput against what a user would otherwise run over the same tensor: a copy into a
preallocated buffer (`copy_`: one read and one write of every byte, no allocation; what a
checksum-by-copy scheme costs at best), x.clone() (the same plus a fresh 256 MiB allocation, whose page
faults dominate on the CPU) and, where it exists, torch.hash_tensor (a 64-bit reduction, xor by default:
blind to swaps and to pairs of flips). 256 MiB of float32 on the CPU, and on CUDA where present; the
summary marks fingerprint as the subject."""

import pytest
import torch

from iquest_core.reliability import fingerprint
from tests.helpers import DEVICES

NUMEL = 64 * 2**20  # 256 MiB of float32


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


IMPLS = {"fingerprint": fingerprint, "copy_": None, "clone": torch.Tensor.clone}
if hasattr(torch, "hash_tensor"):
    IMPLS["hash_tensor"] = torch.hash_tensor


@pytest.fixture(scope="module", params=DEVICES)
def big(request):
    return torch.randn(NUMEL, device=request.param)


@pytest.mark.parametrize("impl", list(IMPLS))
def test_fingerprint_256mib(benchmark, record_median, big, impl):
    fn = IMPLS[impl]
    if impl == "copy_":
        buffer = torch.empty_like(big)
        fn = buffer.copy_

    def run():
        out = fn(big)
        sync(big.device)
        return out

    group = f"fingerprint 256MiB f32 {big.device.type}"
    benchmark.group = group
    benchmark.pedantic(run, rounds=7, warmup_rounds=1)
    benchmark.extra_info["GB/s"] = big.nbytes / benchmark.stats.stats.median / 1e9
    record_median(group, impl, benchmark, subject=impl == "fingerprint")
