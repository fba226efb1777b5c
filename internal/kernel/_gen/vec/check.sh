#!/bin/sh
# check.sh fails if internal/kernel/vec_amd64.s or vec_stub_amd64.go differ
# from what ./vec generates (see ../checkgen.sh). Run from anywhere.
exec "$(dirname "$0")/../checkgen.sh" vec vec
