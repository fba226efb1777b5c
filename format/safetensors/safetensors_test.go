package safetensors

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mobileone-go/mobileone/tensor"
)

// base mirrors make.py: 0.25*i - 0.5.
func base(n int) []float32 {
	d := make([]float32, n)
	for i := range d {
		d[i] = float32(i)*0.25 - 0.5
	}
	return d
}

func add(d []float32, c float32) []float32 {
	for i := range d {
		d[i] += c
	}
	return d
}

func sameBits(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return false
		}
	}
	return true
}

var goldenMeta = map[string]string{"format": "pt", "note": "\u00b5<&> \"quoted\"\\"}

// goldenF32 is the content of testdata/f32.safetensors, minus "r.rounding"
// whose values are checked against their float32 literals separately.
func goldenF32() map[string]*tensor.Tensor {
	mk := func(d []float32, s ...int) *tensor.Tensor {
		t, err := tensor.FromData(d, s...)
		if err != nil {
			panic(err)
		}
		return t
	}
	return map[string]*tensor.Tensor{
		"a.weight":      mk(base(6), 2, 3),
		"b.bias":        mk(base(3), 3),
		"c.scalar":      mk([]float32{2.5}),
		"d.empty":       mk([]float32{}, 0, 4),
		"Z.upper":       mk(add(base(2), 10), 2),
		"\u00e9.accent": mk(base(24), 1, 2, 3, 4),
	}
}

func readGolden(t *testing.T, name string) (*File, []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	f, err := ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return f, raw
}

func checkTensors(t *testing.T, got, want map[string]*tensor.Tensor) {
	t.Helper()
	for k, w := range want {
		g := got[k]
		if g == nil {
			t.Errorf("missing %q", k)
			continue
		}
		if !tensor.SameShape(g.Shape, w.Shape) || !sameBits(g.Data, w.Data) {
			t.Errorf("%q: got %v %v, want %v %v", k, g.Shape, g.Data, w.Shape, w.Data)
		}
	}
}

func TestGoldenF32(t *testing.T) {
	f, raw := readGolden(t, "f32.safetensors")
	checkTensors(t, f.Tensors, goldenF32())
	wantKeys := []string{"Z.upper", "a.weight", "b.bias", "c.scalar", "d.empty", "r.rounding", "\u00e9.accent"}
	if strings.Join(f.Keys, "|") != strings.Join(wantKeys, "|") {
		t.Errorf("keys %q, want %q", f.Keys, wantKeys)
	}
	if len(f.Metadata) != 2 || f.Metadata["format"] != "pt" || f.Metadata["note"] != goldenMeta["note"] {
		t.Errorf("metadata %q", f.Metadata)
	}
	// Writing what we read, keys sorted, reproduces the file byte for byte.
	var buf bytes.Buffer
	if err := Write(&buf, f.Keys, f.Tensors, f.Metadata, F32); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), raw) {
		t.Fatalf("Write differs from golden:\n got %q\nwant %q", buf.Bytes(), raw)
	}
	// nil keys means sorted names: same bytes.
	buf.Reset()
	if err := Write(&buf, nil, f.Tensors, f.Metadata, F32); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), raw) {
		t.Fatal("Write with nil keys differs from golden")
	}
}

func TestGoldenNoMetadata(t *testing.T) {
	f, raw := readGolden(t, "f32_nometa.safetensors")
	if len(f.Metadata) != 0 || f.Metadata == nil {
		t.Errorf("metadata %#v, want empty map", f.Metadata)
	}
	var buf bytes.Buffer
	if err := Write(&buf, f.Keys, f.Tensors, nil, F32); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), raw) {
		t.Fatalf("Write differs from golden:\n got %q\nwant %q", buf.Bytes(), raw)
	}
}

// numpy's float16 conversion is the reference for Write(F16).
func TestGoldenF16(t *testing.T) {
	f32, _ := readGolden(t, "f32.safetensors")
	f16, raw := readGolden(t, "f16.safetensors")
	var buf bytes.Buffer
	if err := Write(&buf, f32.Keys, f32.Tensors, f32.Metadata, F16); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), raw) {
		t.Fatalf("Write(F16) differs from numpy golden:\n got %q\nwant %q", buf.Bytes(), raw)
	}
	// Reading the F16 golden gives the values rounded to float16.
	checkTensors(t, f16.Tensors, goldenF32()) // all exact in float16
	r := f16.Tensors["r.rounding"]
	src := f32.Tensors["r.rounding"]
	for i := range r.Data {
		want := Float16ToFloat32(Float32ToFloat16(src.Data[i]))
		if math.Float32bits(r.Data[i]) != math.Float32bits(want) {
			t.Errorf("rounding[%d]: got %g, want %g", i, r.Data[i], want)
		}
	}
}

