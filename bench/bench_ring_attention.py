"""Context-parallel loop attention: forward+backward with cp=2 gloo ranks of one thread each against one
process with one thread (the same work per core) and with two (the same cores), on the same full problem (B=1, L=8192, H=8, D=128, W=64, fp32); and the bytes
each rank sends per step. The ranks live in persistent worker processes so that process start-up and
group creation stay outside the timed step. A second group runs the same row as 16 packed documents
(cu_seqlens, no attention across them) through the ring, against the ring on the whole row and one
process on the packed documents."""

import multiprocessing
import socket

import pytest
import torch
import torch.distributed as dist

from iquest_core.ops import loop_attention

B, L, H, D, W, CP = 1, 8192, 8, 128, 64, 2
DOCS_GROUP = f"fwd+bwd fp32 L={L}, 16 documents (1 thread per rank)"


def _cu_seqlens():
    """16 documents of 6 to 1242 tokens (mean 512), the same in every process."""
    gen = torch.Generator().manual_seed(1)
    cuts = torch.randperm(L - 1, generator=gen)[:15].add(1).sort().values
    return torch.cat([torch.tensor([0]), cuts, torch.tensor([L])]).to(torch.int32)


def _inputs(seed=0):
    gen = torch.Generator().manual_seed(seed)
    tensors = [torch.randn(B, L, H, D, generator=gen) for _ in range(5)]
    tensors += [torch.randn(H, D, generator=gen) * D**-0.5, torch.zeros(H)]
    return tensors, torch.randn(B, L, H, D, generator=gen)


def _rank_main(rank, port, commands, results):
    from iquest_core.parallel import p2p, ring_loop_attention, zigzag_shard

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=CP)
    full, grad_out = _inputs()
    shards = [zigzag_shard(t).requires_grad_() for t in full[:5]] + [t.requires_grad_() for t in full[5:]]
    grad_shard = zigzag_shard(grad_out)
    documents = {"cu_seqlens": _cu_seqlens()}
    while (command := commands.get()) != "stop":
        p2p.reset_bytes_sent()
        ring_loop_attention(*shards, window=W, **(documents if command == "documents" else {})).backward(grad_shard)
        dist.barrier()
        results.put(p2p.bytes_sent())
    dist.destroy_process_group()


@pytest.fixture(scope="module")
def ranks():
    ctx = multiprocessing.get_context("spawn")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    commands, results = [ctx.Queue() for _ in range(CP)], ctx.Queue()
    procs = [ctx.Process(target=_rank_main, args=(r, port, commands[r], results)) for r in range(CP)]
    for p in procs:
        p.start()
    yield commands, results
    for q in commands:
        q.put("stop")
    for p in procs:
        p.join()


def _ring_step(ranks, command, sent):
    commands, results = ranks
    for q in commands:
        q.put(command)
    sent.extend(results.get() for _ in range(CP))


def test_cp2_forward_backward(benchmark, record_median, ranks):
    sent = []

    def step():
        _ring_step(ranks, "step", sent)

    benchmark.group = f"fwd+bwd fp32 L={L} (1 thread per rank)"
    benchmark.pedantic(step, rounds=3, warmup_rounds=1)
    benchmark.extra_info["bytes_sent_per_rank_per_step"] = max(sent)
    print(f"\nbytes sent per rank per step: {max(sent) / 2**20:.1f} MiB")
    record_median(benchmark.group, "ring_cp2", benchmark, subject=True)
    record_median(DOCS_GROUP, "ring_cp2_whole_row", benchmark)


def test_cp2_documents_forward_backward(benchmark, record_median, ranks):
    sent = []
    benchmark.group = DOCS_GROUP
    benchmark.pedantic(lambda: _ring_step(ranks, "documents", sent), rounds=3, warmup_rounds=1)
    benchmark.extra_info["bytes_sent_per_rank_per_step"] = max(sent)
    record_median(DOCS_GROUP, "ring_cp2_documents", benchmark, subject=True)


def _single_process(benchmark, threads, step):
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        benchmark.pedantic(step, rounds=3, warmup_rounds=1)
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("threads", [1, CP])
def test_single_process(benchmark, record_median, threads):
    full, grad_out = _inputs()
    leaves = [t.requires_grad_() for t in full]
    benchmark.group = f"fwd+bwd fp32 L={L} (1 thread per rank)"
    _single_process(benchmark, threads, lambda: loop_attention(*leaves, window=W).backward(grad_out))
    record_median(benchmark.group, f"single_process_{threads}_threads", benchmark)


@pytest.mark.parametrize("threads", [1, CP])
def test_single_process_documents(benchmark, record_median, threads):
    full, grad_out = _inputs()
    leaves = [t[0].clone().requires_grad_() for t in full[:5]] + [t.requires_grad_() for t in full[5:]]
    cu_seqlens = _cu_seqlens()
    benchmark.group = DOCS_GROUP
    _single_process(benchmark, threads,
                    lambda: loop_attention(*leaves, window=W, cu_seqlens=cu_seqlens).backward(grad_out[0]))
    record_median(DOCS_GROUP, f"single_process_documents_{threads}_threads", benchmark)
