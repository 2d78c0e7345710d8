"""Context-parallel (ring) attention over zigzag shards, built on the attention_with_lse block op.

Every rank holds zigzag shards (B, 2c, H, D) of q and (B, 2c, Hkv, D) of k/v: chunks r and 2cp-1-r of
a sequence cut into 2cp chunks of c tokens (iquest_core.parallel.zigzag).

- Global causal branch: K/V (packed into one tensor) travel around the ring with P2P transfers, the
  next transfer in flight while the current block computes. A (query chunk, key chunk) pair whose keys
  all follow its queries is skipped; the others give partial (out, lse), out in float32 straight from
  the kernel, merged in float32 by log-sum-exp. Backward: K/V travel again and their accumulated
  float32 gradients travel with them, arriving home after the last step; each block's gradient uses the
  merged out/lse, which makes it exact.
- Window branch of loop attention: a query chunk needs the window-1 keys before it, which live at the
  end of the preceding chunk (on rank r-1 for chunk r, on rank r+1 for chunk 2cp-1-r, on itself for
  chunk cp). One symmetric neighbour exchange brings these halos; backward sends their gradients home.
- The gate is local: iquest_core.ops.gate.gate_mix of the two branches' float32 outputs, whose
  autograd hands each branch its share of the output gradient. gate_weight/gate_bias gradients are
  this rank's own contribution: the trainer's gradient reduction over the data x context group sums
  them like any replicated parameter's.
- Packed documents (cu_seqlens of the whole sequence, the same on every rank): every block is run as
  the calls iquest_core.parallel.documents.block_calls plans, which keep attention inside documents;
  an off-diagonal block no document spans is skipped. Transfers are the same as without documents.
"""

from __future__ import annotations

import torch
import torch.distributed as dist

from iquest_core.ops import attention_with_lse
from iquest_core.ops.attention_with_lse import attention_with_lse_backward
from iquest_core.ops.gate import gate_mix
from iquest_core.ops.input_checks import check_qkv, check_window, resolve_scale
from iquest_core.parallel.documents import BlockCall, block_calls, host_bounds
from iquest_core.parallel.p2p import exchange, ring_shift
from iquest_core.parallel.zigzag import zigzag_chunks


def _merge(acc, out, lse):
    """Log-sum-exp merge of a float32 partial (out (B, c, H, D), lse (B, H, c)) into acc, in float32."""
    if acc is None:
        return out, lse
    acc_out, acc_lse = acc
    new_lse = torch.logaddexp(acc_lse, lse)
    weight = lambda part_lse: torch.exp(part_lse - new_lse).nan_to_num(0.0).transpose(1, 2)[..., None]  # noqa: E731
    return acc_out * weight(acc_lse) + out * weight(lse), new_lse


def _chunk(t: torch.Tensor, index: int, size: int, dim: int = 1) -> torch.Tensor:
    return t.narrow(dim, index * size, size)


def _rows(t: torch.Tensor, rows: tuple[int, int], dim: int = 1) -> torch.Tensor:
    return t.narrow(dim, rows[0], rows[1] - rows[0])


def _call_args(call: BlockCall, device: torch.device) -> tuple[dict, bool]:
    """attention_with_lse(_backward) keyword arguments of a block call, and whether it runs packed (its
    tensors then drop the batch dim, B = 1)."""
    if call.cu_seqlens is None:
        return {"q_start": call.q_start, "k_start": call.k_start}, False
    cu_seqlens = torch.tensor(call.cu_seqlens, dtype=torch.int32).to(device, non_blocking=True)
    return {"cu_seqlens": cu_seqlens, "max_seqlen": call.max_seqlen}, True


def _run_call(call: BlockCall, q, k, v, window, scale):
    """attention_with_lse of one block call: float32 out (B, rows, H, D) and lse (B, H, rows)."""
    kwargs, packed = _call_args(call, q.device)
    inputs = (_rows(q, call.q_rows), _rows(k, call.k_rows), _rows(v, call.k_rows))
    out, lse = attention_with_lse(*(t[0] if packed else t for t in inputs), window=window, scale=scale,
                                  out_f32=True, **kwargs)
    return (out[None], lse[None]) if packed else (out, lse)


