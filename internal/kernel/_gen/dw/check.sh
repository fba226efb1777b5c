#!/bin/sh
# check.sh fails if internal/kernel/depthwise_amd64.s or depthwise_stub_amd64.go differ
# from what ./dw generates (see ../checkgen.sh). Run from anywhere.
exec "$(dirname "$0")/../checkgen.sh" dw depthwise
