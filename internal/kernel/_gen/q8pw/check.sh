#!/bin/sh
# check.sh fails if internal/kernel/q8pw_amd64.s or q8pw_stub_amd64.go
# differ from what ./q8pw generates (see ../checkgen.sh). Run from anywhere.
exec "$(dirname "$0")/../checkgen.sh" q8pw q8pw
