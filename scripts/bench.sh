#!/usr/bin/env bash
# All benchmarks (bench/: fused loop attention vs unfused and SDPA, context parallelism, model training
# step, fingerprints; CUDA ones where a GPU exists), printed side by side and saved to bench-results/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
python -m pip install -qq $(python -c "import tomllib; print(' '.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['optional-dependencies']['bench']))")
mkdir -p bench-results
python -m pytest bench/ --benchmark-only --benchmark-json=bench-results/benchmarks.json \
  --benchmark-columns=median,min,rounds -q "$@"
