#!/usr/bin/env bash
# Build fastxent with AddressSanitizer and UndefinedBehaviorSanitizer and run
# the test suite under them.  Any sanitizer report, like any failing test,
# makes the run fail (non-zero exit).
#
#   tools/sanitize.sh                  every test module, each in its own
#                                      process, so one report does not hide
#                                      the others
#   tools/sanitize.sh PYTEST_ARGS...   one pytest run with these arguments
#                                      (paths relative to the tree's root)
#
# The build starts from a copy of the tree's files (tracked and untracked,
# not ignored), so nothing built before is reused, and goes into a venv of
# its own (numpy, the test extras and Dask, whose distributed workers
# unpickle blocks at any address; no torch, whose tests skip), as a regular
# (non-editable) install.
#
# Environment: PYTHON (default python3) makes the venv; CC (default cc)
# names the compiler whose sanitizer runtimes are preloaded;
# FASTXENT_SANITIZE (default address,undefined); SANITIZE_KEEP=1 keeps the
# work directory (venv, build and logs) and prints where it is.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-python3}
cc=${CC:-cc}
sanitize=${FASTXENT_SANITIZE:-address,undefined}
work=$(mktemp -d "${TMPDIR:-/tmp}/fastxent-sanitize.XXXXXX")
if [ "${SANITIZE_KEEP:-0}" = 1 ]; then
    trap 'echo "sanitize: work directory kept: $work"' EXIT
else
    trap 'rm -rf "$work"' EXIT
fi
start=$SECONDS
say() { echo "sanitize: $* ($((SECONDS - start)) s)"; }

# ---- a clean copy of the tree
mkdir "$work/src"
if git -C "$root" rev-parse --git-dir >/dev/null 2>&1; then
    (cd "$root" && git ls-files -z --cached --others --exclude-standard \
        | tar --null --ignore-failed-read -T - -cf -) | tar -xf - -C "$work/src"
else
    cp -a "$root/." "$work/src"
    rm -rf "$work/src/build" "$work/src"/*.egg-info "$work/src/src"/_kernels_*.c
    find "$work/src" -name '*.so' -delete
fi

# ---- the venv and the sanitized build
"$python" -m venv "$work/venv"
py="$work/venv/bin/python"
"$py" -m pip install -q "setuptools>=77" wheel "Cython>=3.1" "numpy>=2.0"
say "venv ready; building with FASTXENT_SANITIZE=$sanitize"
if ! FASTXENT_SANITIZE=$sanitize FASTXENT_REQUIRE_OPENMP=${FASTXENT_REQUIRE_OPENMP:-1} \
        "$py" -m pip install -v --no-build-isolation "$work/src[test,dask]" >"$work/build.log" 2>&1; then
    tail -n 40 "$work/build.log"
    echo "sanitize: the build failed (log above)"
    exit 1
fi
grep -E '^ *fastxent: ' "$work/build.log" | sed 's/^ */  /' || true
say "built"

# ---- the runtimes, preloaded: the interpreter itself is not instrumented
preload=""
for lib in libasan.so libubsan.so; do
    case $lib in
        libasan.so) [[ $sanitize == *address* ]] || continue ;;
        libubsan.so) [[ $sanitize == *undefined* ]] || continue ;;
    esac
    path=$("$cc" -print-file-name="$lib")
    if [ -e "$path" ]; then
        preload="$preload $path"
    fi
done
if [[ $sanitize == *address* && $preload != *libasan* ]]; then
    echo "sanitize: $cc has no libasan.so to preload"
    exit 1
fi

# --capture=sys: pytest captures Python's output only, so a sanitizer's
# report (written to file descriptor 2 before the process ends) is kept.
# detect_leaks=0: CPython keeps its objects alive at exit, by design.
# allocator_may_return_null=1: a huge allocation is a MemoryError, as
# without the sanitizer.  PYTHONMALLOC=malloc: Python's own allocations go
# through the sanitizer's malloc too.
run_tests() {
    env LD_PRELOAD="${preload# }" PYTHONMALLOC=malloc PYTHONUNBUFFERED=1 \
        ASAN_OPTIONS="detect_leaks=0:halt_on_error=1:allocator_may_return_null=1:${ASAN_OPTIONS:-}" \
        UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:${UBSAN_OPTIONS:-}" \
        "$py" -m pytest -p no:cacheprovider --capture=sys "$@"
}

# pytest runs outside the source copy, so that it imports the installed
# package, never the uncompiled folder
cd "$work"
if [ $# -gt 0 ]; then
    args=()
    for a in "$@"; do
        if [ -e "$work/src/${a%%::*}" ]; then args+=("$work/src/$a"); else args+=("$a"); fi
    done
    status=0
    run_tests "${args[@]}" || status=$?
    say "done, exit status $status"
    exit "$status"
fi

failed=()
for module in "$work"/src/tests/test_*.py; do
    name=$(basename "$module")
    # mypy and stubtest run no kernel, and mypy's own compiled modules fail
    # under the preloaded runtimes: the type checks run in the other CI steps
    if [ "$name" = test_typing.py ]; then
        say "$name: not run under the sanitizers (no kernel code)"
        continue
    fi
    log="$work/${name%.py}.log"
    status=0
    run_tests -v "$module" >"$log" 2>&1 || status=$?
    # 5: nothing collected (a module that skips as a whole, e.g. without torch)
    if [ $status = 0 ] || [ $status = 5 ]; then
        say "$name: $(tail -n 1 "$log" | tr -d '=')"
    else
        failed+=("$name")
        say "$name: FAILED"
        # the test that was running when a sanitizer stopped the process
        grep -E '::' "$log" | grep -vE 'PASSED|SKIPPED|XFAIL|XPASS|FAILED|ERROR' | tail -n 1 \
            | sed 's/^/  running: /' || true
        grep -E 'ERROR: AddressSanitizer|runtime error:|SUMMARY: |^FAILED ' "$log" \
            | head -n 20 | sed 's/^/  /' || true
        if [ "${SANITIZE_KEEP:-0}" = 1 ]; then echo "  log: $log"; fi
    fi
done
if [ ${#failed[@]} -gt 0 ]; then
    say "FAILED: ${failed[*]}"
    exit 1
fi
say "all test modules passed under $sanitize"
