#!/bin/sh
# check.sh fails if internal/kernel/act_amd64.s or act_stub_amd64.go differ
# from what ./act generates (see ../checkgen.sh). Run from anywhere.
exec "$(dirname "$0")/../checkgen.sh" act act
