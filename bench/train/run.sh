#!/usr/bin/env bash
# Training throughput side by side: this project's trainer and PyTorch 1.13
# (Debian's python3-torch) on the same MobileOne, batch, input size and
# thread count, forward + backward + SGD step on random inputs.
#
#   bench/train/run.sh [--threads 2] [--repeat 3] [--steps 20] [--bf16]
#
# Go: `go test -bench TrainStep...` (train/bench_test.go; images/s over
# --steps steps after one warm-up step). PyTorch: torch_train_bench.py
# (median of --steps steps after 2 warm-ups). With --repeat N the two sides
# alternate N times per configuration (Go, PyTorch, Go, ...) and the table
# shows the median and the best of each side's N figures, so a burst of
# noise on a shared machine hits both sides alike. With --bf16 both sides
# multiply in bfloat16: Go's --bf16 (BenchmarkTrainStepBF16: the dense
# convolutions' GEMMs on AMX or AVX512-BF16) against PyTorch's CPU autocast to bfloat16.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
threads=2 repeat=3 steps=20 bf16=
py=${PYTHON:-/usr/bin/python3} # Debian's, where python3-torch installs
while [ $# -gt 0 ]; do
	case $1 in
	--threads) threads=$2; shift 2 ;;
	--repeat) repeat=$2; shift 2 ;;
	--steps) steps=$2; shift 2 ;;
	--bf16) bf16=1; shift ;;
	-h | --help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "run.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
	esac
done
"$py" -c 'import torch' 2>/dev/null || { echo "run.sh: needs python3-torch (apt-get install python3-torch)" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$repo" && go test -c -o "$tmp/train.test" ./train)

# name | Go benchmark | PyTorch arguments
configs=(
	"S0, k = 4, 3×32×32, stem stride 2, batch 64|^BenchmarkTrainStepS0_32\$|--size 32 --batch 64 --k 4"
	"S0 widths, k = 1, 1×28×28, stem stride 1, batch 128|^BenchmarkTrainStepFashionMNIST\$/^k1\$|--size 28 --batch 128 --k 1 --in-channels 1 --stem-stride 1"
	"S0 widths, k = 4, 1×28×28, stem stride 1, batch 128|^BenchmarkTrainStepFashionMNIST\$/^k4\$|--size 28 --batch 128 --k 4 --in-channels 1 --stem-stride 1"
)

if [ -n "$bf16" ]; then
	configs=(
		"S0, k = 4, 3×32×32, stem stride 2, batch 64, bfloat16|^BenchmarkTrainStepBF16\$/^s0-32\$|--size 32 --batch 64 --k 4 --bf16"
		"S0 widths, k = 1, 1×28×28, stem stride 1, batch 128, bfloat16|^BenchmarkTrainStepBF16\$/^fmnist-k1\$|--size 28 --batch 128 --k 1 --in-channels 1 --stem-stride 1 --bf16"
		"S0 widths, k = 4, 1×28×28, stem stride 1, batch 128, bfloat16|^BenchmarkTrainStepBF16\$/^fmnist-k4\$|--size 28 --batch 128 --k 4 --in-channels 1 --stem-stride 1 --bf16"
	)
fi

stats() { # median and max of the numbers on stdin
	sort -g | awk '{v[NR]=$1} END {m = (NR % 2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2; printf "%.0f %.0f\n", m, v[NR]}'
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
		"$py" "$here/torch_train_bench.py" --threads "$threads" --steps "$steps" $targs |
			python3 -c 'import json, sys; print(json.load(sys.stdin)["images_per_s"])' >>"$tmp/pt"
	done
	read -r gm gb < <(stats <"$tmp/go")
	read -r pm pb < <(stats <"$tmp/pt")
	printf '| %s | %s, %s | %s, %s | %.2f |\n' "$name" "$pm" "$pb" "$gm" "$gb" "$(awk -v a="$gm" -v b="$pm" 'BEGIN {print a / b}')"
done
echo
echo "threads $threads, $repeat alternations of $steps steps per side; $(date -u '+%Y-%m-%d %H:%M UTC'); $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
