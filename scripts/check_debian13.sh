#!/usr/bin/env bash
# Proves the committed tree builds against LibTorch 2.x, not only Debian 12's 1.13:
#   CPU stage  - Debian 13's libtorch-dev 2.6 (CPU): configure, build, run the whole suite (ctest).
#   CUDA stage - Debian 13's libtorch-cuda-dev 2.6 (CUDA 12.4, NCCL, Gloo-CUDA): configure and
#                build everything; the binaries must link. Nothing runs (no GPU, no cuDNN).
# Both run in a Debian 13 "trixie" root made with debootstrap, so the host stays Debian 12.
# The source is `git archive` of the committed HEAD (AIM_SOURCE_REF): uncommitted edits are not
# built, and the check also proves the commit is self-contained.
#
# Usage (as root):  scripts/check_debian13.sh [--cpu-only | --cuda-only] [--clean]
#   --cpu-only    only the CPU stage          --cuda-only   only the CUDA stage
#   --clean       unmount and delete the root, then exit (the next run starts from debootstrap)
# Environment:
#   AIM_DEBIAN13_ROOT  root directory          (default /var/tmp/aim-debian13; ~10 GB with CUDA)
#   AIM_DEBIAN_MIRROR  Debian mirror URL       (default: the host's apt sources, else deb.debian.org)
#   AIM_JOBS           build and ctest jobs    (default 2)
#   AIM_SOURCE_REF     git ref to check        (default HEAD)
# Re-runnable: debootstrap happens once, apt swaps libtorch-dev <-> libtorch-cuda-dev as needed
# (they conflict) from its package cache, and build dirs (/build-cpu, /build-cuda in the root)
# and ccache persist. Exit status is non-zero if any requested stage failed.
set -euo pipefail

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }

RUN_CPU=1 RUN_CUDA=1 CLEAN=0
for arg in "$@"; do
  case "$arg" in
    --cpu-only) RUN_CUDA=0 ;;
    --cuda-only) RUN_CPU=0 ;;
    --clean) CLEAN=1 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "unknown argument: $arg (see --help)" >&2; exit 2 ;;
  esac
done
if ((RUN_CPU == 0 && RUN_CUDA == 0)); then echo "--cpu-only and --cuda-only exclude each other" >&2; exit 2; fi

ROOT=${AIM_DEBIAN13_ROOT:-/var/tmp/aim-debian13}
ROOT=${ROOT%/}
JOBS=${AIM_JOBS:-2}
REF=${AIM_SOURCE_REF:-HEAD}
REPO=$(cd "$(dirname "$0")/.." && pwd)
LOGDIR=/var/log/aim-check   # inside the root
MARKER=.aim-debian13-root   # written after a complete debootstrap

