"""Direct calls of every torch.ops.iquest attention and fingerprint op with mismatched shapes, dtypes,
devices or scalars raise ValueError naming the argument: the C++ bindings check everything themselves
(CPU and CUDA registrations), and the fake implementations (meta tensors, torch.compile) do too."""

import pytest
import torch

import iquest_core.ops  # noqa: F401  (registers the ops and their fake implementations)
from tests.helpers import CUDA_ONLY

OPS = torch.ops.iquest
B, L, LK, H, HKV, D = 2, 9, 11, 4, 2, 16


def _attention_args():
    q, k, v = torch.randn(B, L, H, D), torch.randn(B, LK, HKV, D), torch.randn(B, LK, HKV, D)
    return dict(q=q, k=k, v=v, q_start=3, k_start=0, window=0, scale=0.25, cu_seqlens=None, max_seqlen=None,
                out_f32=False)


def _attention_backward_args():
    a = _attention_args()
    out, lse = OPS.attention_with_lse(*a.values())
    return dict(grad_out=torch.randn_like(out), grad_lse=torch.randn_like(lse), q=a["q"], k=a["k"], v=a["v"], out=out,
                lse=lse, q_start=3, k_start=0, window=0, scale=0.25, cu_seqlens=None, max_seqlen=None, grads_f32=False)


def _loop_args():
    q = torch.randn(B, L, H, D)
    kvs = {name: torch.randn(B, L, HKV, D) for name in ("k_global", "v_global", "k_local", "v_local")}
    return dict(q=q, **kvs, gate_weight=torch.randn(H, D), gate_bias=torch.randn(H), window=4, scale=0.25,
                cu_seqlens=None, max_seqlen=None)


def _loop_backward_args():
    a = _loop_args()
    _, out_global, out_local, lse_global, lse_local, gate = OPS.loop_attention(*a.values())
    tensors = {k: a[k] for k in ("q", "k_global", "v_global", "k_local", "v_local", "gate_weight", "gate_bias")}
    return dict(grad_out=torch.randn_like(a["q"]), **tensors, out_global=out_global, out_local=out_local,
                lse_global=lse_global, lse_local=lse_local, gate=gate, window=4, scale=0.25, cu_seqlens=None,
                max_seqlen=None)


ARGS = {"attention_with_lse": _attention_args, "attention_with_lse_backward": _attention_backward_args,
        "loop_attention": _loop_args, "loop_attention_backward": _loop_backward_args}

CASES = [
    ("attention_with_lse", dict(q=torch.randn(B, L, H)), r"q: expected a 4-D tensor"),
    ("attention_with_lse", dict(k=torch.randn(B, LK + 1, HKV, D)), r"v: expected shape .* like k"),
    ("attention_with_lse", dict(k=torch.randn(B + 1, LK, HKV, D)), r"k: expected shape .* with B=2 and D=16 from q"),
    ("attention_with_lse", dict(v=torch.randn(B, LK, HKV, D + 1)), r"v: expected shape .* with B=2 and D=16 from q"),
    ("attention_with_lse", dict(k=torch.randn(B, LK, 3, D), v=torch.randn(B, LK, 3, D)),
     r"k: expected a number of KV heads dividing the 4"),
    ("attention_with_lse", dict(v=torch.randn(B, LK, HKV, D, dtype=torch.float64)), r"v: expected dtype torch.float32"),
    ("attention_with_lse", dict(q_start=-1), r"q_start: expected a non-negative int"),
    ("attention_with_lse", dict(window=-2), r"window: expected an int >= "),
    ("attention_with_lse", dict(scale=0.0), r"scale: expected a positive"),
    ("attention_with_lse", dict(max_seqlen=4), r"max_seqlen: only meaningful with cu_seqlens"),
    ("attention_with_lse", dict(q=torch.randn(7, H, D), k=torch.randn(7, HKV, D), v=torch.randn(7, HKV, D),
                                cu_seqlens=torch.tensor([[0, 7]], dtype=torch.int32)),
     r"cu_seqlens: expected a 1-D int32 tensor"),
    ("attention_with_lse_backward", dict(out=torch.randn(B, L + 1, H, D)), r"out: expected shape like q"),
    ("attention_with_lse_backward", dict(grad_out=torch.randn(B, L, H, D - 1)), r"grad_out: expected shape like q"),
    ("attention_with_lse_backward", dict(lse=torch.randn(B, L, H)), r"lse: expected shape \(B, H, Lq\)"),
    ("attention_with_lse_backward", dict(grad_lse=torch.randn(B, H, L + 2)), r"grad_lse: expected shape like lse"),
    ("attention_with_lse_backward", dict(lse=torch.randn(B, H, L, dtype=torch.float64)), r"lse: expected dtype torch.float32"),
    ("attention_with_lse_backward", dict(k=torch.randn(B, LK, HKV, 8)), r"k: expected shape .* with B=2 and D=16 from q"),
    ("loop_attention", dict(k_global=torch.randn(B, L + 1, HKV, D), v_global=torch.randn(B, L + 1, HKV, D),
                            k_local=torch.randn(B, L + 1, HKV, D), v_local=torch.randn(B, L + 1, HKV, D)),
     r"k_global: expected the query length L=9"),
    ("loop_attention", dict(v_local=torch.randn(B, L - 1, HKV, D)), r"v_local: expected shape .* like k_global"),
    ("loop_attention", dict(gate_weight=torch.randn(H, D + 1)), r"gate_weight: expected shape \(H, D\)"),
    ("loop_attention", dict(gate_bias=torch.randn(H + 1)), r"gate_bias: expected shape \(H,\)"),
    ("loop_attention", dict(gate_bias=torch.randn(H, dtype=torch.float16)), r"gate_bias: expected dtype torch.float32"),
    ("loop_attention", dict(window=0), r"window: expected an int >= 1"),
    ("loop_attention", dict(q=torch.randn(B, L, H, 300), gate_weight=torch.randn(H, 300)),
     r"k_global: expected shape .* with B=2 and D=300 from q"),
    ("loop_attention_backward", dict(out_global=torch.randn(B, L, H, D + 1)), r"out_global: expected shape"),
    ("loop_attention_backward", dict(lse_local=torch.randn(B, L)), r"lse_local: expected shape"),
    ("loop_attention_backward", dict(gate=torch.randn(B, L, H, dtype=torch.bfloat16)), r"gate: expected dtype torch.float32"),
    ("loop_attention_backward", dict(grad_out=torch.randn(B, L + 1, H, D)), r"grad_out: expected shape like q"),
]


