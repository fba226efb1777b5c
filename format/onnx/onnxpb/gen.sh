#!/bin/sh
# Regenerates onnx.pb.go from the onnx.proto that Debian's python3-onnx ships
# (onnx 1.12 on Debian 12), with Debian's protoc and protoc-gen-go v1.36.12:
#
#   apt-get install -y protobuf-compiler python3-onnx
#   go install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
#   sh format/onnx/onnxpb/gen.sh
#
# The generated file is committed; only the protobuf runtime
# (google.golang.org/protobuf) is a dependency of the library.
set -eu
cd "$(dirname "$0")"
PROTO_DIR=${ONNX_PROTO_DIR:-$(dirname "$(dpkg -L python3-onnx | grep '/onnx/onnx\.proto$' | head -n 1)")}
[ -f "$PROTO_DIR/onnx.proto" ] || { echo "gen.sh: onnx.proto not found (apt-get install python3-onnx, or set ONNX_PROTO_DIR)" >&2; exit 1; }
PATH="$(go env GOPATH)/bin:$PATH"
protoc -I "$PROTO_DIR" \
	--go_out=. --go_opt=paths=source_relative \
	--go_opt=Monnx.proto=github.com/mobileone-go/mobileone/format/onnx/onnxpb \
	"$PROTO_DIR/onnx.proto"