say() { printf '\n[debian13] %s\n' "$*"; }
die() { printf '\n[debian13] ERROR: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "needs root (debootstrap, chroot, mount); try: sudo $0 $*"
case "$ROOT" in /|/usr|/var|/var/tmp|/tmp|/home|"") die "refusing AIM_DEBIAN13_ROOT=$ROOT" ;; esac
case "$ROOT/" in "$REPO"/*) die "AIM_DEBIAN13_ROOT must be outside the repository" ;; esac

# One run at a time per root: mounts and apt are not shareable.
mkdir -p "$(dirname "$ROOT")"
exec 9>"$ROOT.lock"
flock -n 9 || die "another check holds $ROOT.lock"

# ---------------------------------------------------------------- mounts (undone on any exit)
MOUNTED=()
# shellcheck disable=SC2317  # invoked from the EXIT trap
unmount_all() {
  local i
  for ((i = ${#MOUNTED[@]} - 1; i >= 0; i--)); do
    umount "${MOUNTED[i]}" 2>/dev/null || umount -l "${MOUNTED[i]}" 2>/dev/null || true
  done
  MOUNTED=()
}
trap unmount_all EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

mount_in_root() {  # mount_in_root DIR MOUNT-ARGS...; a stale mount left by a killed run is adopted
  local dst="$ROOT$1"; shift
  mkdir -p "$dst"
  mountpoint -q "$dst" || mount "$@" "$dst"
  MOUNTED+=("$dst")
}

stale_mounts() { findmnt -rn -o TARGET | awk -v r="$ROOT/" 'index($0 "/", r) == 1' | sort -r; }

if ((CLEAN)); then
  if [ -e "$ROOT" ]; then
    # Only what this script (or an interrupted debootstrap, which leaves debootstrap/) created.
    if [ ! -f "$ROOT/$MARKER" ] && [ ! -d "$ROOT/debootstrap" ] && [ -n "$(ls -A "$ROOT")" ]; then
      die "$ROOT does not look like a root made by this script; not removing it"
    fi
    say "removing $ROOT"
    while read -r m; do [ -n "$m" ] && umount -l "$m"; done < <(stale_mounts)
    [ -z "$(stale_mounts)" ] || die "could not unmount everything under $ROOT"
    rm -rf --one-file-system "$ROOT"
  else
    say "$ROOT does not exist; nothing to clean"
  fi
  rm -f "$ROOT.lock"
  exit 0
fi

# ---------------------------------------------------------------- Debian 13 root
detect_mirror() {
  if [ -n "${AIM_DEBIAN_MIRROR:-}" ]; then echo "$AIM_DEBIAN_MIRROR"; return; fi
  local files=() f uri
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] && files+=("$f")
  done
  # deb822 "URIs:" lines and one-line "deb [opts] URI suite" lines; the main archive ends in /debian.
  if ((${#files[@]})); then
    uri=$({ grep -h '^URIs:' "${files[@]}" | sed 's/^URIs:[[:space:]]*//' | tr -s ' \t' '\n'
            grep -hE '^deb[[:space:]]' "${files[@]}" |
              sed -E 's/^deb[[:space:]]+(\[[^]]*\][[:space:]]+)?([^[:space:]]+).*/\2/'; } 2>/dev/null |
          grep -E '^https?://.*/debian/?$' | head -n1 || true)
  fi
  echo "${uri:-http://deb.debian.org/debian}"
}

in_root() {  # run a command in the root with a clean environment
  chroot "$ROOT" /usr/bin/env -i HOME=/root LANG=C.UTF-8 TERM=dumb \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    DEBIAN_FRONTEND=noninteractive CCACHE_DIR=/var/cache/aim-ccache CCACHE_MAXSIZE=5G \
    CCACHE_SLOPPINESS=pch_defines,time_macros,include_file_mtime,include_file_ctime "$@"
}

if [ ! -f "$ROOT/$MARKER" ]; then
  if [ -e "$ROOT" ] && [ -n "$(ls -A "$ROOT" 2>/dev/null)" ]; then
    die "$ROOT exists but is not a complete root from this script (interrupted debootstrap?); run $0 --clean"
  fi
  if ! command -v debootstrap >/dev/null; then
    say "installing debootstrap on the host"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap
  fi
  MIRROR=$(detect_mirror)
  say "debootstrap trixie into $ROOT from $MIRROR (about a minute)"
  debootstrap --components=main,contrib,non-free trixie "$ROOT" "$MIRROR"
  touch "$ROOT/$MARKER"
fi

cp -L /etc/resolv.conf "$ROOT/etc/resolv.conf" 2>/dev/null || true
# No daemons start inside the root when packages are installed.
printf '#!/bin/sh\nexit 101\n' > "$ROOT/usr/sbin/policy-rc.d"
chmod 755 "$ROOT/usr/sbin/policy-rc.d"
mount_in_root /proc -t proc proc
mount_in_root /sys -t sysfs sysfs
mount_in_root /dev --bind /dev
mount_in_root /dev/pts --bind /dev/pts
mkdir -p "$ROOT$LOGDIR"

# ---------------------------------------------------------------- packages
# The packages scripts/setup.sh of the checked commit installs (so a new dependency is picked up
# without editing this file), plus what this check itself needs. The LibTorch variant and what
# depends on it (Gloo, python3-torch*) differ per stage.
BASE_PKGS=(build-essential cmake ninja-build ccache pkg-config rsync
  libopencv-dev libjpeg62-turbo-dev libyaml-cpp-dev libspdlog-dev libcli11-dev nlohmann-json3-dev
  libgtest-dev googletest python3-numpy dataset-fashion-mnist libopenblas0-pthread)
