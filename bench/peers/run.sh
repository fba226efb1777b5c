#!/usr/bin/env bash
# ONNX Runtime side by side with mobileone, on the same weights.
#
#   bench/peers/run.sh [--variants "s0 s1 s2 s3 s4"] [--threads "1 2"] [--seed 1]
#                      [--rounds 10 --runs 20 --trim 4] [--b8-rounds 3 --b8-runs 5 --b8-trim 1]
#                      [--repeat 1] [--no-b8] [--bf16] [--int8] [--out results.md] [--install-only]
#
# 1. installs onnxruntime-node@1.30.0 (npm, --ignore-scripts) into
#    $MOBILEONE_PEERS_DIR (default ~/.cache/mobileone-peers), outside the
#    repo, unless it is already there;
# 2. builds the mobileone command, and for each variant exports the fused
#    network with random weights (--seed) to ONNX with our exporter, and the
#    same weights to safetensors;
# 3. checks that ONNX Runtime's logits on that file equal ours (`mobileone
#    predict` on the safetensors file) within 1e-4 of the logits' largest
#    magnitude, on a seeded (2, 3, 224, 224) input;
# 4. for each variant x threads runs `mobileone bench --json` and
#    ort_bench.js --json with the same method (per round one warm-up, then
#    --runs timed runs; min and median over all timed runs), at batch 1 and
#    batch 8 (throughput), and prints one markdown table. With --repeat N the
#    two sides alternate N times per cell (ours, ORT, ours, ORT, ...) and the
#    table shows the minimum of the minimums and the median of the medians
#    (and of the batch-8 images/s), so a burst of noise on the machine hits
#    both sides alike instead of one.
#
# --bf16 also times our bfloat16 inference (`bench --precision bf16`) in every
# cell, right after ours in float32, and adds a table of it against both.
# --int8 quantises each variant's random-weight model (`mobileone quantize`,
# calibrated on 8 canvases of `mobileone data canvases`, which needs Debian's
# dataset-fashion-mnist), exports the same int8 model as a QDQ graph, and times
# ours in int8 and ONNX Runtime's int8 kernels on it in every cell (a table of
# them against each other and against ORT float32).
#
# Machines are noisy: compare ratios from one run, not absolute times across runs.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
peers=${MOBILEONE_PEERS_DIR:-$HOME/.cache/mobileone-peers}
ort_version=1.30.0

variants="s0 s1 s2 s3 s4"
threads="1 2"
seed=1
rounds=10 runs=20 trim=4
b8_rounds=3 b8_runs=5 b8_trim=1
do_b8=1
repeat=1
out=""
install_only=0
bf16=0
int8=0
while [ $# -gt 0 ]; do
	case "$1" in
	--variants) variants=$2; shift 2 ;;
	--threads) threads=$2; shift 2 ;;
	--seed) seed=$2; shift 2 ;;
	--rounds) rounds=$2; shift 2 ;;
	--runs) runs=$2; shift 2 ;;
	--trim) trim=$2; shift 2 ;;
	--b8-rounds) b8_rounds=$2; shift 2 ;;
	--b8-runs) b8_runs=$2; shift 2 ;;
	--b8-trim) b8_trim=$2; shift 2 ;;
	--no-b8) do_b8=0; shift ;;
	--repeat) repeat=$2; shift 2 ;;
	--out) out=$2; shift 2 ;;
	--install-only) install_only=1; shift ;;
	--bf16) bf16=1; shift ;;
	--int8) int8=1; shift ;;
	-h | --help) sed -n '2,34p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "run.sh: unknown argument $1" >&2; exit 2 ;;
	esac
done

log() { echo "run.sh: $*" >&2; }

command -v node >/dev/null || { log "node is not installed (apt-get install -y nodejs npm)"; exit 1; }

# 1. ONNX Runtime for node, outside the repo.
pkg="$peers/node_modules/onnxruntime-node/package.json"
if [ ! -f "$pkg" ] || [ "$(node -p "require('$pkg').version")" != "$ort_version" ]; then
	log "installing onnxruntime-node@$ort_version into $peers"
	mkdir -p "$peers"
	(cd "$peers" && npm install --ignore-scripts --no-audit --no-fund --loglevel=error "onnxruntime-node@$ort_version" >&2)
fi
export NODE_PATH="$peers/node_modules"
node -e "require('onnxruntime-node')" || { log "onnxruntime-node does not load from $NODE_PATH"; exit 1; }
[ "$install_only" = 1 ] && { log "onnxruntime-node@$ort_version is in $peers"; exit 0; }

# 2. Our command, and the exported files.
work=$(mktemp -d "${TMPDIR:-/tmp}/mobileone-peers.XXXXXX")
log "scratch folder $work"
(cd "$repo" && CGO_ENABLED=0 go build -o "$work/mobileone" ./cmd/mobileone)
mo="$work/mobileone"
results="$work/results.jsonl"
: >"$results"

