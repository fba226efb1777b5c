#!/bin/sh
# check.sh fails if internal/kernel/stemblocked_amd64.s or stemblocked_stub_amd64.go differ
# from what ./stemb generates (see ../checkgen.sh). Run from anywhere.
exec "$(dirname "$0")/../checkgen.sh" stemb stemblocked
