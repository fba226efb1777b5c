#!/usr/bin/env bash
# Load benchmark of `mobileone serve` with load generators that are not ours
# (Debian's hey, and wrk), on loopback only, against `mobileone bench`'s
# batch throughput for the same model and threads.
#
#   bench/serve/run.sh [--model s0] [--threads 2] [--batch 8] [--long 60s] [--short 20s]
#                      [--port 18080] [--out DIR] [--no-wrk] [--no-classify] [--bin FILE]
#
# 1. builds the command (CGO_ENABLED=0; or takes --bin) and the request bodies
#    (bench/serve/mkinput: a float32 .npy (1, 3, 224, 224) and a 256x256 JPEG);
# 2. runs `mobileone bench -m MODEL --threads T --batch B --json` (the engine's
#    batch throughput: images/s at the median run) and --batch 1 (latency);
# 3. starts `mobileone serve -m MODEL --threads T --max-batch B` (random weights)
#    on 127.0.0.1:PORT and warms it up (5 s at concurrency 64);
# 4. POSTs the .npy to /v1/models/MODEL/logits with hey at concurrency 1 and 8
#    (--short each) and 64 (--long); with wrk at 1 and 64 (--short); then the
#    JPEG to /classify with hey at 1 and 64 (--short). Per row: throughput,
#    p50/p99 latency, errors (any answer but 200, and transport errors), the
#    CPU time the server and the load generator used per request, and the CPU
#    the rest of the machine used meanwhile (other users' load);
# 5. RSS of the server when ready, after the warm-up, around the long run and
#    at the end;
# 6. bench again (the machine may have changed), then SIGTERM: the server must
#    drain and exit 0.
#
# Prints a markdown table (also in DIR/results.md); raw outputs stay in DIR
# (default ${TMPDIR:-/tmp}/mobileone-serve-bench).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
model=s0 threads=2 batch=8 long=60s short=20s port=18080 classify=1 wrk=1 bin=""
out=${TMPDIR:-/tmp}/mobileone-serve-bench
while [ $# -gt 0 ]; do
	case "$1" in
	--model) model=$2; shift 2 ;;
	--threads) threads=$2; shift 2 ;;
	--batch) batch=$2; shift 2 ;;
	--long) long=$2; shift 2 ;;
	--short) short=$2; shift 2 ;;
	--port) port=$2; shift 2 ;;
	--out) out=$2; shift 2 ;;
	--no-wrk) wrk=0; shift ;;
	--no-classify) classify=0; shift ;;
	--bin) bin=$2; shift 2 ;;
	-h | --help) sed -n '2,28p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "run.sh: unknown argument $1" >&2; exit 2 ;;
	esac
done
command -v hey >/dev/null || { echo "run.sh: hey not found: apt-get install -y hey" >&2; exit 1; }
if [ "$wrk" = 1 ] && ! command -v wrk >/dev/null; then
	echo "run.sh: wrk not found: apt-get install -y wrk, or --no-wrk" >&2
	exit 1
fi
mkdir -p "$out"
cd "$repo"
if [ -z "$bin" ]; then
	CGO_ENABLED=0 go build -o "$out/mobileone" ./cmd/mobileone
	bin=$out/mobileone
fi
go run ./bench/serve/mkinput -o "$out" -size 224 -image 256
base=http://127.0.0.1:$port
tck=$(getconf CLK_TCK)

bench() { "$bin" bench -m "$model" --threads "$threads" --batch "$batch" --json; }
echo "bench: $model, $threads threads, batch $batch" >&2
bench >"$out/bench-before.json"
"$bin" bench -m "$model" --threads "$threads" --batch 1 --json >"$out/bench-b1.json"

if curl -s -o /dev/null "$base/healthz"; then
	echo "run.sh: something already answers on port $port (--port)" >&2
	exit 1
fi
"$bin" serve -m "$model" --threads "$threads" --max-batch "$batch" --addr "127.0.0.1:$port" \
	--log-format json --log-level warn 2>"$out/serve.log" &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
for _ in $(seq 200); do
	curl -fs "$base/readyz" >/dev/null 2>&1 && break
	sleep 0.1
done
kill -0 "$pid" 2>/dev/null && curl -fs "$base/readyz" >/dev/null || {
	echo "run.sh: the server did not become ready" >&2
	cat "$out/serve.log" >&2
	exit 1
}

rss() { awk '/^VmRSS/ {print $2}' "/proc/$pid/status"; }                 # KiB
cpu() { awk '{print $14 + $15}' "/proc/$pid/stat"; }                     # server utime+stime, ticks
busy() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8 + $9}' /proc/stat; } # whole machine, ticks

rss_ready=$(rss)
logits_url="$base/v1/models/$model/logits"
classify_url="$base/v1/models/$model/classify"
npy=$out/input-224.npy
jpg=$out/image-256.jpg
hey -z 5s -c 64 -m POST -D "$npy" -T application/octet-stream "$logits_url" >"$out/warmup.txt"
rss_warm=$(rss)

cat >"$out/post.lua" <<'LUA'
local f = assert(io.open(os.getenv("BODY"), "rb"))
wrk.body = f:read("*a")
f:close()
wrk.method = "POST"
wrk.headers["Content-Type"] = os.getenv("CTYPE")
LUA

