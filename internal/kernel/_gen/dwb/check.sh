#!/bin/sh
# check.sh fails if internal/kernel/dwblocked_amd64.s or dwblocked_stub_amd64.go differ
# from what ./dwb generates (see ../checkgen.sh). Run from anywhere.
exec "$(dirname "$0")/../checkgen.sh" dwb dwblocked
