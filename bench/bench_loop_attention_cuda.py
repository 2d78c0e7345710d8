"""GPU benchmark of the fused gated loop attention against what a user would otherwise run:

- fused:        iquest_core.ops.loop_attention (one CUDA kernel per direction, plus the small
                row-statistics kernel of the backward);
- unfused:      iquest_core.ops.reference.loop_attention_reference (two scaled_dot_product_attention
                calls + the gate mix, as inference engines run LoopCoder today);
- sdpa_causal:  one causal SDPA call on the flash backend over the same q/k/v (the floor: the global
                branch alone).

Default problem (issue 3's acceptance point): bf16, D=128, B*L = 16k tokens with L = 8192, H = 16,
window 64. FLOPs: 4 * B * H * L * L * D / 2 for the causal branch plus 4 * B * H * D * (visited window
pairs) for the window branch (sdpa_causal counts the causal branch only); backward counts 2.5x the
forward FLOPs (the FlashAttention convention). Times are CUDA-event medians.

Run `python bench/bench_loop_attention_cuda.py [--length 8192 --tokens 16384 --heads 16 ...]`, or
through pytest (`pytest bench/bench_loop_attention_cuda.py -s`); skipped without CUDA. Results are
printed with the card name and written to bench-results/loop_attention_cuda.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

# Acceptance targets of issue 3 (H100, bf16, D=128, B*L=16k, L=8192).
TARGET_FWD_TFLOPS = 300.0
TARGET_BWD_TFLOPS = 200.0
TARGET_VS_CAUSAL = 1.15  # fused time / one causal SDPA flash call, at most
TARGET_VS_UNFUSED = 1.6  # unfused time / fused time, at least


def flops(batch: int, heads: int, length: int, head_dim: int, window: int, *, causal_only: bool = False) -> float:
    causal = 4.0 * batch * heads * length * length * head_dim / 2
    if causal_only:
        return causal
    w = min(window, length)
    window_pairs = w * length - w * (w - 1) / 2  # sum over queries of min(i + 1, W)
    return causal + 4.0 * batch * heads * head_dim * window_pairs


def _median_ms(fn, warmup: int, iters: int) -> float:
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(iters):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def _impls(window: int):
    from iquest_core.ops import loop_attention
    from iquest_core.ops.reference import loop_attention_reference

    def causal_sdpa(q, k_global, v_global, *unused):
        from torch.nn.attention import SDPBackend, sdpa_kernel

        with sdpa_kernel(SDPBackend.FLASH_ATTENTION):
            return F.scaled_dot_product_attention(q.transpose(1, 2), k_global.transpose(1, 2),
                                                  v_global.transpose(1, 2), is_causal=True).transpose(1, 2)

    return {
        "fused": lambda *a: loop_attention(*a, window=window),
        "unfused": lambda *a: loop_attention_reference(*a, window=window),
        "sdpa_causal": causal_sdpa,
    }


def run(length: int = 8192, tokens: int = 16384, heads: int = 16, kv_heads: int | None = None, head_dim: int = 128,
        window: int = 64, dtype: torch.dtype = torch.bfloat16, warmup: int = 3, iters: int = 10) -> dict:
    kv_heads = kv_heads or heads
    batch = max(1, tokens // length)
    device = torch.device("cuda")
    torch.manual_seed(0)
    inputs = [torch.randn(batch, length, heads, head_dim, device=device, dtype=dtype)]
    inputs += [torch.randn(batch, length, kv_heads, head_dim, device=device, dtype=dtype) for _ in range(4)]
    inputs += [torch.randn(heads, head_dim, device=device, dtype=dtype) * head_dim**-0.5,
               torch.zeros(heads, device=device, dtype=dtype)]
    inputs = [t.requires_grad_() for t in inputs]
    grad_out = torch.randn(batch, length, heads, head_dim, device=device, dtype=dtype)

    results = {"device": torch.cuda.get_device_name(), "torch": torch.__version__, "batch": batch,
               "length": length, "heads": heads, "kv_heads": kv_heads, "head_dim": head_dim, "window": window,
               "dtype": str(dtype).removeprefix("torch."), "impls": {}}
    for name, fn in _impls(window).items():
        fwd_flops = flops(batch, heads, length, head_dim, window, causal_only=name == "sdpa_causal")
        try:
            with torch.no_grad():
                fwd_ms = _median_ms(lambda: fn(*inputs), warmup, iters)
            out = fn(*inputs)
            leaves = [t for t in inputs if t.requires_grad]
            bwd_ms = _median_ms(lambda: torch.autograd.grad(out, leaves, grad_out, retain_graph=True,
                                                            allow_unused=True), warmup, iters)
            del out
        except torch.OutOfMemoryError as error:
            results["impls"][name] = {"error": f"out of memory: {error}"}
            torch.cuda.empty_cache()
            continue
        results["impls"][name] = {
            "fwd_ms": fwd_ms, "bwd_ms": bwd_ms,
            "fwd_tflops": fwd_flops / fwd_ms / 1e9, "bwd_tflops": 2.5 * fwd_flops / bwd_ms / 1e9,
        }
    return results


def report(results: dict) -> str:
    lines = [f"{results['device']}, torch {results['torch']}, {results['dtype']}, B={results['batch']} "
             f"L={results['length']} H={results['heads']} Hkv={results['kv_heads']} D={results['head_dim']} "
             f"W={results['window']}",
             f"{'impl':<12} {'fwd ms':>9} {'fwd TFLOP/s':>12} {'bwd ms':>9} {'bwd TFLOP/s':>12}"]
    impls = results["impls"]
    for name, r in impls.items():
        if "error" in r:
            lines.append(f"{name:<12} {r['error']}")
            continue
        lines.append(f"{name:<12} {r['fwd_ms']:>9.2f} {r['fwd_tflops']:>12.1f} {r['bwd_ms']:>9.2f} {r['bwd_tflops']:>12.1f}")
    fused, causal, unfused = impls.get("fused", {}), impls.get("sdpa_causal", {}), impls.get("unfused", {})
    if "fwd_ms" in fused:
        checks = [("fused fwd TFLOP/s", fused["fwd_tflops"], f">= {TARGET_FWD_TFLOPS:g}",
                   fused["fwd_tflops"] >= TARGET_FWD_TFLOPS),
                  ("fused bwd TFLOP/s", fused["bwd_tflops"], f">= {TARGET_BWD_TFLOPS:g}",
                   fused["bwd_tflops"] >= TARGET_BWD_TFLOPS)]
        if "fwd_ms" in causal:
            ratio = fused["fwd_ms"] / causal["fwd_ms"]
            checks.append(("fused / causal SDPA (fwd)", ratio, f"<= {TARGET_VS_CAUSAL:g}", ratio <= TARGET_VS_CAUSAL))
        if "fwd_ms" in unfused:
            for mode in ("fwd", "bwd"):
                speedup = unfused[f"{mode}_ms"] / fused[f"{mode}_ms"]
                checks.append((f"unfused / fused ({mode})", speedup, f">= {TARGET_VS_UNFUSED:g}",
                               speedup >= TARGET_VS_UNFUSED))
        lines.append("issue 3 targets (meaningful on H100 at the default problem):")
        lines += [f"  {what:<28} {value:>8.2f}  target {target:<8} {'met' if ok else 'NOT met'}"
                  for what, value, target, ok in checks]
    return "\n".join(lines)


def _save(results: dict) -> None:
    out = Path("bench-results")
    out.mkdir(exist_ok=True)
    (out / "loop_attention_cuda.json").write_text(json.dumps(results, indent=2))


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device here")
@pytest.mark.parametrize("length,tokens", [(8192, 16384), (2048, 16384)])
def test_loop_attention_cuda(length, tokens):
    import iquest_core  # noqa: F401

    results = run(length=length, tokens=tokens)
    print("\n" + report(results))
    if length == 8192:
        _save(results)
    assert "fwd_ms" in results["impls"]["fused"], results["impls"]["fused"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--length", type=int, default=8192)
    parser.add_argument("--tokens", type=int, default=16384, help="B * L")
    parser.add_argument("--heads", type=int, default=16)
    parser.add_argument("--kv-heads", type=int, default=None)
    parser.add_argument("--head-dim", type=int, default=128, choices=(64, 128))
    parser.add_argument("--window", type=int, default=64)
    parser.add_argument("--dtype", choices=("bf16", "fp16"), default="bf16")
    parser.add_argument("--iters", type=int, default=10)
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("no CUDA device here: nothing to benchmark")
        return 0
    import iquest_core  # noqa: F401

    results = run(length=args.length, tokens=args.tokens, heads=args.heads, kv_heads=args.kv_heads,
                  head_dim=args.head_dim, window=args.window,
                  dtype=torch.bfloat16 if args.dtype == "bf16" else torch.float16, iters=args.iters)
    print(report(results))
    _save(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
