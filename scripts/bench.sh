#!/usr/bin/env bash
# The main job for now: set-up, then the loop-attention benchmarks (fused vs unfused vs one causal
# SDPA call), printed as a table of medians and ratios and saved to bench-results/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
mkdir -p bench-results
python -m pytest bench/bench_loop_attention.py --benchmark-only --benchmark-json=bench-results/loop_attention.json \
  --benchmark-columns=median,min,rounds -q "$@"