func TestGoldenMixed(t *testing.T) {
	f, _ := readGolden(t, "mixed.safetensors")
	mk := func(d []float32, s ...int) *tensor.Tensor {
		t, _ := tensor.FromData(d, s...)
		return t
	}
	want := map[string]*tensor.Tensor{
		"m.f64":  mk(base(4), 2, 2),
		"k.f16":  mk(base(3), 3),
		"z.f32":  mk(base(2), 2),
		"a.bf16": mk(base(4), 4),
		"i.i64":  mk([]float32{-3, 0, 7, 1 << 40}, 4),
		"j.i32":  mk([]float32{-5, 123456}, 2, 1),
	}
	checkTensors(t, f.Tensors, want)
	wantKeys := "m.f64|k.f16|z.f32|a.bf16|i.i64|j.i32"
	if got := strings.Join(f.Keys, "|"); got != wantKeys {
		t.Errorf("keys %s, want %s (data-offset order)", got, wantKeys)
	}
	if f.Metadata["format"] != "mixed" {
		t.Errorf("metadata %q", f.Metadata)
	}
}

func TestRoundTrip(t *testing.T) {
	ts := goldenF32()
	nbig := 3*chunkBytes/4 + 5 // several read chunks
	ts["big"], _ = tensor.FromData(base(nbig), nbig)
	for _, dt := range []DType{F32, F16} {
		keys := []string{"b.bias", "big", "a.weight", "d.empty", "c.scalar", "Z.upper", "\u00e9.accent"}
		var buf bytes.Buffer
		if err := Write(&buf, keys, ts, map[string]string{"k": "v"}, dt); err != nil {
			t.Fatal(err)
		}
		if (binary.LittleEndian.Uint64(buf.Bytes()))%8 != 0 {
			t.Errorf("%s: header not padded to 8", dt)
		}
		f, err := Read(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
		if err != nil {
			t.Fatalf("%s: %v", dt, err)
		}
		// d.empty has zero bytes at the same offset as c.scalar's start; ties
		// sort by end then name.
		want := []string{"b.bias", "big", "a.weight", "d.empty", "c.scalar", "Z.upper", "\u00e9.accent"}
		if strings.Join(f.Keys, "|") != strings.Join(want, "|") {
			t.Errorf("%s: keys %q, want %q", dt, f.Keys, want)
		}
		if f.Metadata["k"] != "v" {
			t.Errorf("%s: metadata %q", dt, f.Metadata)
		}
		// All values are exact in float16 except big's large ones.
		for k, w := range ts {
			g := f.Tensors[k]
			if !tensor.SameShape(g.Shape, w.Shape) || len(g.Data) != len(w.Data) {
				t.Fatalf("%s %q: shape %v", dt, k, g.Shape)
			}
			for i := range w.Data {
				want := w.Data[i]
				if dt == F16 {
					want = Float16ToFloat32(Float32ToFloat16(want))
				}
				if math.Float32bits(g.Data[i]) != math.Float32bits(want) {
					t.Fatalf("%s %q[%d]: got %g, want %g", dt, k, i, g.Data[i], want)
				}
			}
		}
	}
}

func TestWriteFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "m.safetensors")
	ts := goldenF32()
	if err := WriteFile(path, nil, ts, nil, F32); err != nil {
		t.Fatal(err)
	}
	f, err := ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	checkTensors(t, f.Tensors, ts)
	if err := WriteFile(path, []string{"nope"}, ts, nil, F32); err == nil {
		t.Fatal("want error")
	}
	if _, err := ReadFile(path); err != nil {
		t.Fatalf("old file damaged: %v", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Fatalf("%d entries in dir, want 1", len(ents))
	}
}