CPU_PKGS=(libtorch-dev libgloo-dev python3-torch)   # python3-torch 2.6 for the parity tests
CUDA_PKGS=(libtorch-cuda-dev nvidia-cuda-dev nvidia-cuda-toolkit libnccl-dev libgloo-cuda-dev)
VARIANT_RE='^(libtorch-dev|libtorch-cuda-dev|libgloo-dev|libgloo-cuda-dev|python3-torch.*)$'
stage_pkgs() {  # stage_pkgs cpu|cuda: the package list of that stage, one per line
  {
    printf '%s\n' "${BASE_PKGS[@]}"
    # The PACKAGES=( ... ) and TEST_PACKAGES=( ... ) arrays of setup.sh, comments stripped.
    sed -n -E '/^(TEST_)?PACKAGES=\(/,/^\)/p' "$ROOT/src/aim/scripts/setup.sh" 2>/dev/null |
      sed -E -e 's/#.*//' -e 's/(TEST_)?PACKAGES=\(//' -e 's/\)//' | tr -s ' \t' '\n'
    if [ "$1" = cpu ]; then printf '%s\n' "${CPU_PKGS[@]}"; fi
  } | grep -v '^$' | { if [ "$1" = cuda ]; then grep -Ev "$VARIANT_RE"; else cat; fi; } | sort -u
}
available_pkgs() {  # available_pkgs cpu|cuda: stage_pkgs minus names trixie does not have (warned about)
  local p
  for p in $(stage_pkgs "$1"); do
    if in_root apt-cache show "$p" >/dev/null 2>&1; then echo "$p"
    else echo "[debian13] WARNING: package $p (from scripts/setup.sh) does not exist in trixie; skipped" >&2; fi
  done
}

apt_update() {
  say "apt-get update in the root"
  in_root apt-get update -q || say "WARNING: apt-get update failed; using the package lists already in the root"
}
apt_install() {  # apt_install PKG...; conflicting packages (the other LibTorch variant) are removed
  in_root apt-get install -y -q --no-install-recommends "$@"
}

# nvidia-cudnn's postinst downloads cuDNN from NVIDIA, which fails offline. cuDNN is then absent,
# which is fine for compiling and linking (--allow-shlib-undefined below). Stub it and finish dpkg.
CUDNN_POSTINST=$ROOT/var/lib/dpkg/info/nvidia-cudnn.postinst
stub_cudnn_postinst() {
  [ -f "$CUDNN_POSTINST" ] || return 0
  grep -q 'aim: offline stub' "$CUDNN_POSTINST" && return 0
  say "replacing nvidia-cudnn's postinst (downloads cuDNN from NVIDIA; offline here) with a no-op"
  printf '#!/bin/sh\n# aim: offline stub, see scripts/check_debian13.sh\nexit 0\n' > "$CUDNN_POSTINST"
  chmod 755 "$CUDNN_POSTINST"
}
install_cuda_pkgs() {
  stub_cudnn_postinst
  in_root dpkg --configure -a
  if ! apt_install "${CUDA_PKGS[@]}"; then
    stub_cudnn_postinst
    in_root dpkg --configure -a
    apt_install "${CUDA_PKGS[@]}"   # must now succeed; a real error stops here
  fi
}

# ---------------------------------------------------------------- source
SHA=$(git -C "$REPO" rev-parse --verify "$REF^{commit}") || die "not a commit in $REPO: $REF"
export_source() {
  say "exporting $REF ($(git -C "$REPO" log -1 --format='%h %s' "$SHA")) to /src/aim in the root"
  rm -rf "$ROOT/src/aim.new"
  mkdir -p "$ROOT/src/aim.new" "$ROOT/src/aim"
  git -C "$REPO" archive --format=tar "$SHA" | tar -x -C "$ROOT/src/aim.new"
  # Only changed files get a new mtime, so builds stay incremental and are never stale
  # (a plain re-extract would stamp files with the commit time, possibly older than the objects).
  if in_root sh -c 'command -v rsync' >/dev/null 2>&1; then
    in_root rsync -r --checksum --delete /src/aim.new/ /src/aim/
  else
    # A new root: rsync comes with the packages, which are read from this very export.
    rm -rf "$ROOT/src/aim" && mv "$ROOT/src/aim.new" "$ROOT/src/aim"
    return
  fi
  rm -rf "$ROOT/src/aim.new"
}

