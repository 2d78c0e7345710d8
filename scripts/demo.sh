#!/usr/bin/env bash
# The main job: set-up, then a tiny LoopCoder trained for a few dozen steps on the package's own source
# files (byte-level tokens; fused loop attention), printing loss and tokens/s with a progress bar.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/python -m iquest_core.train.demo "$@"
