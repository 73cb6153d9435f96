#!/usr/bin/env bash
# Packs what aim needs besides LibTorch into one tarball, from the Debian 12 packages installed
# on this machine, for a GPU machine that has only a pip PyTorch (LibTorch inside the wheel,
# CUDA, CMake, a compiler) and no network: headers, CMake configs and shared libraries of
# yaml-cpp, spdlog, fmt, CLI11, nlohmann-json, OpenCV core/imgproc/imgcodecs, libjpeg-turbo,
# zlib, GoogleTest and protobuf (+ protoc, for the TensorBoard writer), with every shared
# library they load. scripts/gpu_run.sh unpacks it, builds aim and runs scripts/gpu_check.sh.
#
# Not in it: gloo's headers. A pip LibTorch carries its own gloo build; Debian's headers are
# another version, and aim only uses Gloo for CPU process groups, which a GPU check does not
# need (NCCL is in the wheel). Without them CPU multi-process runs say so at start-up.
#
# Size: Debian's OpenCV imgcodecs links GDAL and GDCM (DICOM), whose own dependencies are over
# 150 MB; aim reads no GDAL or DICOM images. Those two libraries (and libGLX, for OpenCV's
# OpenGL interop, unused) are replaced by stubs with the same sonames that define exactly the
# symbols OpenCV imports from them and abort if one is ever called, so the loader (OpenCV is
# linked with BIND_NOW) is satisfied. Every other library is the real one.
#
# Usage: scripts/gpu_bundle.sh [out.tar.xz]   (default: gpu-bundle/aim-deps.tar.xz, ignored by git)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-gpu-bundle/aim-deps.tar.xz}
ARCH=x86_64-linux-gnu
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
ROOT=$WORK/aim-deps
mkdir -p "$ROOT/usr/lib/$ARCH" "$ROOT/usr/bin" "$(dirname "$OUT")"

DEV_PACKAGES=(libyaml-cpp-dev libspdlog-dev libfmt-dev libcli11-dev nlohmann-json3-dev libopencv-core-dev
              libopencv-imgproc-dev libopencv-imgcodecs-dev libjpeg62-turbo-dev zlib1g-dev libgtest-dev
              libprotobuf-dev protobuf-compiler)
for p in "${DEV_PACKAGES[@]}" libopencv-dev; do
  dpkg -s "$p" >/dev/null 2>&1 || { echo "gpu_bundle: Debian package $p is not installed (scripts/setup.sh installs it)" >&2; exit 1; }
done

