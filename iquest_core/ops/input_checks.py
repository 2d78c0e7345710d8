"""Argument checks shared by the attention ops. Each failure raises ValueError naming the argument and
what was expected. They read shapes, dtypes and devices only (never data), so they also run while
torch.compile traces with fake tensors; cu_seqlens contents are checked by the bindings (python/), which
check shapes, dtypes and devices again in C++."""

from __future__ import annotations

import torch

ATTENTION_DTYPES = (torch.float32, torch.bfloat16, torch.float16)
MAX_HEAD_DIM = 256


def _shape(t: torch.Tensor) -> tuple[int, ...]:
    return tuple(t.shape)


def check_tensor(name: str, t: object) -> torch.Tensor:
    if not isinstance(t, torch.Tensor):
        raise ValueError(f"{name}: expected a torch.Tensor, got {type(t).__name__}")
    return t


def check_same_device(named: dict[str, torch.Tensor | None]) -> None:
    items = [(n, t) for n, t in named.items() if t is not None]
    first_name, first = items[0]
    for name, t in items[1:]:
        if t.device != first.device:
            raise ValueError(f"{name}: expected device {first.device} like {first_name}, got {t.device}")


def check_dtype(name: str, t: torch.Tensor, expected: torch.dtype | tuple[torch.dtype, ...]) -> None:
    allowed = expected if isinstance(expected, tuple) else (expected,)
    if t.dtype not in allowed:
        names = " or ".join(str(d) for d in allowed)
        raise ValueError(f"{name}: expected dtype {names}, got {t.dtype}")


def check_shape(name: str, t: torch.Tensor, expected: tuple[int, ...], layout: str) -> None:
    if _shape(t) != expected:
        raise ValueError(f"{name}: expected shape {layout} = {expected}, got {_shape(t)}")


def check_heads(q: torch.Tensor, k: torch.Tensor, k_name: str) -> None:
    heads, kv_heads, head_dim = q.shape[-2], k.shape[-2], q.shape[-1]
    if kv_heads < 1 or heads % kv_heads != 0:
        raise ValueError(f"{k_name}: expected a number of KV heads dividing the {heads} query heads (GQA), got {kv_heads}")
    if not 1 <= head_dim <= MAX_HEAD_DIM:
        raise ValueError(f"q: expected head_dim D in [1, {MAX_HEAD_DIM}], got {head_dim}")


def check_window(window: object, *, optional: bool) -> None:
    if optional and window is None:
        return
    if isinstance(window, bool) or not isinstance(window, int) or window < 1:
        raise ValueError(f"window: expected an int >= 1{' or None' if optional else ''}, got {window!r}")


def resolve_scale(scale: float | None, head_dim: int) -> float:
    """The softmax scale: D**-0.5 by default."""
    if scale is None:
        return head_dim**-0.5
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not scale > 0:
        raise ValueError(f"scale: expected a positive float or None, got {scale!r}")
    return float(scale)


def check_cu_seqlens(cu_seqlens: torch.Tensor, q: torch.Tensor, max_seqlen: int | None) -> None:
    check_tensor("cu_seqlens", cu_seqlens)
    check_dtype("cu_seqlens", cu_seqlens, torch.int32)
    if cu_seqlens.dim() != 1 or cu_seqlens.shape[0] < 2:
        raise ValueError(f"cu_seqlens: expected a 1-D int32 tensor (num_docs + 1,), got shape {_shape(cu_seqlens)}")
    if max_seqlen is not None and (isinstance(max_seqlen, bool) or not isinstance(max_seqlen, int) or max_seqlen < 0):
        raise ValueError(f"max_seqlen: expected a non-negative int or None, got {max_seqlen!r}")


def resolve_max_seqlen(cu_seqlens: torch.Tensor | None, max_seqlen: int | None) -> int | None:
    """max_seqlen as given. Packed CUDA inputs without it: the longest document, read from cu_seqlens (one
    host synchronisation; callers that know it, like the packer and the loader, pass it instead)."""
    if cu_seqlens is None or max_seqlen is not None or not cu_seqlens.is_cuda:
        return max_seqlen
    return int((cu_seqlens[1:] - cu_seqlens[:-1]).max())


def check_qkv(q: torch.Tensor, kvs: dict[str, torch.Tensor], *, packed: bool) -> None:
    """q (B, L, H, D) or packed (T, H, D); every k/v (B, Lk, Hkv, D) or (T, Hkv, D), one dtype."""
    check_tensor("q", q)
    for name, t in kvs.items():
        check_tensor(name, t)
    rank = 3 if packed else 4
    layout = "(T, H, D)" if packed else "(B, L, H, D)"
    if q.dim() != rank:
        hint = "" if packed else "; a 3-D q is the packed layout (T, H, D) and needs cu_seqlens"
        raise ValueError(f"q: expected a {rank}-D tensor {layout}, got shape {_shape(q)}{hint}")
    check_dtype("q", q, ATTENTION_DTYPES)
    lead = "T" if packed else "B"
    kv_layout = "(T, Hkv, D)" if packed else "(B, Lk, Hkv, D)"
    first_name, first = next(iter(kvs.items()))
    for name, t in kvs.items():
        check_dtype(name, t, q.dtype)
        if t.dim() != rank or t.shape[0] != q.shape[0] or t.shape[-1] != q.shape[-1]:
            raise ValueError(f"{name}: expected shape {kv_layout} with {lead}={q.shape[0]} and D={q.shape[-1]} "
                             f"from q, got {_shape(t)}")
        check_shape(name, t, _shape(first), f"{kv_layout} like {first_name}")
    check_heads(q, first, first_name)
    check_same_device({"q": q, **kvs})