rows=()
# run GEN NAME CONCURRENCY DURATION URL BODY TYPE: one row of the table.
run() {
	local gen=$1 name=$2 c=$3 d=$4 url=$5 body=$6 type=$7 f=$out/$1-$2-c$3.txt
	echo "$gen: $name, concurrency $c, $d" >&2
	local s0 b0 s1 b1
	s0=$(cpu) b0=$(busy)
	if [ "$gen" = hey ]; then
		/usr/bin/time -f '%U %S' -o "$out/gen-time.txt" hey -z "$d" -c "$c" -m POST -D "$body" -T "$type" "$url" >"$f"
	else
		BODY=$body CTYPE=$type /usr/bin/time -f '%U %S' -o "$out/gen-time.txt" \
			wrk -t "$((c < 2 ? 1 : 2))" -c "$c" -d "$d" --latency -s "$out/post.lua" "$url" >"$f"
	fi
	s1=$(cpu) b1=$(busy)
	rows+=("$(awk -v gen="$gen" -v name="$name" -v c="$c" -v d="$d" -v scpu=$((s1 - s0)) -v busy=$((b1 - b0)) \
		-v tck="$tck" -v secs="${d%s}" -v gencpu="$(awk '{print $1 + $2}' "$out/gen-time.txt")" '
		function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; if (v ~ /s$/) return v * 1000; return v }
		# hey
		/Requests\/sec:/ {rps = $2}
		gen == "hey" && / 50% in / {p50 = $3 * 1000}
		gen == "hey" && / 99% in / {p99 = $3 * 1000}
		/^Status code distribution:/ {sec = "status"; next}
		/^Error distribution:/ {sec = "error"; next}
		sec == "status" && /\[[0-9]+\]/ {code = $1; gsub(/[\[\]]/, "", code); n += $2; if (code != 200) bad += $2}
		sec == "error" && /\[[0-9]+\]/ {k = $1; gsub(/[\[\]]/, "", k); n += k; bad += k}
		# wrk
		gen == "wrk" && /^ +50% / {p50 = ms($2)}
		gen == "wrk" && /^ +99% / {p99 = ms($2)}
		gen == "wrk" && / requests in / {n = $1}
		/Non-2xx or 3xx responses:/ {bad += $NF}
		/Socket errors:/ {for (i = 3; i < NF; i += 2) {v = $(i + 1); gsub(/,/, "", v); bad += v}}
		END {
			s = scpu / tck; others = busy / tck - s - gencpu
			printf "| %s | %s | %d | %s | %d | %.1f | %.1f | %.1f | %d | %.2f | %.2f | %.0f %% |\n",
				name, gen, c, d, n, rps, p50, p99, bad, 1000 * s / (n > 0 ? n : 1), 1000 * gencpu / (n > 0 ? n : 1),
				100 * others / secs
		}' "$f")")
}
run hey logits 1 "$short" "$logits_url" "$npy" application/octet-stream
run hey logits 8 "$short" "$logits_url" "$npy" application/octet-stream
rss_before64=$(rss)
run hey logits 64 "$long" "$logits_url" "$npy" application/octet-stream
rss_after64=$(rss)
if [ "$wrk" = 1 ]; then
	run wrk logits 1 "$short" "$logits_url" "$npy" application/octet-stream
	run wrk logits 64 "$short" "$logits_url" "$npy" application/octet-stream
fi
if [ "$classify" = 1 ]; then
	run hey classify 1 "$short" "$classify_url" "$jpg" image/jpeg
	run hey classify 64 "$short" "$classify_url" "$jpg" image/jpeg
fi
rss_end=$(rss)
curl -fs "$base/metrics" >"$out/metrics.txt"
echo "bench again" >&2
bench >"$out/bench-after.json"

kill -TERM "$pid"
status=0
wait "$pid" || status=$?
trap - EXIT

ips() { sed 's/.*"images_per_s":\([0-9.]*\).*/\1/' "$1" | awk '{printf "%.1f", $1}'; }
b1=$(ips "$out/bench-before.json") b2=$(ips "$out/bench-after.json")
{
	echo "mobileone serve -m $model --threads $threads --max-batch $batch (random weights), loopback, $(date -u '+%Y-%m-%d %H:%M UTC')"
	echo "CPU: $(awk -F': *' '/^model name/ {print $2; exit}' /proc/cpuinfo), $(nproc) CPUs; $(go version | cut -d' ' -f3)"
	echo
	echo "| endpoint | load generator | concurrency | duration | requests | images/s | p50 ms | p99 ms | errors | server CPU ms/image | generator CPU ms/request | others' CPU |"
	echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
	printf '%s\n' "${rows[@]}"
	echo
	echo "mobileone bench -m $model --threads $threads --batch $batch: $b1 images/s before, $b2 after (median run);" \
		"--batch 1: median latency $(sed 's/.*"median_ms":\([0-9.]*\).*/\1/' "$out/bench-b1.json" | awk '{printf "%.2f", $1}') ms."
	echo "Server RSS: $((rss_ready / 1024)) MiB when ready, $((rss_warm / 1024)) MiB after the warm-up;" \
		"$((rss_before64 / 1024)) MiB before the concurrency-64 run, $((rss_after64 / 1024)) MiB after it; $((rss_end / 1024)) MiB at the end."
	echo "SIGTERM: exit status $status; $(grep -c '"level":"ERROR"' "$out/serve.log" || true) error lines in the server's log."
	echo "others' CPU: what the rest of the machine used during the row, as a share of one CPU (other users' load)."
} | tee "$out/results.md"
[ "$status" = 0 ]
