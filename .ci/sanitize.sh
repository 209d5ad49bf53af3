#!/usr/bin/env bash
# Run the C-core tests against an ASan + UBSan build of varcas._timing.
#
# Usage: .ci/sanitize.sh [PYTHON]   (or PYTHON=... .ci/sanitize.sh); default: python3.
# The python must have the test extras (pip install .[test]) and setuptools. The sanitized
# extension is built in a throwaway copy of the sources, so the normal build (in place or
# installed) is untouched; the tests run from that copy with libasan preloaded, because
# CPython itself is not instrumented. Leak checks are off: CPython keeps memory until exit
# by design. Any sanitizer report fails the run, even one that did not stop the process.
set -euo pipefail

PY=${1:-${PYTHON:-python3}}
if [[ "$PY" == */* ]]; then # absolute, keeping a venv's symlink (do not resolve it)
    PY="$(cd "$(dirname "$PY")" && pwd)/$(basename "$PY")"
fi
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TESTS=(tests/load/test_timing_core.py tests/load/test_parser_diff.py)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/varcas-sanitize.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

"$PY" -c "import setuptools, pytest, hypothesis, numpy, orjson" || {
    echo "sanitize.sh: $PY lacks setuptools or the test extras (pip install .[test])" >&2
    exit 2
}
LIBASAN=$(gcc -print-file-name=libasan.so)
[[ -e "$LIBASAN" ]] || { echo "sanitize.sh: gcc has no libasan.so" >&2; exit 2; }

mkdir -p "$WORK/tests/load"
cp -r "$ROOT/setup.py" "$ROOT/pyproject.toml" "$ROOT/csrc" "$ROOT/varcas" "$WORK/"
for t in "${TESTS[@]}"; do cp "$ROOT/$t" "$WORK/$t"; done
find "$WORK/varcas" -name '_timing*.so' -delete
(cd "$WORK" && VARCAS_SANITIZE=1 "$PY" setup.py -q build_ext --inplace >build.log 2>&1) || {
    cat "$WORK/build.log" >&2
    exit 1
}

cd "$WORK"
export LD_PRELOAD="$LIBASAN" PYTHONPATH="$WORK"
export ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:detect_stack_use_after_return=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
# The copy, not an installed varcas, must be what the tests import, and it must be sanitized.
"$PY" -c "import varcas._timing as t, sys; sys.exit(not t.__file__.startswith('$WORK'))" || {
    echo "sanitize.sh: the tests would not import the sanitized build" >&2
    exit 1
}
grep -q __asan_init varcas/_timing*.so || { echo "sanitize.sh: build is not instrumented" >&2; exit 1; }

set +e
# --capture=sys: fd 2 stays uncaptured, so a report printed just before an abort is seen.
"$PY" -m pytest -q -p no:cacheprovider -o addopts="" --capture=sys "${TESTS[@]}" 2>&1 | tee test.log
status=${PIPESTATUS[0]}
set -e
if grep -qE "ERROR: AddressSanitizer|runtime error:" test.log; then
    echo "sanitize.sh: sanitizer reports above" >&2
    exit 1
fi
exit "$status"
