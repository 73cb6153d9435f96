#!/usr/bin/env bash
# Times the README's demo as a new user meets it: a bare Debian 12 root (debootstrap --variant
# minbase: nothing installed, no compiler, no ccache), the committed tree copied in, then
# `bash scripts/demo.sh` from package installation to the probe's accuracy. Every output line is
# prefixed with the seconds since the start, so the phases (packages, build, training, probe)
# can be read off; the total is printed at the end. The README's demo time comes from this.
# Run it on an otherwise idle machine: the build and the training use every core.
#
# Usage (as root):  scripts/time_bare_demo.sh
# Environment:
#   AIM_BARE_ROOT      root directory (default /var/tmp/aim-bare-demo; made afresh every run, ~3 GB)
#   AIM_DEBIAN_MIRROR  Debian mirror URL (default http://deb.debian.org/debian)
#   AIM_SOURCE_REF     git ref to copy in (default HEAD; uncommitted edits are not included)
set -euo pipefail

ROOT=${AIM_BARE_ROOT:-/var/tmp/aim-bare-demo}
ROOT=${ROOT%/}
MIRROR=${AIM_DEBIAN_MIRROR:-http://deb.debian.org/debian}
REF=${AIM_SOURCE_REF:-HEAD}
REPO=$(cd "$(dirname "$0")/.." && pwd)

say() { printf '[bare-demo] %s\n' "$*"; }
die() { printf '[bare-demo] ERROR: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "needs root (debootstrap, chroot, mount)"
case "$ROOT" in /|/usr|/var|/var/tmp|/tmp|/home|"") die "refusing AIM_BARE_ROOT=$ROOT" ;; esac
case "$ROOT/" in "$REPO"/*) die "AIM_BARE_ROOT must be outside the repository" ;; esac
command -v debootstrap >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap

MOUNTED=()
# shellcheck disable=SC2317  # invoked from the EXIT trap
unmount_all() {
  local i
  for ((i = ${#MOUNTED[@]} - 1; i >= 0; i--)); do umount "${MOUNTED[i]}" 2>/dev/null || umount -l "${MOUNTED[i]}"; done
  MOUNTED=()
}
trap unmount_all EXIT
mount_in_root() { mkdir -p "$ROOT$1"; local d=$1; shift; mount "$@" "$ROOT$d"; MOUNTED+=("$ROOT$d"); }

if [ -e "$ROOT" ]; then
  findmnt -rn -o TARGET | awk -v r="$ROOT/" 'index($0 "/", r) == 1' | sort -r | xargs -r umount -l
  rm -rf --one-file-system "$ROOT"
fi
say "debootstrap bookworm (minbase) into $ROOT from $MIRROR (not timed)"
debootstrap --variant=minbase bookworm "$ROOT" "$MIRROR" > "$ROOT.debootstrap.log" 2>&1 ||
  die "debootstrap failed; see $ROOT.debootstrap.log"
cp -L /etc/resolv.conf "$ROOT/etc/resolv.conf"
printf '#!/bin/sh\nexit 101\n' > "$ROOT/usr/sbin/policy-rc.d"   # no daemons start in the root
chmod 755 "$ROOT/usr/sbin/policy-rc.d"
mount_in_root /proc -t proc proc
mount_in_root /sys -t sysfs sysfs
mount_in_root /dev --bind /dev
mount_in_root /dev/pts --bind /dev/pts
mkdir -p "$ROOT/root/aim"
git -C "$REPO" archive "$REF" | tar -x -C "$ROOT/root/aim"
say "source: $(git -C "$REPO" rev-parse --short "$REF"); $(nproc) cores; load $(cut -d' ' -f1-3 /proc/loadavg)"

start=$(date +%s.%N)
set +e
chroot "$ROOT" /usr/bin/env -i HOME=/root LANG=C.UTF-8 TERM=dumb \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    bash -c 'cd /root/aim && bash scripts/demo.sh' 2>&1 |
  while IFS= read -r line; do
    printf '%s  %s\n' "$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%7.1f", b - a }')" "$line"
  done
rc=${PIPESTATUS[0]}
set -e
total=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%d", b - a }')
say "demo exit status $rc; bare Debian 12 -> probe accuracy in $((total / 60)) min $((total % 60)) s"
exit "$rc"