def _block_forward(q, k, v, calls, window, scale):
    """Partial attention of the query chunk q (B, c, H, D) over the keys k, v run as `calls`: float32 out
    like q (0 in rows no call covers) and lse (B, H, c) (-inf there); None without calls."""
    if not calls:
        return None
    if len(calls) == 1 and calls[0].q_rows == (0, q.shape[1]):
        return _run_call(calls[0], q, k, v, window, scale)
    out = torch.zeros(q.shape, dtype=torch.float32, device=q.device)
    lse = torch.full((q.shape[0], q.shape[2], q.shape[1]), float("-inf"), device=q.device)
    for call in calls:
        call_out, call_lse = _run_call(call, q, k, v, window, scale)
        _rows(out, call.q_rows).copy_(call_out)
        _rows(lse, call.q_rows, dim=2).copy_(call_lse)
    return out, lse


def _block_backward(dout, q, k, v, out, lse, calls, window, scale, grads):
    """Adds the float32 gradients of the block run as `calls` (given the merged out and lse of the query
    chunk) into grads = (dq like q, dk like k, dv like v)."""
    for call in calls:
        q_rows, k_rows = call.q_rows, call.k_rows
        kwargs, packed = _call_args(call, q.device)
        inputs = [_rows(dout, q_rows), _rows(q, q_rows), _rows(k, k_rows), _rows(v, k_rows), _rows(out, q_rows),
                  _rows(lse, q_rows, dim=2)]
        dout_c, q_c, k_c, v_c, out_c, lse_c = (t[0] if packed else t for t in inputs)
        parts = attention_with_lse_backward(dout_c, None, q_c, k_c, v_c, out_c, lse_c, window=window, scale=scale,
                                            grads_f32=True, **kwargs)
        for grad, part, rows in zip(grads, parts, (q_rows, k_rows, k_rows)):
            _rows(grad, rows).add_(part[None] if packed else part)


def _ring_step_pairs(rank, step, cp):
    """(local query chunk, its chunk id, local key chunk, its chunk id) pairs that ring step `step` computes
    on `rank`: those whose keys do not all follow their queries."""
    for qi, q_chunk_id in enumerate(zigzag_chunks(rank, cp)):
        for kj, k_chunk_id in enumerate(zigzag_chunks((rank - step) % cp, cp)):
            if k_chunk_id <= q_chunk_id:
                yield qi, q_chunk_id, kj, k_chunk_id


def _ring_block_calls(q_chunk_id, k_chunk_id, c, bounds):
    return block_calls(q_chunk_id * c, (q_chunk_id + 1) * c, k_chunk_id * c, (k_chunk_id + 1) * c, bounds)


def ring_causal_forward(q, k, v, group, scale, bounds=None):
    """Causal attention of the zigzag shard q over the whole (ring-distributed) sequence, inside the
    documents of `bounds` (host cu_seqlens of the whole sequence; None: one sequence).
    Returns out (B, 2c, H, D) float32 and lse (B, H, 2c)."""
    cp, rank = dist.get_world_size(group), dist.get_rank(group)
    c = q.shape[1] // 2
    acc = [None, None]
    kv = torch.stack([k, v])
    for step in range(cp):
        in_flight = ring_shift(kv, group) if step < cp - 1 else None
        for qi, q_chunk_id, kj, k_chunk_id in _ring_step_pairs(rank, step, cp):
            part = _block_forward(_chunk(q, qi, c), _chunk(kv[0], kj, c), _chunk(kv[1], kj, c),
                                  _ring_block_calls(q_chunk_id, k_chunk_id, c, bounds), None, scale)
            if part is not None:
                acc[qi] = _merge(acc[qi], *part)
        if in_flight is not None:
            kv = in_flight.wait()[0]
    return torch.cat([acc[0][0], acc[1][0]], dim=1), torch.cat([acc[0][1], acc[1][1]], dim=2)


