#!/bin/sh
# check.sh fails if internal/kernel/pointwise_amd64.s or pointwise_stub_amd64.go differ
# from what ./pw generates (see ../checkgen.sh). Run from anywhere.
exec "$(dirname "$0")/../checkgen.sh" pw pointwise
