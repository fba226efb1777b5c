package data

import (
	"bytes"
	"errors"
	"testing"
)

// FuzzReadIDX feeds arbitrary bytes (raw and gzip IDX) to ReadIDX: it must
// return either a consistent result or an error, never panic, and never
// allocate for a size the input does not contain.
// Seeds: testdata/fuzz/FuzzReadIDX.
//
//	go test -run '^$' -fuzz FuzzReadIDX -fuzztime 60s ./data
func FuzzReadIDX(f *testing.F) {
	f.Fuzz(func(t *testing.T, in []byte) {
		x, err := ReadIDX(bytes.NewReader(in))
		if err != nil {
			if x != nil {
				t.Fatal("result and error")
			}
			if !errors.Is(err, ErrIDX) {
				t.Fatalf("error %q is not ErrIDX", err)
			}
			return
		}
		n := 1
		for _, d := range x.Dims {
			n *= d
		}
		if len(x.Dims) == 0 || n != len(x.Data) {
			t.Fatalf("dims %v with %d bytes", x.Dims, len(x.Data))
		}
		if len(in) >= 2 && in[0] != 0x1f && len(x.Data) > len(in) {
			t.Fatalf("%d bytes of data from %d bytes of input", len(x.Data), len(in))
		}
		// Whatever parses as images (3-d) + labels must load or fail cleanly.
		if len(x.Dims) == 3 && x.Dims[0] <= len(in) {
			lbl := &IDX{Dims: []int{x.Dims[0]}, Data: make([]byte, x.Dims[0])}
			if ds, err := NewIDXDataset(x, lbl, FashionMNISTClasses, "a", "b"); err == nil {
				for i := range min(ds.Len(), 4) {
					if _, _, err := ds.Get(i); err != nil {
						t.Fatal(err)
					}
				}
			}
		}
	})
}