# ---------------------------------------------------------------- stages
declare -A RESULT
# shellcheck disable=SC2016
torch_version() { in_root dpkg-query -W -f='${Version}' "$1" 2>/dev/null || echo "?"; }

configure_and_build() {  # configure_and_build NAME BUILD_DIR CMAKE_ARGS...
  local name=$1 dir=$2; shift 2
  local log=$LOGDIR/$name-build.log
  say "[$name] configure + build in $dir (nice, -j$JOBS; log: $ROOT$log)"
  # shellcheck disable=SC2016
  if in_root nice -n 10 bash -euo pipefail -c '
      dir=$1 jobs=$2; shift 2
      gen=(); if command -v ninja >/dev/null; then gen=(-G Ninja); fi
      if [ -f "$dir/CMakeCache.txt" ] && ! grep -q "CMAKE_GENERATOR:INTERNAL=${gen[1]:-Unix Makefiles}$" "$dir/CMakeCache.txt"; then
        rm -rf "$dir"   # generator changed
      fi
      cmake -S /src/aim -B "$dir" "${gen[@]}" -DCMAKE_BUILD_TYPE=Release \
        -DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DAIM_PYTHON=/usr/bin/python3 "$@"
      # Build dirs persist across commits: drop outputs (e.g. a removed tool) no target makes now.
      if [ "${gen[1]:-}" = Ninja ]; then ninja -C "$dir" -t cleandead >/dev/null; fi
      cmake --build "$dir" -j "$jobs"' _ "$dir" "$JOBS" "$@" 2>&1 | tee "$ROOT$log"; then
    RESULT[$name.build]=ok
  else
    RESULT[$name.build]=FAILED
    say "[$name] BUILD FAILED; compiler errors:"
    grep -E -A3 'error:|CMake Error|undefined reference' "$ROOT$log" | head -n 60 || true
  fi
  RESULT[$name.cmake_torch]=$(grep -ao 'aim: LibTorch [^,]*, CUDA: [A-Za-z0-9_-]*' "$ROOT$log" | tail -n1 || true)
}

cpu_stage() {
  say "[cpu] installing LibTorch 2.6 CPU and the build dependencies (removes the CUDA variant if present)"
  local pkgs
  mapfile -t pkgs < <(available_pkgs cpu)
  apt_install "${pkgs[@]}"
  RESULT[cpu.torch]=$(torch_version libtorch-dev)
  RESULT[cpu.python]=$(in_root /usr/bin/python3 -c 'import torch; print(torch.__version__)' 2>/dev/null || echo "?")
  configure_and_build cpu /build-cpu
  RESULT[cpu.tests]="not run (build failed)"
  [ "${RESULT[cpu.build]}" = ok ] || return 0
  local log=$LOGDIR/cpu-ctest.log
  say "[cpu] ctest --output-on-failure -j$JOBS (log: $ROOT$log)"
  # shellcheck disable=SC2016
  in_root nice -n 10 bash -c 'cd /build-cpu && ctest --output-on-failure -j "$1"' _ "$JOBS" 2>&1 |
    tee "$ROOT$log" || true
  local line
  line=$(grep -E 'tests passed, [0-9]+ tests? failed out of [0-9]+' "$ROOT$log" | tail -n1 || true)
  if [ -z "$line" ]; then
    RESULT[cpu.tests]="FAILED (no ctest summary; see $ROOT$log)"
  else
    RESULT[cpu.tests]=$(sed -E 's/.*[^0-9]([0-9]+) tests? failed out of ([0-9]+).*/\2 \1/' <<<"$line" |
                        awk '{printf "%d passed, %d failed (of %d)", $1-$2, $2, $1}')
    if grep -q 'The following tests FAILED' "$ROOT$log"; then
      RESULT[cpu.failed]=$(sed -n '/The following tests FAILED/,$p' "$ROOT$log" | grep -E '^[[:space:]]+[0-9]+ - ' || true)
    fi
  fi
}

