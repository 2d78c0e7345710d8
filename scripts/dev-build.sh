#!/usr/bin/env bash
# Developer rebuild of iquest_core._C in place (incremental, ninja), CPU kernels only unless
# IQUEST_SKIP_CUDA_BUILD=0 is given. Serialised by a lock so that parallel sessions never build at once.
set -euo pipefail
cd "$(dirname "$0")/.."
export IQUEST_SKIP_CUDA_BUILD=${IQUEST_SKIP_CUDA_BUILD:-1}
exec flock /tmp/iquest-build.lock .venv/bin/python setup.py -q build_ext --inplace
