#!/bin/sh
# check.sh regenerates the pointwise kernels into a temporary directory and
# fails if they differ from the committed ../pointwise_amd64.s and
# ../pointwise_stub_amd64.go (the first line, which records the output
# paths of the generating command, is compared only for its DO NOT EDIT
# marker). Run from anywhere.
set -eu
gen=$(cd "$(dirname "$0")/.." && pwd)
kernel=$(cd "$gen/.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$gen" && go run ./pw -out "$tmp/pointwise_amd64.s" -stubs "$tmp/pointwise_stub_amd64.go")
status=0
for f in pointwise_amd64.s pointwise_stub_amd64.go; do
	if ! head -n 1 "$kernel/$f" | grep -q 'DO NOT EDIT'; then
		echo "check.sh: $f lacks the DO NOT EDIT header" >&2
		status=1
	fi
	tail -n +2 "$tmp/$f" >"$tmp/$f.body"
	if ! tail -n +2 "$kernel/$f" | diff -u --label "committed $f" --label "generated $f" - "$tmp/$f.body" >&2; then
		echo "check.sh: $f is stale; run go generate ./internal/kernel" >&2
		status=1
	fi
done
[ "$status" -eq 0 ] && echo "pointwise kernels up to date"
exit "$status"