cuda_stage() {
  say "[cuda] installing LibTorch 2.6 CUDA 12.4 + NCCL (removes the CPU variant; first time ~2.6 GB download)"
  local pkgs
  mapfile -t pkgs < <(available_pkgs cuda)
  apt_install "${pkgs[@]}"
  install_cuda_pkgs
  RESULT[cuda.torch]=$(torch_version libtorch-cuda-dev)
  RESULT[cuda.nvcc]=$(in_root nvcc --version 2>/dev/null | grep -o 'release [0-9.]*' || echo "?")
  # cuDNN is absent (see stub_cudnn_postinst): let the link leave libtorch_cuda's cudnn symbols open.
  # One arch keeps CMake from probing for a GPU. Tests are discovered at ctest time, not after
  # the link, because the test binary cannot load here (no libcudnn.so.9, no GPU).
  configure_and_build cuda /build-cuda \
    -DCMAKE_EXE_LINKER_FLAGS=-Wl,--allow-shlib-undefined \
    -DCMAKE_SHARED_LINKER_FLAGS=-Wl,--allow-shlib-undefined \
    -DTORCH_CUDA_ARCH_LIST=9.0 \
    -DCMAKE_GTEST_DISCOVER_TESTS_DISCOVERY_MODE=PRE_TEST
  [ "${RESULT[cuda.build]}" = ok ] || return 0
  # Proof of what was linked: every executable, its torch/CUDA libraries, and what cannot load here.
  local bins
  bins=$(find "$ROOT/build-cuda/bin" -maxdepth 1 -type f -executable -printf '%f ' 2>/dev/null || true)
  RESULT[cuda.bins]=${bins:-none}
  if [ -x "$ROOT/build-cuda/bin/aim_tests" ]; then
    RESULT[cuda.linked]=$(in_root ldd /build-cuda/bin/aim_tests |
      grep -oE 'lib(torch_cuda|c10_cuda|nccl|cudart|gloo_cuda)[^ ]*' | sort -u | tr '\n' ' ' || true)
    RESULT[cuda.missing]=$(in_root ldd /build-cuda/bin/aim_tests | grep 'not found' |
      awk '{print $1}' | sort -u | tr '\n' ' ' || true)
  fi
}

# ---------------------------------------------------------------- main
export_source
apt_update
if ((RUN_CPU)); then cpu_stage; fi
if ((RUN_CUDA)); then cuda_stage; fi

say "SUMMARY  (commit $(git -C "$REPO" log -1 --format='%h' "$SHA"), root $ROOT, $(du -sh --one-file-system "$ROOT" 2>/dev/null | cut -f1) on disk)"
status=0
if ((RUN_CPU)); then
  echo "  CPU : libtorch-dev ${RESULT[cpu.torch]} (${RESULT[cpu.cmake_torch]:-?}; python3 torch ${RESULT[cpu.python]})"
  echo "        build ${RESULT[cpu.build]}; tests: ${RESULT[cpu.tests]}"
  [ -n "${RESULT[cpu.failed]:-}" ] && printf '        failed:\n%s\n' "${RESULT[cpu.failed]}"
  [ "${RESULT[cpu.build]}" = ok ] && [[ ${RESULT[cpu.tests]} == *" 0 failed"* ]] || status=1
fi
if ((RUN_CUDA)); then
  echo "  CUDA: libtorch-cuda-dev ${RESULT[cuda.torch]} (${RESULT[cuda.cmake_torch]:-?}; nvcc ${RESULT[cuda.nvcc]})"
  echo "        build+link ${RESULT[cuda.build]}; tests not run (no GPU)"
  if [ "${RESULT[cuda.build]}" = ok ]; then
    echo "        executables: ${RESULT[cuda.bins]}"
    echo "        aim_tests links: ${RESULT[cuda.linked]:-?}"
    echo "        unresolved at run time here (expected: cuDNN only): ${RESULT[cuda.missing]:-none}"
  fi
  [ "${RESULT[cuda.build]}" = ok ] || status=1
fi
echo "  logs: $ROOT$LOGDIR/"
exit $status
