#!/bin/sh
# check.sh fails if internal/kernel/gemmnt_amd64.s or gemmnt_stub_amd64.go differ
# from what ./ntdot generates (see ../checkgen.sh). Run from anywhere.
exec "$(dirname "$0")/../checkgen.sh" ntdot gemmnt
