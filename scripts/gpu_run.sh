#!/usr/bin/env bash
# One command for a GPU machine that has a pip PyTorch (CUDA), CMake and a compiler but none
# of aim's other dependencies and no network: unpacks the bundle scripts/gpu_bundle.sh made,
# configures and builds aim against the wheel's LibTorch, and runs scripts/gpu_check.sh,
# keeping every step's log.
#
# Usage (in the repository root): scripts/gpu_run.sh [bundle.tar.xz] [log_dir]
#   bundle  default gpu-bundle/aim-deps.tar.xz (scripts/gpu_bundle.sh writes it there)
#   log_dir default $OUT/gpu-run when $OUT is set (the device tool's result folder), else runs/gpu-run
# env: AIM_PYTHON (python3), AIM_CUDA_ARCH (9.0 = Hopper), AIM_GPU_TESTS=1 also builds and runs
#      the GoogleTest suite's CUDA-relevant tests, GPU_CHECK_* as in gpu_check.sh.
# The PyTorch reference that gpu_check.sh's first section compares against is the
# repository's own scripts/reference/ref_aim.py.
set -uo pipefail
cd "$(dirname "$0")/.."
BUNDLE=${1:-gpu-bundle/aim-deps.tar.xz}
LOGS=${2:-${OUT:+$OUT/gpu-run}}
LOGS=${LOGS:-runs/gpu-run}
PY=${AIM_PYTHON:-python3}
DEPS=${AIM_DEPS_DIR:-/tmp/aim-deps-root}
BUILD=${AIM_BUILD_DIR:-build-gpu}
mkdir -p "$LOGS"
step() { echo "=== $* ($(date +%T))" | tee -a "$LOGS/steps.log"; }
fail() { echo "gpu_run: $*" | tee -a "$LOGS/steps.log" >&2; exit 1; }

step "unpack $BUNDLE"
[[ -f "$BUNDLE" ]] || fail "no bundle at $BUNDLE (make it with scripts/gpu_bundle.sh on the build machine)"
rm -rf "$DEPS" && mkdir -p "$DEPS" && tar -C "$DEPS" -xJf "$BUNDLE" || fail "cannot unpack $BUNDLE"
PREFIX=$DEPS/aim-deps/usr
TORCH_PREFIX=$("$PY" -c 'import torch; print(torch.utils.cmake_prefix_path)') || fail "$PY has no torch"
TORCH_LIB=$("$PY" -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')
export LD_LIBRARY_PATH=$PREFIX/lib/x86_64-linux-gnu:$TORCH_LIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export PATH=$PREFIX/bin:$PATH  # protoc
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader; "$PY" -c \
  'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "gpus", torch.cuda.device_count())'; \
  command -v nvcc && nvcc --version | tail -1; } 2>&1 | tee "$LOGS/machine.log"

step "configure ($BUILD)"
gen=(); command -v ninja >/dev/null && gen=(-G Ninja)
tests=OFF; [[ "${AIM_GPU_TESTS:-0}" == 1 ]] && tests=ON
cmake -S . -B "$BUILD" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$TORCH_PREFIX;$PREFIX" \
  -DTORCH_CUDA_ARCH_LIST="${AIM_CUDA_ARCH:-9.0}" -DAIM_PYTHON="$(command -v "$PY")" -DAIM_BUILD_TESTS=$tests \
  -DProtobuf_PROTOC_EXECUTABLE="$PREFIX/bin/protoc" >"$LOGS/configure.log" 2>&1 ||
  { tail -30 "$LOGS/configure.log"; fail "configure failed (log: $LOGS/configure.log)"; }
step "build"
cmake --build "$BUILD" -j "$(nproc)" >"$LOGS/build.log" 2>&1 ||
  { grep -m 20 -E "error|Error" "$LOGS/build.log"; fail "build failed (log: $LOGS/build.log)"; }
if [[ $tests == ON ]]; then
  step "tests"
  (cd "$BUILD" && ctest -j 8 --output-on-failure) >"$LOGS/ctest.log" 2>&1; tail -5 "$LOGS/ctest.log"
fi

step "gpu_check.sh"
AIM_BUILD_DIR=$BUILD AIM_PYTHON=$PY bash scripts/gpu_check.sh "$LOGS/check" 2>&1 | tee "$LOGS/gpu_check.log"
rc=${PIPESTATUS[0]}
step "done: gpu_check.sh exit $rc; logs in $LOGS"
exit "$rc"
