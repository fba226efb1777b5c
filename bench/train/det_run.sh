#!/usr/bin/env bash
# SSDLite training throughput side by side: this project's trainer (train.SSDNet)
# and PyTorch 1.13 + torchvision 0.14's SSD class (Debian's python3-torch,
# python3-torchvision) on the same MobileOne backbone, extra blocks, SSDLite
# head, batch, input size and thread count: forward + SSD loss + backward + SGD
# step on random images with two boxes each.
#
#   bench/train/det_run.sh [--threads 2] [--repeat 3] [--steps 5] [--config canvases-128|s0-320|all]
#
# Go: `go test -bench BenchmarkSSDTrainStep/<config>` (train/ssd_bench_test.go;
# images/s over --steps steps after one warm-up step). PyTorch:
# torch_det_bench.py (median of --steps steps after one warm-up). The two sides
# alternate --repeat times per configuration; the table shows each side's
# median and best.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
threads=2 repeat=3 steps=5 which=canvases-128
py=${PYTHON:-/usr/bin/python3}
while [ $# -gt 0 ]; do
	case $1 in
	--threads) threads=$2; shift 2 ;;
	--repeat) repeat=$2; shift 2 ;;
	--steps) steps=$2; shift 2 ;;
	--config) which=$2; shift 2 ;;
	-h | --help) sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "det_run.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
	esac
done
"$py" -c 'import torchvision' 2>/dev/null || { echo "det_run.sh: needs python3-torchvision" >&2; exit 1; }
configs=(canvases-128 s0-320)
[ "$which" != all ] && configs=("$which")

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$repo" && go test -c -o "$tmp/train.test" ./train)

stats() { # median and max of the numbers on stdin
	sort -g | awk '{v[NR]=$1} END {m = (NR % 2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2; printf "%.1f %.1f\n", m, v[NR]}'
}

echo "| SSDLite configuration | PyTorch $("$py" -c 'import torch; print(torch.__version__)') images/s (median, best) | Go images/s (median, best) | Go / PyTorch (medians) |"
echo "|---|---:|---:|---:|"
for cfg in "${configs[@]}"; do
	: >"$tmp/go" && : >"$tmp/pt"
	for ((i = 0; i < repeat; i++)); do
		(cd "$repo/train" && GOMAXPROCS=$threads "$tmp/train.test" -test.run XXX -test.bench "^BenchmarkSSDTrainStep\$/^$cfg\$" \
			-test.benchtime "${steps}x" -test.cpu "$threads") |
			awk '/images\/s/ {for (j = 1; j < NF; j++) if ($(j+1) == "images/s") print $j}' >>"$tmp/go"
		"$py" "$here/torch_det_bench.py" --config "$cfg" --threads "$threads" --steps "$steps" |
			python3 -c 'import json, sys; print(json.load(sys.stdin)["images_per_s"])' >>"$tmp/pt"
	done
	read -r gm gb < <(stats <"$tmp/go")
	read -r pm pb < <(stats <"$tmp/pt")
	printf '| %s, batch 16 | %s, %s | %s, %s | %.2f |\n' "$cfg" "$pm" "$pb" "$gm" "$gb" "$(awk -v a="$gm" -v b="$pm" 'BEGIN {print a / b}')"
done
echo
echo "threads $threads, $repeat alternations of $steps steps per side; $(date -u '+%Y-%m-%d %H:%M UTC'); load $(cut -d' ' -f1-3 /proc/loadavg); $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
