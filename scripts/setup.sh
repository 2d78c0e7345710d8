#!/usr/bin/env bash
# One-time set-up on a fresh machine: .venv with torch 2.14.1 (the local wheel), the pinned test and
# bench dependencies, and an editable install that builds iquest_core._C. Safe to re-run.
set -euo pipefail
cd "$(dirname "$0")/.."

# bubblewrap: the namespaces of iquest_core.sandbox; util-linux (setpriv, unshare) and mount: its
# prelude when run as root (Debian packages).
if [ "$(command -v bwrap setpriv unshare mount | wc -l)" -lt 4 ]; then
  apt-get update -qq && apt-get install -y -qq bubblewrap util-linux mount
fi

PYTHON=${PYTHON:-python3.11}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
export PATH="$PWD/.venv/bin:$PATH"
# -qq: errors only (a machine's pip configuration may name index or wheel folders that do not exist; pip
# warns about each one on every call).
PIP=(pip install -qq --disable-pip-version-check)
"${PIP[@]}" "setuptools==80.9.0" "wheel==0.45.1" "ninja==1.13.2" "torch==2.14.1"
# CUTLASS/CuTe headers for the CUDA kernels: a build requirement only, whose own dependencies are not
# needed. Kept in .venv/cutlass, outside site-packages and without its dist-info, so that pip does not
# count it as installed and never reports those dependencies as missing; the build finds it through
# PYTHONPATH.
if [ ! -d .venv/cutlass/cutlass_library ]; then
  "${PIP[@]}" --no-deps --target .venv/cutlass "nvidia-cutlass==4.2.0.0"
fi
rm -rf .venv/cutlass/*.dist-info
if pip show -qq nvidia-cutlass >/dev/null 2>&1; then  # put into site-packages by earlier set-ups
  pip uninstall -qq -y nvidia-cutlass
fi
PYTHONPATH="$PWD/.venv/cutlass${PYTHONPATH:+:$PYTHONPATH}" "${PIP[@]}" --no-build-isolation -e ".[test]"
# BFCL's data for `iquest eval bfcl`: the wheel's JSON only; its pinned dependencies (API clients) are
# neither needed nor wanted.
"${PIP[@]}" --no-deps "bfcl-eval==2026.3.23"
python -c "import iquest_core, torch; print('iquest_core', iquest_core.__version__, 'built against torch', torch.__version__)"
