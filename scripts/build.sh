#!/usr/bin/env bash
# Configures and builds aim into ${AIM_BUILD_DIR:-build} (Release, ccache when present).
# Arguments name the targets to build (default: everything, tests included), e.g.
#   bash scripts/build.sh aim-train aim-probe
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${AIM_BUILD_DIR:-build}
JOBS=${AIM_JOBS:-$(nproc)}
launcher=()
if command -v ccache >/dev/null; then
  launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
  # The precompiled header makes ccache refuse every file unless it may ignore the PCH's
  # __DATE__/__TIME__ and mtime checks; paths relative to the checkout let two clones
  # (or a re-clone in another folder) share one cache.
  export CCACHE_SLOPPINESS=${CCACHE_SLOPPINESS:-pch_defines,time_macros,include_file_mtime,include_file_ctime}
  export CCACHE_BASEDIR=${CCACHE_BASEDIR:-$PWD}
  export CCACHE_NOHASHDIR=${CCACHE_NOHASHDIR:-1}
fi
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=${AIM_BUILD_TYPE:-Release} "${launcher[@]}" ${AIM_CMAKE_ARGS:-}
targets=()
for t in "$@"; do targets+=(--target "$t"); done
cmake --build "$BUILD_DIR" -j "$JOBS" "${targets[@]}"
