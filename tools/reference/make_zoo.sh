#!/bin/sh
# Regenerate the comparison-zoo, study-network and operator golden data with the PyTorch reference.
# Usage: tools/reference/make_zoo.sh      (run from anywhere; needs Debian's /usr/bin/python3 with torch 1.13 and
#                                          torchvision 0.14; THREADS=N sets torch's CPU threads, default 1)
#   testdata/zoo/<model>/       git-ignored (about 650 MB)      zoo.py
#   testdata/zoo_counts.json    committed                       zoo.py --counts
#   testdata/study/<variant>/   git-ignored (about 230 MB)      study.py --out
#   testdata/ops/<case>/        committed (about 180 KB)        study.py --ops (then checked against numpy loops)
#   testdata/seg/<case>/        git-ignored (about 45 MB)       seg_ref.py (DeepLabV3 on MobileOne)
set -eu
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PY=${PYTHON:-/usr/bin/python3}
REF="$ROOT/tools/reference"
T=${THREADS:-1}

"$PY" "$REF/zoo.py" --check-only                          # params/MACs of every model against the published ones

rm -rf "$ROOT/testdata/ops"
"$PY" "$REF/study.py" --ops "$ROOT/testdata/ops"

rm -rf "$ROOT/testdata/zoo"
"$PY" "$REF/zoo.py" --out "$ROOT/testdata/zoo" --counts "$ROOT/testdata/zoo_counts.json" --threads "$T"

rm -rf "$ROOT/testdata/study"
"$PY" "$REF/study.py" --out "$ROOT/testdata/study" --threads "$T"

rm -rf "$ROOT/testdata/seg"
"$PY" "$REF/seg_ref.py" --out "$ROOT/testdata/seg" --threads "$T"

du -sh --apparent-size "$ROOT/testdata/ops" "$ROOT/testdata/zoo" "$ROOT/testdata/study" "$ROOT/testdata/seg"