def ring_causal_backward(dout, q, k, v, out, lse, group, scale, bounds=None):
    """Gradients (float32) of ring_causal_forward given the merged out and lse."""
    cp, rank = dist.get_world_size(group), dist.get_rank(group)
    c = q.shape[1] // 2
    dq = torch.zeros(q.shape, dtype=torch.float32, device=q.device)
    kv = torch.stack([k, v])
    dkv = torch.zeros(kv.shape, dtype=torch.float32, device=q.device)
    for step in range(cp):
        in_flight = ring_shift(kv, group) if step < cp - 1 else None
        for qi, q_chunk_id, kj, k_chunk_id in _ring_step_pairs(rank, step, cp):
            _block_backward(_chunk(dout, qi, c), _chunk(q, qi, c), _chunk(kv[0], kj, c), _chunk(kv[1], kj, c),
                            _chunk(out, qi, c), _chunk(lse, qi, c, dim=2),
                            _ring_block_calls(q_chunk_id, k_chunk_id, c, bounds), None, scale,
                            (_chunk(dq, qi, c), _chunk(dkv[0], kj, c), _chunk(dkv[1], kj, c)))
        if in_flight is not None:  # finished before the next transfer, so the two can never be matched crosswise
            kv = in_flight.wait()[0]
        dkv = ring_shift(dkv, group).wait()[0]  # to the next holder of this block; after the last step: home
    return dq, dkv[0], dkv[1]


def _halo_peers(rank: int, cp: int) -> tuple[int | None, int | None]:
    """Ranks holding the chunks that precede this rank's (first, second) chunk; None when the first chunk
    starts the sequence; the second chunk's predecessor is this rank's own first chunk when rank = cp-1."""
    return (rank - 1 if rank > 0 else None), (rank + 1 if rank < cp - 1 else None)


def exchange_halos(kv, halo, group):
    """kv (2, B, 2c, Hkv, D) -> the halos (2, B, <= halo, Hkv, D) preceding this rank's two chunks."""
    cp, rank = dist.get_world_size(group), dist.get_rank(group)
    c = kv.shape[2] // 2
    if halo == 0:
        return kv[:, :, :0], kv[:, :, :0]
    first_tail, second_tail = kv[:, :, c - halo:c], kv[:, :, 2 * c - halo:]
    before_first, before_second = _halo_peers(rank, cp)
    sends, recvs = [], []
    if rank + 1 < cp:
        sends.append((first_tail, rank + 1))
    if rank > 0:
        sends.append((second_tail, rank - 1))
    if before_first is not None:
        recvs.append((torch.empty(first_tail.shape, dtype=kv.dtype, device=kv.device), before_first))
    if before_second is not None:
        recvs.append((torch.empty(second_tail.shape, dtype=kv.dtype, device=kv.device), before_second))
    received = exchange(sends, recvs, group).wait()
    halo_first = received.pop(0) if before_first is not None else kv[:, :, :0]
    halo_second = received.pop(0) if before_second is not None else first_tail
    return halo_first, halo_second


def return_halo_grads(d_halos, dkv, group):
    """Adds the gradients of the halos this rank received, (d_halo_first, d_halo_second), into their
    owners' dkv (2, B, 2c, Hkv, D) float32; in place on dkv."""
    cp, rank = dist.get_world_size(group), dist.get_rank(group)
    c = dkv.shape[2] // 2
    d_first, d_second = d_halos
    halo = d_second.shape[2]
    if halo == 0:
        return
    before_first, before_second = _halo_peers(rank, cp)
    sends, recvs = [], []
    if before_first is not None:
        sends.append((d_first, before_first))
    if before_second is not None:
        sends.append((d_second, before_second))
    if rank + 1 < cp:
        recvs.append((torch.empty_like(d_second), rank + 1))
    if rank > 0:
        recvs.append((torch.empty_like(d_second), rank - 1))
    received = exchange(sends, recvs, group).wait()
    if rank + 1 < cp:
        dkv[:, :, c - halo:c] += received.pop(0)
    if rank > 0:
        dkv[:, :, 2 * c - halo:] += received.pop(0)
    if before_second is None:
        dkv[:, :, c - halo:c] += d_second