def _call(op, overrides, device="cpu", moved=()):
    args = ARGS[op]()
    args.update(overrides)
    args = {k: (v.to(device) if isinstance(v, torch.Tensor) and (k in moved or not moved) else v)
            for k, v in args.items()}
    return getattr(OPS, op)(*args.values())


# cu_seqlens contents: the CPU binding reads them (host memory); fake tensors have none.
CONTENT_CASES = [
    ("attention_with_lse", dict(q=torch.randn(7, H, D), k=torch.randn(7, HKV, D), v=torch.randn(7, HKV, D),
                                cu_seqlens=torch.tensor([0, 9], dtype=torch.int32)),
     r"cu_seqlens: expected the last offset to equal the number of tokens 7, got 9"),
    ("loop_attention", dict(q=torch.randn(7, H, D), **{n: torch.randn(7, HKV, D) for n in ("k_global", "v_global",
                                                                                        "k_local", "v_local")},
                            cu_seqlens=torch.tensor([0, 5, 3, 7], dtype=torch.int32)),
     r"cu_seqlens: expected non-decreasing offsets, got 5 then 3"),
]


@pytest.mark.parametrize("op,overrides,message", CASES + CONTENT_CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES + CONTENT_CASES)])
def test_cpu_binding_refuses_bad_arguments(op, overrides, message):
    with pytest.raises(ValueError, match=message):
        _call(op, overrides)


@pytest.mark.parametrize("op,overrides,message", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_fake_implementation_refuses_bad_arguments(op, overrides, message):
    """All on the meta device: the fake implementation (what torch.compile traces) checks like the binding."""
    with pytest.raises(ValueError, match=message):
        _call(op, overrides, device="meta")


@pytest.mark.parametrize("op,name", [("attention_with_lse", "k"), ("attention_with_lse_backward", "lse"),
                                     ("loop_attention", "gate_weight"), ("loop_attention_backward", "gate")])
def test_one_tensor_on_another_device_is_refused(op, name):
    with pytest.raises(ValueError, match=rf"{name}: expected device cpu like q, got meta"):
        _call(op, {}, device="meta", moved=(name,))


_HALF_PRECISION = {"q", "k", "v", "k_global", "v_global", "k_local", "v_local", "out", "grad_out", "gate_weight",
                   "gate_bias"}


@pytest.mark.parametrize("op,name", [("attention_with_lse", "v"), ("attention_with_lse_backward", "grad_out"),
                                     ("loop_attention", "k_local"), ("loop_attention_backward", "out_local")])
@pytest.mark.parametrize("device", CUDA_ONLY, indirect=True)
def test_cuda_binding_refuses_a_cpu_tensor(device, op, name):
    args = {}
    for key, value in ARGS[op]().items():
        if isinstance(value, torch.Tensor):
            value = value.to(torch.bfloat16) if key in _HALF_PRECISION else value
            value = value if key == name else value.to(device)
        args[key] = value
    with pytest.raises(ValueError, match=rf"{name}: expected device cuda"):
        getattr(OPS, op)(*args.values())


def test_fingerprint_many_refuses_mixed_devices():
    with pytest.raises(ValueError, match=r"tensors\[1\]: expected device cpu like tensors\[0\], got meta"):
        OPS.fingerprint_many([torch.ones(3), torch.ones(2, device="meta")])
