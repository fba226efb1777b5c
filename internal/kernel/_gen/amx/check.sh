#!/bin/sh
# check.sh fails if internal/kernel/amx_amd64.s or amx_stub_amd64.go differ
# from what ./amx generates (see ../checkgen.sh). Run from anywhere.
exec "$(dirname "$0")/../checkgen.sh" amx amx