def _window_block_calls(chunk_id, c, halo, bounds):
    return block_calls(chunk_id * c, (chunk_id + 1) * c, chunk_id * c - halo, (chunk_id + 1) * c, bounds)


def window_forward(q, kv, halos, window, scale, group, bounds=None):
    """Window branch of each local chunk over (halo, chunk) keys, inside the documents of `bounds`:
    out (B, 2c, H, D) float32, lse (B, H, 2c)."""
    cp, rank = dist.get_world_size(group), dist.get_rank(group)
    c = q.shape[1] // 2
    outs, lses = [], []
    for qi, (chunk_id, halo) in enumerate(zip(zigzag_chunks(rank, cp), halos)):
        keys = torch.cat([halo, _chunk(kv, qi, c, dim=2)], dim=2)
        calls = _window_block_calls(chunk_id, c, halo.shape[2], bounds)
        out, lse = _block_forward(_chunk(q, qi, c), keys[0], keys[1], calls, window, scale)
        outs.append(out)
        lses.append(lse)
    return torch.cat(outs, dim=1), torch.cat(lses, dim=2)


def window_backward(dout, q, kv, halos, out, lse, window, scale, group, bounds=None):
    """Gradients (float32) of window_forward: dq, dkv (2, B, 2c, Hkv, D) with halo gradients sent home."""
    cp, rank = dist.get_world_size(group), dist.get_rank(group)
    c = q.shape[1] // 2
    dq = torch.zeros(q.shape, dtype=torch.float32, device=q.device)
    dkv = torch.empty(kv.shape, dtype=torch.float32, device=q.device)
    d_halos = []
    for qi, (chunk_id, halo) in enumerate(zip(zigzag_chunks(rank, cp), halos)):
        keys = torch.cat([halo, _chunk(kv, qi, c, dim=2)], dim=2)
        h = halo.shape[2]
        dkeys = torch.zeros(keys.shape, dtype=torch.float32, device=q.device)
        _block_backward(_chunk(dout, qi, c), _chunk(q, qi, c), keys[0], keys[1], _chunk(out, qi, c),
                        _chunk(lse, qi, c, dim=2), _window_block_calls(chunk_id, c, h, bounds), window, scale,
                        (_chunk(dq, qi, c), dkeys[0], dkeys[1]))
        _chunk(dkv, qi, c, dim=2).copy_(dkeys[:, :, h:])
        d_halos.append(dkeys[:, :, :h])
    return_halo_grads(d_halos, dkv, group)
    return dq, dkv


class _RingCausal(torch.autograd.Function):
    """Causal attention over the ring: out float32 (B, 2c, H, D)."""

    @staticmethod
    def forward(ctx, q, k, v, group, scale, bounds):
        out, lse = ring_causal_forward(q, k, v, group, scale, bounds)
        ctx.save_for_backward(q, k, v, out, lse)
        ctx.group, ctx.scale, ctx.bounds = group, scale, bounds
        return out

    @staticmethod
    def backward(ctx, dout):
        q, k, v, out, lse = ctx.saved_tensors
        dq, dk, dv = ring_causal_backward(dout, q, k, v, out, lse, ctx.group, ctx.scale, ctx.bounds)
        return dq.to(q.dtype), dk.to(k.dtype), dv.to(v.dtype), None, None, None


