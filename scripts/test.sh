#!/usr/bin/env bash
# The test command: set-up (idempotent), the C++ unit tests of csrc/ through CMake + ctest, then pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
cmake -S . -B build/cmake -G Ninja -DCMAKE_MAKE_PROGRAM="$(command -v ninja)" > /dev/null
cmake --build build/cmake
(cd build/cmake && ctest --output-on-failure)
python -m pytest tests "$@"
