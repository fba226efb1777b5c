#!/usr/bin/env bash
# Segmentation training throughput side by side (issue 25): this project's
# DeepLabV3 trainer (train.SegNet) and PyTorch 1.13 / torchvision 0.14
# (Debian's) on the same MobileOne backbone and DeepLabHead, output stride 16,
# 11 classes, batch 8, input size and thread count: forward + loss +
# backward + SGD step on random inputs and masks.
#
#   bench/train/seg.sh [--threads 2] [--repeat 3] [--steps 5]
#
# Go: `go test -bench SegStep` (train/seg_bench_test.go; images/s over
# --steps steps after one warm-up step). PyTorch: torch_seg_train_bench.py
# (median of --steps steps after 1 warm-up). With --repeat N the two sides
# alternate N times per configuration and the table shows the median and
# the best of each side's N figures (as run.sh, the classifier's).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
threads=2 repeat=3 steps=5
py=${PYTHON:-/usr/bin/python3} # Debian's, where python3-torch installs
while [ $# -gt 0 ]; do
	case $1 in
	--threads) threads=$2; shift 2 ;;
	--repeat) repeat=$2; shift 2 ;;
	--steps) steps=$2; shift 2 ;;
	-h | --help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "run.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
	esac
done
"$py" -c 'import torch' 2>/dev/null || { echo "run.sh: needs python3-torch (apt-get install python3-torch)" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$repo" && go test -c -o "$tmp/train.test" ./train)

# name | Go benchmark | PyTorch arguments
configs=(
	"S0, k = 4, 3×128×128|^BenchmarkSegStep\$/^s0k4-128\$|--size 128 --k 4"
	"S0 widths, k = 1 (--init builtin), 3×192×192|^BenchmarkSegStep\$/^fmnist-192\$|--size 192 --k 1"
)

stats() { # median and max of the numbers on stdin
	sort -g | awk '{v[NR]=$1} END {m = (NR % 2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2; printf "%.2f %.2f\n", m, v[NR]}'
}

echo "| configuration | PyTorch $("$py" -c 'import torch; print(torch.__version__)') images/s (median, best) | Go images/s (median, best) | Go / PyTorch (medians) |"
echo "|---|---:|---:|---:|"
for cfg in "${configs[@]}"; do
	IFS='|' read -r name bench targs <<<"$cfg"
	: >"$tmp/go" && : >"$tmp/pt"
	for ((i = 0; i < repeat; i++)); do
		(cd "$repo/train" && GOMAXPROCS=$threads "$tmp/train.test" -test.run XXX -test.bench "$bench" \
			-test.benchtime "${steps}x" -test.cpu "$threads") |
			awk '/images\/s/ {for (j = 1; j < NF; j++) if ($(j+1) == "images/s") print $j}' >>"$tmp/go"
		# shellcheck disable=SC2086
		"$py" "$here/torch_seg_train_bench.py" --threads "$threads" --steps "$steps" $targs |
			python3 -c 'import json, sys; print(json.load(sys.stdin)["images_per_s"])' >>"$tmp/pt"
	done
	read -r gm gb < <(stats <"$tmp/go")
	read -r pm pb < <(stats <"$tmp/pt")
	printf '| %s | %s, %s | %s, %s | %.2f |\n' "$name" "$pm" "$pb" "$gm" "$gb" "$(awk -v a="$gm" -v b="$pm" 'BEGIN {print a / b}')"
done
echo
echo "threads $threads, $repeat alternations of $steps steps per side; $(date -u '+%Y-%m-%d %H:%M UTC'); $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