class _RingWindow(torch.autograd.Function):
    """Sliding-window attention of the zigzag shards with halos from the neighbours: out float32."""

    @staticmethod
    def forward(ctx, q, k, v, group, window, scale, bounds):
        kv = torch.stack([k, v])
        halos = exchange_halos(kv, window - 1, group)
        out, lse = window_forward(q, kv, halos, window, scale, group, bounds)
        ctx.save_for_backward(q, kv, *halos, out, lse)
        ctx.group, ctx.window, ctx.scale, ctx.bounds = group, window, scale, bounds
        return out

    @staticmethod
    def backward(ctx, dout):
        q, kv, halo_first, halo_second, out, lse = ctx.saved_tensors
        dq, dkv = window_backward(dout, q, kv, (halo_first, halo_second), out, lse, ctx.window, ctx.scale, ctx.group,
                                  ctx.bounds)
        return dq.to(q.dtype), dkv[0].to(kv.dtype), dkv[1].to(kv.dtype), None, None, None, None


def _check_shards(q, kvs, group, cu_seqlens):
    """The group to run on and the host document boundaries (None without cu_seqlens)."""
    check_qkv(q, kvs, packed=False)
    if q.shape[1] % 2 != 0:
        raise ValueError(f"q: expected a zigzag shard of 2 equal chunks along dim 1, got length {q.shape[1]}")
    for name, t in kvs.items():
        if t.shape[1] != q.shape[1]:
            raise ValueError(f"{name}: expected the shard length {q.shape[1]} of q in dim 1, got {tuple(t.shape)}")
    group = group if group is not None else dist.group.WORLD
    if cu_seqlens is None:
        return group, None
    if q.shape[0] != 1:
        raise ValueError(f"q: packed documents (cu_seqlens) need batch size 1, got shape {tuple(q.shape)}")
    return group, host_bounds(cu_seqlens, q.shape[1] * dist.get_world_size(group))


def ring_attention(q, k, v, *, group=None, scale=None, cu_seqlens=None):
    """Causal attention over the whole sequence from zigzag shards: q (B, 2c, H, D), k/v (B, 2c, Hkv, D)
    -> this rank's shard of the output, q's dtype. Autograd through q, k, v.
    cu_seqlens: packed documents (B = 1), int32 (num_docs + 1,) boundaries of the whole sequence (not the
    shard: 0 .. cp * 2c, strictly increasing, the same on every rank); no attention crosses them. They
    are read on the host (a CPU tensor saves a device synchronisation)."""
    group, bounds = _check_shards(q, {"k": k, "v": v}, group, cu_seqlens)
    return _RingCausal.apply(q, k, v, group, resolve_scale(scale, q.shape[-1]), bounds).to(q.dtype)


def ring_loop_attention(q, k_global, v_global, k_local, v_local, gate_weight, gate_bias, *, group=None, window=64,
                        scale=None, cu_seqlens=None):
    """iquest_core.ops.loop_attention over the whole sequence from this rank's zigzag shards (B, 2c, H, D)
    and (B, 2c, Hkv, D); returns this rank's output shard. Chunks must hold at least window-1 tokens
    (c >= window - 1). Autograd through all seven inputs; the gate parameters' gradients are this
    rank's contribution. cu_seqlens: packed documents of the whole sequence, as in ring_attention."""
    kvs = {"k_global": k_global, "v_global": v_global, "k_local": k_local, "v_local": v_local}
    group, bounds = _check_shards(q, kvs, group, cu_seqlens)
    check_window(window, optional=False)
    chunk = q.shape[1] // 2
    if chunk < window - 1:
        raise ValueError(f"window: expected at most chunk length + 1 = {chunk + 1} (each zigzag chunk must hold the "
                         f"window-1 keys its successor needs), got {window}")
    heads, head_dim = q.shape[-2], q.shape[-1]
    if tuple(gate_weight.shape) != (heads, head_dim) or tuple(gate_bias.shape) != (heads,):
        raise ValueError(f"gate_weight/gate_bias: expected shapes (H, D) = {(heads, head_dim)} and (H,) = {(heads,)}, "
                         f"got {tuple(gate_weight.shape)} and {tuple(gate_bias.shape)}")
    scale = resolve_scale(scale, head_dim)
    out_global = _RingCausal.apply(q, k_global, v_global, group, scale, bounds)
    out_local = _RingWindow.apply(q, k_local, v_local, group, window, scale, bounds)
    return gate_mix(q, out_global, out_local, gate_weight, gate_bias)
