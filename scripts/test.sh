#!/usr/bin/env bash
# The README's test command: install what is missing, build, run the whole suite via CTest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
cd "${AIM_BUILD_DIR:-build}"
ctest --output-on-failure -j "${AIM_TEST_JOBS:-2}" "$@"
