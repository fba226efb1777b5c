package safetensors

import (
	"bytes"
	"strings"
	"testing"
)

func TestRawRoundTripAndRefusals(t *testing.T) {
	ts := map[string]RawTensor{
		"w":     {DType: I8, Shape: []int{2, 3}, Data: []byte{1, 0xff, 0x80, 4, 5, 6}},
		"b":     {DType: I32, Shape: []int{2}, Data: []byte{1, 0, 0, 0, 0xfe, 0xff, 0xff, 0xff}},
		"scale": {DType: F32, Shape: []int{1}, Data: []byte{0, 0, 0x80, 0x3f}},
	}
	var buf bytes.Buffer
	if err := WriteRaw(&buf, ts, map[string]string{"precision": "int8"}); err != nil {
		t.Fatal(err)
	}
	f, err := ReadRaw(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	if err != nil {
		t.Fatal(err)
	}
	if f.Metadata["precision"] != "int8" || len(f.Tensors) != 3 {
		t.Fatalf("metadata %v, %d tensors", f.Metadata, len(f.Tensors))
	}
	for k, want := range ts {
		got := f.Tensors[k]
		if got.DType != want.DType || !bytes.Equal(got.Data, want.Data) || len(got.Shape) != len(want.Shape) {
			t.Errorf("%s: got %+v, want %+v", k, got, want)
		}
	}
	// Read (float) refuses integer tensors instead of converting them.
	if _, err := Read(bytes.NewReader(buf.Bytes()), int64(buf.Len())); err == nil || !strings.Contains(err.Error(), "ReadRaw") {
		t.Errorf("Read of an int8 file: %v", err)
	}
	// A truncated file is an error, not a panic.
	for _, n := range []int{0, 7, 8, 20, buf.Len() - 1} {
		if _, err := ReadRaw(bytes.NewReader(buf.Bytes()[:n]), int64(n)); err == nil {
			t.Errorf("truncated to %d bytes: no error", n)
		}
	}
	// Wrong byte count for the shape.
	bad := map[string]RawTensor{"w": {DType: I8, Shape: []int{4}, Data: []byte{1, 2}}}
	if err := WriteRaw(&bytes.Buffer{}, bad, nil); err == nil {
		t.Error("WriteRaw accepted 2 bytes for 4 int8 values")
	}
}