node "$here/peers.js" input "$work/in.npy" 2 3 224 224 "$seed"
if [ "$int8" = 1 ]; then
	log "calibration images: 8 canvases (mobileone data canvases)"
	"$mo" data canvases -o "$work/canvases" --train 8 --val 1 --size 256 >&2
	rm -rf "$work/canvases/SegmentationClass" "$work/canvases/SegmentationObject"
fi
status=0
for v in $variants; do
	log "$v: export (random weights, seed $seed)"
	"$mo" export -m "$v" --random-seed "$seed" --format onnx -o "$work/$v.onnx" --weights-out "$work/$v.safetensors" >&2

	# 3. Parity on the exported file.
	"$mo" predict -w "$work/$v.safetensors" -m "$v" --npy "$work/in.npy" --out "$work/$v.ours.npy" >&2
	node "$here/ort_bench.js" --model "$work/$v.onnx" --threads 2 --npy "$work/in.npy" --out "$work/$v.ort.npy"
	if parity=$(node "$here/peers.js" compare "$work/$v.ours.npy" "$work/$v.ort.npy" 1e-4); then :; else
		log "$v: ONNX Runtime's logits differ from ours: $parity"
		status=1
	fi
	[ -n "$parity" ] || parity='{"ok":false}'
	echo "{\"parity\":true,\"variant\":\"$v\",${parity#\{}" >>"$results"
	log "$v: parity $parity"

	if [ "$int8" = 1 ]; then
		log "$v: quantise (int8) and export the QDQ graph"
		"$mo" quantize -w "$work/$v.safetensors" -m "$v" --calib "$work/canvases/JPEGImages" --images 8 --report-images 1 \
			-o "$work/$v.int8.safetensors" >"$work/$v.quantize.txt"
		"$mo" export -w "$work/$v.int8.safetensors" -o "$work/$v.int8.onnx" >&2
	fi

	# 4. Latency (batch 1) and throughput (batch 8).
	for t in $threads; do
		batches="1"
		[ "$do_b8" = 1 ] && batches="1 8"
		for b in $batches; do
			if [ "$b" = 1 ]; then r=$rounds n=$runs tr=$trim; else r=$b8_rounds n=$b8_runs tr=$b8_trim; fi
			for rep in $(seq "$repeat"); do
				log "$v: $t thread(s), batch $b: ours ($rep/$repeat)"
				if j=$("$mo" bench -m "$v" --random-seed "$seed" --threads "$t" --batch "$b" --rounds "$r" --runs "$n" --trim "$tr" --json); then
					echo "{\"side\":\"ours\",\"variant\":\"$v\",\"r\":$j}" >>"$results"
				else
					log "$v: mobileone bench failed; its cells stay empty"
					status=1
				fi
				if [ "$bf16" = 1 ]; then
					log "$v: $t thread(s), batch $b: ours in bf16 ($rep/$repeat)"
					if j=$("$mo" bench -m "$v" --random-seed "$seed" --threads "$t" --batch "$b" --rounds "$r" --runs "$n" --trim "$tr" --precision bf16 --json); then
						echo "{\"side\":\"ours_bf16\",\"variant\":\"$v\",\"r\":$j}" >>"$results"
					else
						log "$v: mobileone bench --precision bf16 failed; its cells stay empty"
						status=1
					fi
				fi
				if [ "$int8" = 1 ]; then
					log "$v: $t thread(s), batch $b: ours in int8 ($rep/$repeat)"
					if j=$("$mo" bench -w "$work/$v.int8.safetensors" --threads "$t" --batch "$b" --rounds "$r" --runs "$n" --trim "$tr" --json); then
						echo "{\"side\":\"ours_int8\",\"variant\":\"$v\",\"r\":$j}" >>"$results"
					else
						log "$v: mobileone bench (int8) failed; its cells stay empty"
						status=1
					fi
					log "$v: $t thread(s), batch $b: ONNX Runtime int8 ($rep/$repeat)"
					j=$(node "$here/ort_bench.js" --model "$work/$v.int8.onnx" --threads "$t" --batch "$b" --rounds "$r" --runs "$n" --trim "$tr" --json)
					echo "{\"side\":\"ort_int8\",\"variant\":\"$v\",\"r\":$j}" >>"$results"
				fi
				log "$v: $t thread(s), batch $b: ONNX Runtime ($rep/$repeat)"
				j=$(node "$here/ort_bench.js" --model "$work/$v.onnx" --threads "$t" --batch "$b" --rounds "$r" --runs "$n" --trim "$tr" --json)
				echo "{\"side\":\"ort\",\"variant\":\"$v\",\"r\":$j}" >>"$results"
			done
		done
	done
done

table=$(node "$here/peers.js" table "$results")
cpu=$(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -n 1)
{
	echo "$(date -u '+%Y-%m-%d %H:%M UTC'), ${cpu:-unknown CPU}, $(nproc) cores, $(cd "$repo" && go env GOVERSION), node $(node --version)"
	echo
	echo "$table"
} >"$work/results.md"
cat "$work/results.md"
[ -n "$out" ] && cp "$work/results.md" "$out"
log "raw results in $results"
exit $status
