#!/bin/sh
# check.sh fails if internal/kernel/softmax_amd64.s or softmax_stub_amd64.go
# differ from what ./softmax generates (see ../checkgen.sh). Run from anywhere.
exec "$(dirname "$0")/../checkgen.sh" softmax softmax
