#!/usr/bin/env bash
# LLVM's OpenMP runtime for a macOS wheel build: conda-forge's llvm-openmp for
# this machine's architecture, unpacked into PREFIX (include/omp.h,
# lib/libomp.dylib) with a micromamba of its own.  Apple's clang compiles
# OpenMP (-Xpreprocessor -fopenmp) but ships no runtime; delocate copies this
# one into the wheel.  conda-forge builds it for macOS 11.0, the wheels'
# deployment target (pyproject.toml, [tool.cibuildwheel.macos]).
#
# usage: tools/cibw_macos_libomp.sh PREFIX
set -euo pipefail
prefix=${1:?usage: $0 PREFIX}
case "$(uname -m)" in
    arm64) subdir=osx-arm64 ;;
    x86_64) subdir=osx-64 ;;
    *) echo "cibw_macos_libomp.sh: unknown architecture $(uname -m)" >&2; exit 1 ;;
esac
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
curl -fsSL "https://micro.mamba.pm/api/micromamba/$subdir/latest" | tar -xj -C "$tmp" bin/micromamba
MAMBA_ROOT_PREFIX="$tmp/root" "$tmp/bin/micromamba" create --yes --prefix "$prefix" \
    --platform "$subdir" --channel conda-forge --override-channels llvm-openmp
test -f "$prefix/include/omp.h" && test -f "$prefix/lib/libomp.dylib"
otool -l "$prefix/lib/libomp.dylib" | grep -A4 -E 'LC_BUILD_VERSION|LC_VERSION_MIN' || true
