#!/usr/bin/env python3
"""Per-layer times side by side: `mobileone bench --profile --json` and
`node ort_bench.js --profile --json` on the same model and threads.

    mobileone bench -m s3 --random-seed 1 --threads 1 --profile --json > ours.json
    node bench/peers/ort_bench.js --model s3.onnx --threads 1 --profile --json > ort.json
    python3 bench/peers/layers.py ours.json ort.json

Our layers are the network's blocks (ops fused across blocks are one entry,
"stage0+stage1.0"); ONNX Runtime's nodes are matched to them by name
(ORT's "stage3.1_nchwc" is our "stage3.1"); whatever ORT runs after the
last block (pooling, reorder, flatten, classifier) is matched to our "head".
Ours are means per run, ORT's medians per node; both profilers add a
little to every layer.
"""
import json
import sys


def load(path):
    try:
        with open(path) as f:
            d = json.load(f)
    except (OSError, ValueError) as e:
        sys.exit(f"layers.py: {path}: {e}")
    if not d.get("layers"):
        sys.exit(f"layers.py: {path} has no per-layer times (run with --profile --json)")
    return d


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__.strip().split("\n\n")[1])
    ours, ort = load(sys.argv[1]), load(sys.argv[2])
    ort_ms = {}
    for n in ort["layers"]:
        name = n["name"].removesuffix("_nchwc")
        ort_ms[name] = ort_ms.get(name, 0.0) + n["ms"]
    blocks = set()
    rows = []
    for l in ours["layers"]:
        parts = l["name"].split("+")
        blocks.update(parts)
        mine = l["time_ns"] / 1e6
        if l["name"] == "head":
            theirs = sum(v for k, v in ort_ms.items() if k not in blocks)
        elif all(p in ort_ms for p in parts):
            theirs = sum(ort_ms[p] for p in parts)
        else:
            theirs = None
        rows.append((l["name"], mine, theirs))
    print(f"{'layer':>18}  {'ours ms':>8}  {'ORT ms':>8}  ours/ORT")
    for name, mine, theirs in rows:
        if theirs:
            print(f"{name:>18}  {mine:8.3f}  {theirs:8.3f}  {mine / theirs:8.2f}")
        else:
            print(f"{name:>18}  {mine:8.3f}  {'-':>8}  {'-':>8}")
    a = sum(r[1] for r in rows)
    b = sum(r[2] for r in rows if r[2])
    print(f"{'sum':>18}  {a:8.3f}  {b:8.3f}  {a / b:8.2f}")


if __name__ == "__main__":
    main()
