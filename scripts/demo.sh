#!/usr/bin/env bash
# The main job: set-up, then the Code-Flow pipeline in miniature on this repository's sources and git
# history and the Python standard library: data tools -> tokenizer -> shards -> pre-training -> annealing
# -> mid-training -> SFT -> export -> sample completions, with progress bars and a loss plot
# (runs/codeflow/loss.png). Arguments go to the pipeline (--output DIR, --scale S).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/python -m iquest_core.jobs.pipeline "$@"
