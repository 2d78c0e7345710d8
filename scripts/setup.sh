#!/usr/bin/env bash
# One-time set-up on a fresh machine: .venv with torch 2.14.1 (the local wheel), the pinned test and
# bench dependencies, and an editable install that builds iquest_core._C. Safe to re-run.
set -euo pipefail
cd "$(dirname "$0")/.."

# bubblewrap: the namespaces of iquest_core.sandbox (Debian package).
if ! command -v bwrap >/dev/null 2>&1; then
  apt-get update -qq && apt-get install -y -qq bubblewrap
fi

PYTHON=${PYTHON:-python3.11}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
export PATH="$PWD/.venv/bin:$PATH"
pip install -q --disable-pip-version-check "setuptools==80.9.0" "wheel==0.45.1" "ninja==1.13.2" "torch==2.14.1"
# CUTLASS/CuTe headers for the CUDA kernels (a build requirement only; its own dependencies are not needed).
pip install -q --disable-pip-version-check --no-deps "nvidia-cutlass==4.2.0.0"
pip install -q --disable-pip-version-check --no-build-isolation -e ".[test]"
python -c "import iquest_core, torch; print('iquest_core', iquest_core.__version__, 'built against torch', torch.__version__)"
