#!/bin/sh
# check.sh fails if internal/kernel/peak_amd64.s or peak_stub_amd64.go
# differ from what ./peak generates (see ../checkgen.sh). Run from anywhere.
exec "$(dirname "$0")/../checkgen.sh" peak peak
