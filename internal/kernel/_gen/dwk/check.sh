#!/bin/sh
# check.sh fails if internal/kernel/dwblockedk_amd64.s or dwblockedk_stub_amd64.go
# differ from what ./dwk generates (see ../checkgen.sh). Run from anywhere.
exec "$(dirname "$0")/../checkgen.sh" dwk dwblockedk
