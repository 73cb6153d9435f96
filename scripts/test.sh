#!/usr/bin/env bash
# The README's test command: install what is missing, build, run the whole suite via CTest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
cd "${AIM_BUILD_DIR:-build}"
# setup.sh installed every test dependency: a test that would skip for a missing one fails.
export AIM_TESTS_REQUIRE_DEPS=1
ctest --output-on-failure -j "${AIM_TEST_JOBS:-2}" "$@"
