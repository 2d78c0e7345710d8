"""fingerprint / fingerprint_many: the numpy statement of the formula, the detection properties the
guard relies on, and independence from strides, thread count and device."""

import importlib
import re
from pathlib import Path

import pytest
import torch

from iquest_core.reliability import digest_hex, fingerprint, fingerprint_many
from iquest_core.reliability.reference import DTYPE_CODES, fingerprint_reference

DTYPES = list(DTYPE_CODES)  # every dtype the formula defines a code for


def random_tensor(shape, dtype, device="cpu"):
    """Fresh random values of any dtype (random bytes reinterpreted; bool from random bits)."""
    if dtype == torch.bool:
        return torch.randint(0, 2, shape, device=device).bool()
    numel = torch.Size(shape).numel()
    itemsize = torch.empty(0, dtype=dtype).element_size()
    raw = torch.randint(0, 256, (numel * itemsize,), dtype=torch.uint8, device=device)
    return raw.view(dtype).reshape(shape)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("shape", [(), (0,), (1,), (3, 5), (7, 1, 3), (2, 70001)], ids=str)
def test_matches_numpy_reference(dtype, shape, device):
    t = random_tensor(shape, dtype, device)
    assert fingerprint(t).cpu().tolist() == fingerprint_reference(t).tolist()


def test_the_reference_codes_are_the_kernels_codes():
    """DTYPE_CODES mirrors the FingerprintDtype enum of csrc/fingerprint/fingerprint.h, code for code."""
    header = (Path(__file__).parents[2] / "csrc" / "fingerprint" / "fingerprint.h").read_text()
    enum = header[header.index("enum class FingerprintDtype"):]
    enum = enum[:enum.index("}")]
    codes = {int(code) for code in re.findall(r"k\w+ = (\d+)", enum)}
    assert codes == set(DTYPE_CODES.values()) and len(codes) == len(DTYPE_CODES) == 21


@pytest.mark.parametrize("view", ["transpose", "step", "offset", "expand"])
def test_strides_do_not_matter(view, device):
    base = torch.randn(64, 33, device=device)
    t = {"transpose": base.t(), "step": base[::3, 1::2], "offset": base.reshape(-1)[1:],
         "expand": base[:1].expand(5, 33)}[view]
    assert not t.is_contiguous() or t.data_ptr() % 8 != 0
    assert torch.equal(fingerprint(t), fingerprint(t.contiguous().clone()))


def test_dtype_and_shape_are_part_of_the_digest():
    t = torch.randn(4, 6)
    digests = fingerprint_many([t, t.reshape(6, 4), t.reshape(24), t.view(torch.int32), t.reshape(1, 4, 6)])
    assert len({tuple(d) for d in digests.tolist()}) == 5


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float8_e4m3fn, torch.bool], ids=str)
def test_every_single_bit_flip_changes_the_digest(dtype, device):
    t = random_tensor((5, 3), dtype, device)
    raw = t.reshape(-1).view(torch.uint8)
    flipped = []
    for byte in range(raw.numel()):
        for bit in range(8):
            f = raw.clone()
            f[byte] ^= 1 << bit
            flipped.append(f.view(dtype).reshape(t.shape))
    digests = fingerprint_many(flipped).tolist()
    assert fingerprint(t).tolist() not in digests
    assert len({tuple(d) for d in digests}) == len(digests)


def test_bit_flips_anywhere_in_a_large_tensor(device):
    t = torch.randn(3 * 2**17 + 3, device=device)  # several kernel blocks and a partial last word
    raw = t.view(torch.uint8)
    original = fingerprint(t)
    for _ in range(64):
        byte, bit = torch.randint(raw.numel(), ()).item(), torch.randint(8, ()).item()
        raw[byte] ^= 1 << bit
        assert not torch.equal(fingerprint(t), original), (byte, bit)
        raw[byte] ^= 1 << bit
    assert torch.equal(fingerprint(t), original)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.int8], ids=str)
def test_swapping_two_unequal_elements_changes_the_digest(dtype, device):
    t = random_tensor((2**16 + 5,), dtype, device)
    bits = t.view({1: torch.uint8, 2: torch.int16, 4: torch.int32}[t.element_size()])
    original = fingerprint(t)
    swapped = []
    while len(swapped) < 200:
        i, j = torch.randint(t.numel(), (2,)).tolist()
        if bits[i] == bits[j]:
            continue
        s = t.clone()
        s[i], s[j] = t[j], t[i]
        swapped.append(s)
    assert not (fingerprint_many(swapped) == original).all(dim=1).any()


