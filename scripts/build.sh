#!/usr/bin/env bash
# Configures and builds aim into ${AIM_BUILD_DIR:-build} (Release, ccache when present).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${AIM_BUILD_DIR:-build}
JOBS=${AIM_JOBS:-$(nproc)}
launcher=()
if command -v ccache >/dev/null; then launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache); fi
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=${AIM_BUILD_TYPE:-Release} "${launcher[@]}" ${AIM_CMAKE_ARGS:-}
cmake --build "$BUILD_DIR" -j "$JOBS"
