#!/bin/sh
# Regenerate all MobileOne golden data with the PyTorch reference.
# Usage: tools/reference/make_all.sh [--tiny-only | --full-only]   (run from anywhere; needs Debian's /usr/bin/python3 with torch)
set -eu
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PY=${PYTHON:-/usr/bin/python3}
GEN="$ROOT/tools/reference/make_golden.py"

"$PY" "$ROOT/tools/reference/mobileone_ref.py"          # S0..S4 parameter counts vs the spec table

if [ "${1:-}" != "--full-only" ]; then
    for c in tiny-k4 tiny-se tiny-gray; do               # small, committed
        rm -rf "$ROOT/testdata/golden/$c"
        "$PY" "$GEN" --config "$c" --out "$ROOT/testdata/golden/$c" --seed 0
    done
    du -sh --apparent-size "$ROOT/testdata/golden"
    for c in os16 os8; do                                 # DeepLabV3 training (package train), committed
        rm -rf "$ROOT/train/testdata/seg/$c"
        "$PY" "$ROOT/tools/reference/make_seg_golden.py" --case "$c" --out "$ROOT/train/testdata/seg/$c"
    done
    rm -rf "$ROOT/train/testdata/det/tiny"                  # SSDLite on MobileOne (packages train, arch), committed
    "$PY" "$ROOT/tools/reference/make_det_golden.py" --out "$ROOT/train/testdata/det/tiny"
    rm -rf "$ROOT/detect/testdata/golden"                   # detection pieces (package detect), committed
    "$PY" "$ROOT/tools/reference/det_ref.py" --out "$ROOT/detect/testdata/golden"
fi

[ "${1:-}" = "--tiny-only" ] && exit 0

for c in s0 s1 s2 s3 s4; do                               # large, git-ignored (testdata/full/)
    rm -rf "$ROOT/testdata/full/$c"
    "$PY" "$GEN" --config "$c" --out "$ROOT/testdata/full/$c" --seed 0 --threads "${THREADS:-1}"
done
du -sh --apparent-size "$ROOT/testdata/full"/*

sh "$ROOT/tools/reference/make_zoo.sh"                    # comparison zoo, study networks, operator cases
