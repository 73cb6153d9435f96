#!/usr/bin/env bash
# Installs everything aim needs on Debian 12 (as root, or with sudo available).
# Idempotent: packages already present are left alone, so re-running costs seconds.
#   bash scripts/setup.sh           # everything: build, run, test, plot
#   bash scripts/setup.sh --demo    # what scripts/demo.sh needs: PACKAGES without TEST_PACKAGES
#                                   # (70 packages and 83 MB fewer for a first look; scripts/test.sh adds them)
set -euo pipefail

PACKAGES=(
  build-essential cmake ccache pkg-config
  libtorch-dev            # LibTorch 1.13 (CPU) with c10d, Gloo, TCPStore
  libgloo-dev             # headers c10d's ProcessGroupGloo needs
  libopenblas0-pthread    # takes over libblas.so.3: ~30x faster matmuls than reference BLAS
  libopencv-dev           # PNG/WebP decode, resize
  libjpeg62-turbo-dev     # scaled + cropped JPEG decoding straight from libjpeg-turbo
  zlib1g-dev              # reading .gz IDX files (Fashion-MNIST)
  curl                    # http(s):// webdataset shards are streamed through curl
  iproute2                # `ip netns`/veth: the two-node tests run each node in a network namespace
  universal-ctags         # scripts/check_unity_names.py: the unity build's file-local names stay unique
  libprotobuf-dev protobuf-compiler  # TensorBoard event records (proto/tensorboard/, train.tensorboard)
  libyaml-cpp-dev libspdlog-dev libcli11-dev nlohmann-json3-dev
  libgtest-dev googletest
  python3                       # the demo's summary of metrics.jsonl
  dataset-fashion-mnist         # the embedded default dataset
)
TEST_PACKAGES=(
  python3-torch python3-numpy   # PyTorch reference for the parity tests
  python3-torchvision python3-pil  # scripts/reference/ref_loader.py, the loader benchmark's reference
  python3-matplotlib            # plots of scaling studies
)
case "${1:-}" in
  --demo) ;;
  "") PACKAGES+=("${TEST_PACKAGES[@]}") ;;
  *) echo "usage: bash scripts/setup.sh [--demo]" >&2; exit 2 ;;
esac

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ((${#missing[@]})); then
  echo "[setup] installing: ${missing[*]}"
  SUDO=""
  if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -q
  $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
else
  echo "[setup] all packages present"
fi