def test_fingerprint_many_equals_fingerprint_of_each(device):
    tensors = [random_tensor(shape, dtype, device) for shape, dtype in
               [((3,), torch.float16), ((0, 4), torch.float32), ((2**17 + 1,), torch.float32), ((9, 9), torch.int8),
                ((1,), torch.bool), ((300, 257), torch.bfloat16)]]
    many = fingerprint_many(tensors)
    assert many.shape == (len(tensors), 2) and many.device == tensors[0].device
    assert torch.equal(many, torch.stack([fingerprint(t) for t in tensors]))
    assert torch.equal(fingerprint_many(tensors[::-1]), many.flip(0))


def test_same_digest_with_one_and_two_threads():
    t = torch.randn(5 * 2**16 + 11)
    threads = torch.get_num_threads()
    try:
        digests = []
        for n in (1, 2):
            torch.set_num_threads(n)
            digests.append(fingerprint_many([t, t[1:], t[::2]]))
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(digests[0], digests[1])
    assert digests[0][0].tolist() == fingerprint_reference(t).tolist()


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float8_e5m2, torch.int64], ids=str)
def test_cpu_and_cuda_digests_are_equal(dtype):
    tensors = [random_tensor(shape, dtype) for shape in [(5,), (2**18 + 3,), (0,), (31, 17)]]
    on_cuda = fingerprint_many([t.cuda() for t in tensors])
    assert on_cuda.is_cuda
    assert torch.equal(on_cuda.cpu(), fingerprint_many(tensors))
    assert torch.equal(fingerprint(tensors[3].cuda().t()).cpu(), fingerprint(tensors[3].t()))


def test_lazy_conjugate_views_are_resolved():
    t = torch.randn(5, dtype=torch.complex64)
    assert t.conj().is_conj()
    assert torch.equal(fingerprint(t.conj()), fingerprint(t.conj().resolve_conj()))
    assert not torch.equal(fingerprint(t.conj()), fingerprint(t))


def test_ignores_autograd_history():
    w = torch.randn(8, requires_grad=True)
    assert torch.equal(fingerprint(w * 2), fingerprint((w * 2).detach()))


def test_digest_hex():
    d = torch.tensor([-1, 255], dtype=torch.int64)
    assert digest_hex(d) == "ffffffffffffffff" + "00000000000000ff"
    with pytest.raises(ValueError, match="digest"):
        digest_hex(torch.zeros(3, dtype=torch.int64))


def test_bad_input_names_the_argument():
    with pytest.raises(ValueError, match="t: expected a torch.Tensor"):
        fingerprint([1.0])
    with pytest.raises(ValueError, match=r"tensors\[1\]: expected a torch.Tensor"):
        fingerprint_many([torch.zeros(1), "x"])
    with pytest.raises(ValueError, match="t: expected a strided"):
        fingerprint(torch.eye(3).to_sparse())
    with pytest.raises(ValueError, match=r"tensors\[1\]: expected a strided"):
        fingerprint_many([torch.zeros(2), torch.eye(2).to_sparse()])


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")
def test_mixed_devices_are_refused():
    with pytest.raises(ValueError, match=r"tensors\[1\]: expected device cuda:0 like tensors\[0\]"):
        fingerprint_many([torch.zeros(2, device="cuda"), torch.zeros(2)])


def test_meta_tensors_give_meta_digests():
    assert fingerprint_many([torch.zeros(2, device="meta"), torch.zeros(3, device="meta")]).shape == (2, 2)


def test_empty_sequence():
    assert fingerprint_many([]).shape == (0, 2)


def test_fingerprint_many_is_one_op_call():
    tensors = [torch.randn(n) for n in (3, 2**17, 40)]
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        fingerprint_many(tensors)
    calls = [e for e in prof.events() if e.name == "iquest::fingerprint_many"]
    assert len(calls) == 1


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")
def test_fingerprint_many_is_one_cuda_kernel():
    tensors = [torch.randn(n, device="cuda") for n in (3, 2**20, 40, 0)]
    fingerprint_many(tensors)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA]) as prof:
        fingerprint_many(tensors)
        torch.cuda.synchronize()
    kernels = [e.name for e in prof.events() if e.device_type == torch.autograd.DeviceType.CUDA
               and "fingerprint" in e.name]
    assert len(kernels) == 1, kernels


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")
def test_first_cuda_use_self_checks_the_kernel():
    module = importlib.import_module("iquest_core.ops.fingerprint")
    module._VERIFIED_DEVICES.clear()
    t = torch.randn(4, device="cuda")
    fingerprint_many([t])
    assert module._VERIFIED_DEVICES == {t.device}


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")
def test_fingerprint_of_one_tensor_self_checks_the_device(monkeypatch):
    from iquest_core.ops import fingerprint as ops_fingerprint
    monkeypatch.setattr(ops_fingerprint, "_VERIFIED_DEVICES", set())
    fingerprint(torch.randn(5, device="cuda"))
    assert ops_fingerprint._VERIFIED_DEVICES == {torch.device("cuda", torch.cuda.current_device())}
