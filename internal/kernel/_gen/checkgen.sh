#!/bin/sh
# checkgen.sh GEN BASE regenerates the kernels of generator ./GEN into a
# temporary directory and fails if they differ from the committed
# ../BASE_amd64.s and ../BASE_stub_amd64.go (the first line, which records
# the output paths of the generating command, is compared only for its
# DO NOT EDIT marker). Run from anywhere; act/, dw/, dwb/, dwk/, ntdot/, pw/, softmax/, stemb/ and vec/ each
# have a check.sh calling it.
set -eu
[ $# -eq 2 ] || { echo "usage: checkgen.sh GEN BASE" >&2; exit 2; }
name=$1 base=$2
gen=$(cd "$(dirname "$0")" && pwd)
kernel=$(cd "$gen/.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$gen" && go run "./$name" -out "$tmp/${base}_amd64.s" -stubs "$tmp/${base}_stub_amd64.go")
status=0
for f in "${base}_amd64.s" "${base}_stub_amd64.go"; do
	if ! head -n 1 "$kernel/$f" | grep -q 'DO NOT EDIT'; then
		echo "checkgen.sh: $f lacks the DO NOT EDIT header" >&2
		status=1
	fi
	tail -n +2 "$tmp/$f" >"$tmp/$f.body"
	if ! tail -n +2 "$kernel/$f" | diff -u --label "committed $f" --label "generated $f" - "$tmp/$f.body" >&2; then
		echo "checkgen.sh: $f is stale; run go generate ./internal/kernel" >&2
		status=1
	fi
done
[ "$status" -eq 0 ] && echo "$base kernels ($name) up to date"
exit "$status"