# Headers, CMake/pkg-config files, link-time .so symlinks and static libraries of each package.
for p in "${DEV_PACKAGES[@]}"; do
  dpkg -L "$p" | while read -r f; do
    [[ -f "$f" || -L "$f" ]] || continue
    # Static libraries only for GoogleTest (it has no others); the rest link their .so.
    [[ "$f" == *.a && "$f" != */libgtest*.a && "$f" != */libgmock*.a ]] && continue
    case "$f" in
      /usr/include/* | /usr/lib/$ARCH/* | /usr/lib/cmake/* | /usr/share/cmake/* | /usr/share/pkgconfig/* | /usr/bin/protoc*)
        mkdir -p "$ROOT$(dirname "$f")"
        cp -a "$f" "$ROOT$f" ;;
    esac
  done
done
# OpenCV's CMake config comes with libopencv-dev, which lists every module: keep core, imgproc and
# imgcodecs in the per-configuration file, whose file-existence check would fail on the others.
CV=/usr/lib/$ARCH/cmake/opencv4
mkdir -p "$ROOT$CV"
cp "$CV"/OpenCVConfig-version.cmake "$CV"/OpenCVModules.cmake "$ROOT$CV/"
# OpenCV_LIBS lists every module whatever COMPONENTS asks for: name the three this bundle has.
sed 's/^set(OpenCV_LIB_COMPONENTS .*)$/set(OpenCV_LIB_COMPONENTS opencv_core;opencv_imgproc;opencv_imgcodecs)/' \
  "$CV"/OpenCVConfig.cmake >"$ROOT$CV/OpenCVConfig.cmake"
grep -q '^set(OpenCV_LIB_COMPONENTS opencv_core;opencv_imgproc;opencv_imgcodecs)$' "$ROOT$CV/OpenCVConfig.cmake" ||
  { echo "gpu_bundle: OpenCVConfig.cmake has no OpenCV_LIB_COMPONENTS line to narrow" >&2; exit 1; }
python3 - "$CV/OpenCVModules-release.cmake" "$ROOT$CV/OpenCVModules-release.cmake" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
parts = re.split(r'(?=# Import target ")', text)
keep = [p for p in parts if not p.startswith('# Import target "')
        or re.match(r'# Import target "opencv_(core|imgproc|imgcodecs)"', p)]
# The trailer after the last stanza (commands after the imports) rides on the last part.
last = parts[-1]
tail = last[last.find('\n# Commands beyond this point'):] if '# Commands beyond this point' in last else ''
out = ''.join(keep)
if tail and tail not in out:
    out += tail
open(sys.argv[2], 'w').write(out)
PY

# Shared libraries: everything the roots load, by their NEEDED entries, except the C/C++ runtime
# every Linux machine has and the stubbed libraries (whose own dependencies are skipped too).
python3 - "$ROOT/usr/lib/$ARCH" "$WORK/stubs" <<'PY'
import os, re, shutil, subprocess, sys
dest, stub_dir = sys.argv[1], sys.argv[2]
arch_dirs = ["/usr/lib/x86_64-linux-gnu", "/lib/x86_64-linux-gnu"]
system = {"libc.so.6", "libm.so.6", "libstdc++.so.6", "libgcc_s.so.1", "libpthread.so.0", "libdl.so.2",
          "librt.so.1", "ld-linux-x86-64.so.2", "libresolv.so.2"}
stubbed = {"libgdal.so.32", "libgdcmMSFF.so.3.0", "libgdcmDSED.so.3.0", "libGLX.so.0"}
roots = ["libopencv_core.so.406", "libopencv_imgproc.so.406", "libopencv_imgcodecs.so.406", "libyaml-cpp.so.0.7",
         "libspdlog.so.1.10", "libfmt.so.9", "libprotobuf.so.32", "libprotoc.so.32", "libjpeg.so.62", "libz.so.1"]

def find(name):
    for d in arch_dirs:
        p = os.path.join(d, name)
        if os.path.exists(p):
            return os.path.realpath(p)
    raise SystemExit(f"gpu_bundle: cannot find {name}")

def needed(path):
    out = subprocess.run(["readelf", "-d", path], capture_output=True, text=True, check=True).stdout
    return re.findall(r"\(NEEDED\)\s+Shared library: \[(.+?)\]", out)

seen, todo, users = set(), list(roots) + ["protoc"], {}
while todo:
    name = todo.pop()
    if name in seen:
        continue
    seen.add(name)
    path = "/usr/bin/protoc" if name == "protoc" else find(name)
    if name != "protoc":
        # The real file under its own name (CMake configs name it) and the soname beside it.
        real = os.path.basename(path)
        shutil.copy2(path, os.path.join(dest, real))
        if real != name and not os.path.lexists(os.path.join(dest, name)):
            os.symlink(real, os.path.join(dest, name))
    for n in needed(path):
        if n in system:
            continue
        if n in stubbed:
            users.setdefault(n, []).append(path)
            continue
        todo.append(n)

# Stubs: the symbols each user imports that the real library defines, as aborting functions
# or zeroed objects of the real size. OpenCV calls GDALAllRegister whenever it builds its
# decoder list (every imread): that one does nothing.
harmless = {"GDALAllRegister"}
os.makedirs(stub_dir, exist_ok=True)
def nm(path, *flags):
    out = subprocess.run(["nm", "-D", *flags, path], capture_output=True, text=True, check=True).stdout
    return out.splitlines()
for lib, paths in sorted(users.items()):
    real = find(lib)
    defined = {}
    for line in nm(real, "--defined-only", "-S"):
        f = line.split()
        if len(f) == 4:
            defined[f[3].split("@")[0]] = (f[2], int(f[1], 16))
        elif len(f) == 3:
            defined[f[2].split("@")[0]] = (f[1], 0)
    wanted = set()
    for p in paths:
        for line in nm(p, "--undefined-only"):
            s = line.split()[-1]
            if "@" in s and not s.split("@", 1)[1].startswith("@") and s.split("@")[0] in defined:
                raise SystemExit(f"gpu_bundle: {p} imports a versioned symbol {s} from {lib}; stubs cannot provide it")
            s = s.split("@")[0]
            if s in defined:
                wanted.add(s)
    src = ['#include <stdio.h>', '#include <stdlib.h>',
           'static void aim_stub_abort(const char* s) { fprintf(stderr, "aim gpu bundle: %s from the stub ' + lib +
           ' was called (this bundle leaves out GDAL/DICOM/GL support)\\n", s); abort(); }']
    for i, s in enumerate(sorted(wanted)):
        kind, size = defined[s]
        if s in harmless:
            src.append(f'void aim_f{i}(void) __asm__("{s}"); void aim_f{i}(void) {{}}')
        elif kind in "TtWiI":
            src.append(f'void aim_f{i}(void) __asm__("{s}"); void aim_f{i}(void) {{ aim_stub_abort("{s}"); }}')
        else:
            src.append(f'char aim_o{i}[{max(size, 8)}] __asm__("{s}") = {{0}};')
    c = os.path.join(stub_dir, lib + ".c")
    open(c, "w").write("\n".join(src) + "\n")
    subprocess.run(["gcc", "-shared", "-fPIC", "-O1", "-o", os.path.join(dest, lib), f"-Wl,-soname,{lib}", c], check=True)
    print(f"stub {lib}: {len(wanted)} symbols for {', '.join(os.path.basename(p) for p in paths)}")
print(f"{len(seen) - 1} real shared libraries")
PY

cat >"$ROOT/README" <<EOF
aim build dependencies, packed by scripts/gpu_bundle.sh from Debian 12 packages on $(date -u +%F).
Use: cmake -DCMAKE_PREFIX_PATH="<torch cmake prefix>;\$PWD/usr" ... and
LD_LIBRARY_PATH=\$PWD/usr/lib/$ARCH at run time (scripts/gpu_run.sh does both).
Stubbed (abort if called): libgdal.so.32, libgdcmMSFF.so.3.0, libgdcmDSED.so.3.0, libGLX.so.0.
Packages: $(for p in "${DEV_PACKAGES[@]}" libopencv-dev; do printf '%s=%s ' "$p" "$(dpkg-query -W -f='${Version}' "$p")"; done)
EOF
tar -C "$WORK" -cJf "$OUT" aim-deps
size=$(stat -c %s "$OUT")
echo "gpu_bundle: $OUT, $((size / 1000000)) MB ($(du -sm "$ROOT" | cut -f1) MB unpacked)"
if ((size > 60000000)); then echo "gpu_bundle: over the 60 MB budget" >&2; exit 1; fi