func TestWriteErrors(t *testing.T) {
	one, _ := tensor.FromData([]float32{1}, 1)
	ts := map[string]*tensor.Tensor{"x": one}
	cases := []struct {
		name string
		keys []string
		ts   map[string]*tensor.Tensor
		dt   DType
		want string
	}{
		{"dtype", nil, ts, BF16, `safetensors: cannot write dtype "BF16"`},
		{"missing", []string{"x", "y"}, ts, F32, `safetensors: key "y" has no tensor`},
		{"twice", []string{"x", "x"}, ts, F32, `safetensors: key "x" listed twice`},
		{"unlisted", []string{}, ts, F32, `safetensors: tensor "x" is not listed in keys`},
		{"reserved", nil, map[string]*tensor.Tensor{"__metadata__": one}, F32, `safetensors: "__metadata__" is reserved`},
		{"inconsistent", nil, map[string]*tensor.Tensor{"x": {Shape: []int{2}, Data: []float32{1}}}, F32, `safetensors: tensor "x": shape (2) needs 2 values, has 1`},
		{"negative", nil, map[string]*tensor.Tensor{"x": {Shape: []int{-1}, Data: []float32{}}}, F32, `safetensors: tensor "x" has negative shape`},
	}
	for _, c := range cases {
		var buf bytes.Buffer
		err := Write(&buf, c.keys, c.ts, nil, c.dt)
		if err == nil || !strings.HasPrefix(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want prefix %q", c.name, err, c.want)
		}
	}
	boom := errors.New("boom")
	if err := Write(errWriter{boom}, nil, ts, nil, F32); !errors.Is(err, boom) {
		t.Errorf("writer error: %v", err)
	}
}

type errWriter struct{ err error }

func (e errWriter) Write([]byte) (int, error) { return 0, e.err }

// file builds a safetensors file from a header string and a data buffer.
func file(hdr string, data []byte) []byte {
	b := binary.LittleEndian.AppendUint64(nil, uint64(len(hdr)))
	return append(append(b, hdr...), data...)
}

func TestBadInputs(t *testing.T) {
	f32 := func(n int) []byte { return make([]byte, 4*n) }
	ok := file(`{"x":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]}}`, f32(6))
	hugeLen := binary.LittleEndian.AppendUint64(nil, 1<<62)
	cases := []struct {
		name string
		b    []byte
		want string
	}{
		{"empty", nil, "safetensors: file has 0 bytes, too short"},
		{"short length", []byte{1, 2, 3}, "safetensors: file has 3 bytes, too short"},
		{"huge header length", append(hugeLen, "{}"...), "safetensors: header length 4611686018427387904 exceeds the limit"},
		{"header past end", file(`{}`, nil)[:9], "safetensors: header length 2 exceeds the 1 bytes after the length field"},
		{"truncated data", ok[:len(ok)-1], `safetensors: tensor "x": data_offsets [0, 24] exceed the 23-byte data buffer`},
		{"bad json", file(`{"x":`, nil), "safetensors: bad header JSON"},
		{"not object", file(`[1,2]`, nil), "safetensors: header is not a JSON object"},
		{"trailing junk", file(`{} x`, nil), "safetensors: bad header JSON: data after the object"},
		{"bad utf8", file("{\"\xff\":1}", nil), "safetensors: header is not valid UTF-8"},
		{"duplicate", file(`{"x":{"dtype":"F32","shape":[],"data_offsets":[0,4]},"x":{"dtype":"F32","shape":[],"data_offsets":[0,4]}}`, f32(1)), `safetensors: duplicate key "x"`},
		{"entry not object", file(`{"x":5}`, nil), `safetensors: tensor "x": entry is not a JSON object`},
		{"missing dtype", file(`{"x":{"shape":[],"data_offsets":[0,4]}}`, f32(1)), `safetensors: tensor "x": missing "dtype"`},
		{"negative shape", file(`{"x":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}`, f32(1)), `safetensors: tensor "x": bad entry`},
		{"float shape", file(`{"x":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}}`, f32(1)), `safetensors: tensor "x": bad entry`},
		{"null shape", file(`{"x":{"dtype":"F32","shape":null,"data_offsets":[0,4]}}`, f32(1)), `safetensors: tensor "x": shape is not a list`},
		{"three offsets", file(`{"x":{"dtype":"F32","shape":[],"data_offsets":[0,4,8]}}`, f32(2)), `safetensors: tensor "x": data_offsets must hold 2 numbers`},
		{"unknown dtype", file(`{"x":{"dtype":"U8","shape":[4],"data_offsets":[0,4]}}`, f32(1)), `safetensors: tensor "x" has dtype "U8", which is not supported`},
		{"overflowing shape", file(`{"x":{"dtype":"F32","shape":[4294967296,4294967296,4294967296],"data_offsets":[0,4]}}`, f32(1)), `safetensors: tensor "x": shape (4294967296, 4294967296, 4294967296) has too many elements`},
		{"zero hides overflow", file(`{"x":{"dtype":"F32","shape":[0,18446744073709551615],"data_offsets":[0,0]}}`, nil), `safetensors: tensor "x": shape (0, 18446744073709551615) has too many elements`},
		{"offsets out of range", file(`{"x":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}}`, f32(2)), `safetensors: tensor "x": data_offsets [8, 16] exceed the 8-byte data buffer`},
		{"offsets reversed", file(`{"x":{"dtype":"F32","shape":[],"data_offsets":[4,0]}}`, f32(1)), `safetensors: tensor "x": data_offsets [4, 0] end before they begin`},
		{"short data", file(`{"x":{"dtype":"F32","shape":[2,3],"data_offsets":[0,20]}}`, f32(5)), `safetensors: tensor "x": F32 (2, 3) needs 24 bytes, data_offsets [0, 20] give 20`},
		{"overlap", file(`{"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"y":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}`, f32(3)), `safetensors: tensor "y": data_offsets [4, 12] overlap the previous tensor, which ends at 8`},
		{"gap", file(`{"x":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, f32(2)), `safetensors: tensor "x": data_offsets [4, 8] leave a gap after byte 0`},
		{"extra data", file(`{"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`, f32(2)), `safetensors: the tensors cover 4 bytes of the 8-byte data buffer`},
		{"metadata not strings", file(`{"__metadata__":{"a":1}}`, nil), `safetensors: __metadata__ must map strings to strings`},
		{"offsets huge", file(`{"x":{"dtype":"F32","shape":[1],"data_offsets":[18446744073709551612,18446744073709551616]}}`, f32(1)), `safetensors: tensor "x": bad entry`},
	}
	for _, c := range cases {
		_, err := Read(bytes.NewReader(c.b), int64(len(c.b)))
		if err == nil || !strings.HasPrefix(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want prefix %q", c.name, err, c.want)
			continue
		}
		if strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: multi-line error %q", c.name, err)
		}
	}
}

// A size larger than what the reader holds is reported as truncation.
func TestReaderShorterThanSize(t *testing.T) {
	b := file(`{"x":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, make([]byte, 8))
	_, err := Read(bytes.NewReader(b[:len(b)-4]), int64(len(b)))
	if err == nil || !strings.Contains(err.Error(), "truncated") {
		t.Fatalf("err = %v", err)
	}
}

// A reader that holds far less than the claimed size fails before the
// tensors are allocated.
func TestSizeLargerThanReader(t *testing.T) {
	b := file(`{"x":{"dtype":"F32","shape":[1073741824],"data_offsets":[0,4294967296]}}`, make([]byte, 8))
	res := testing.Benchmark(func(tb *testing.B) {
		for range tb.N {
			if _, err := Read(bytes.NewReader(b), 8+int64(len(b))+4294967296); err == nil {
				tb.Fatal("want error")
			}
		}
	})
	if per := res.AllocedBytesPerOp(); per > 1<<20 {
		t.Fatalf("allocated %d bytes per Read", per)
	}
}

func TestReadFileMissing(t *testing.T) {
	_, err := ReadFile(filepath.Join(t.TempDir(), "nope"))
	if err == nil || !strings.HasPrefix(err.Error(), "safetensors: ") {
		t.Fatalf("err = %v", err)
	}
}

func FuzzRead(f *testing.F) {
	ents, _ := os.ReadDir("testdata")
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".safetensors") {
			if b, err := os.ReadFile(filepath.Join("testdata", e.Name())); err == nil {
				f.Add(b)
			}
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := Read(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			if !strings.HasPrefix(err.Error(), "safetensors: ") || strings.Contains(err.Error(), "\n") {
				t.Fatalf("bad error text %q", err)
			}
			return
		}
		if len(got.Keys) != len(got.Tensors) {
			t.Fatalf("%d keys for %d tensors", len(got.Keys), len(got.Tensors))
		}
		for _, k := range got.Keys {
			tt := got.Tensors[k]
			if tt == nil || tensor.NumelOf(tt.Shape) != len(tt.Data) {
				t.Fatalf("tensor %q inconsistent", k)
			}
		}
		// What we read must survive an F32 write/read round trip.
		var buf bytes.Buffer
		if err := Write(&buf, got.Keys, got.Tensors, got.Metadata, F32); err != nil {
			t.Fatal(err)
		}
		again, err := Read(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range got.Keys {
			a, b := got.Tensors[k], again.Tensors[k]
			if b == nil || !tensor.SameShape(a.Shape, b.Shape) || !sameBits(a.Data, b.Data) {
				t.Fatalf("tensor %q differs after round trip", k)
			}
		}
	})
}
