package npy

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
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

func TestGoldenReadAndByteIdenticalWrite(t *testing.T) {
	special := []float32{0, float32(math.Copysign(0, -1)), float32(math.Inf(1)), float32(math.Inf(-1)),
		math.Float32frombits(0x7fc00000), math.Float32frombits(1), math.MaxFloat32, -1.5}
	cases := []struct {
		file     string
		shape    []int
		data     []float32
		rewrites bool // Write reproduces the file byte for byte
	}{
		{"f32_2x3.npy", []int{2, 3}, base(6), true},
		{"f32_5.npy", []int{5}, base(5), true},
		{"f32_scalar.npy", []int{}, []float32{3.5}, true},
		{"f32_0x4.npy", []int{0, 4}, []float32{}, true},
		{"f32_2x3x4x5.npy", []int{2, 3, 4, 5}, base(120), true},
		{"f32_1000x3.npy", []int{1000, 3}, base(3000), true},
		{"f32_special.npy", []int{8}, special, true},
		{"f32_2x3_v2.npy", []int{2, 3}, base(6), false},
		{"f32_2x3_v3.npy", []int{2, 3}, base(6), false},
	}
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			path := filepath.Join("testdata", c.file)
			got, err := ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !tensor.SameShape(got.Shape, c.shape) {
				t.Fatalf("shape %v, want %v", got.Shape, c.shape)
			}
			if !sameBits(got.Data, c.data) {
				t.Fatalf("data %v, want %v", got.Data, c.data)
			}
			if !c.rewrites {
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			if err := Write(&buf, got); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(buf.Bytes(), want) {
				t.Fatalf("Write differs from numpy.save:\n got %q\nwant %q", buf.Bytes()[:min(buf.Len(), 140)], want[:min(len(want), 140)])
			}
			if (len(want)-4*len(c.data))%64 != 0 {
				t.Fatalf("data does not start at a multiple of 64")
			}
		})
	}
}

func TestGoldenRejected(t *testing.T) {
	cases := map[string]string{
		"f64_2x3.npy":       "npy: dtype '<f8' is not float32 (convert with arr.astype(np.float32))",
		"i64_2x3.npy":       "npy: dtype '<i8' is not float32 (convert with arr.astype(np.float32))",
		"f32_fortran.npy":   "npy: fortran order unsupported",
		"f32_bigendian.npy": "npy: dtype '>f4' is big-endian",
	}
	for file, want := range cases {
		_, err := ReadFile(filepath.Join("testdata", file))
		if err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("%s: err = %v, want prefix %q", file, err, want)
		}
	}
}

func TestRoundTrip(t *testing.T) {
	shapes := [][]int{{}, {0}, {1}, {7}, {2, 3}, {1, 3, 5, 5}, {0, 4}, {4, 0, 2}, {3, 0, 5}}
	for _, s := range shapes {
		n := tensor.NumelOf(s)
		want, err := tensor.FromData(base(n), s...)
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		if err := Write(&buf, want); err != nil {
			t.Fatal(err)
		}
		if hl := buf.Len() - 4*n; hl%64 != 0 {
			t.Errorf("%v: header is %d bytes, not a multiple of 64", s, hl)
		}
		got, err := Read(&buf)
		if err != nil {
			t.Fatalf("%v: %v", s, err)
		}
		if !tensor.SameShape(got.Shape, s) || !sameBits(got.Data, want.Data) {
			t.Fatalf("%v: got %v %v", s, got.Shape, got.Data)
		}
	}
}

func TestWriteFileAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "x.npy")
	want, _ := tensor.FromData(base(6), 3, 2)
	if err := WriteFile(path, want); err != nil {
		t.Fatal(err)
	}
	got, err := ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !tensor.SameShape(got.Shape, want.Shape) || !sameBits(got.Data, want.Data) {
		t.Fatalf("got %v", got)
	}
	// A bad tensor leaves the old file intact and no temp file behind.
	bad := &tensor.Tensor{Shape: []int{2, 2}, Data: []float32{1}}
	if err := WriteFile(path, bad); err == nil {
		t.Fatal("want error for inconsistent tensor")
	}
	if _, err := ReadFile(path); err != nil {
		t.Fatalf("old file damaged: %v", err)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Fatalf("directory holds %d entries, want 1", len(ents))
	}
}

func TestWriteErrors(t *testing.T) {
	if err := Write(io.Discard, nil); err == nil {
		t.Error("nil tensor: want error")
	}
	if err := Write(io.Discard, &tensor.Tensor{Shape: []int{2, -1}, Data: []float32{}}); err == nil {
		t.Error("negative shape: want error")
	}
	if err := Write(io.Discard, &tensor.Tensor{Shape: []int{3}, Data: []float32{1, 2}}); err == nil {
		t.Error("short data: want error")
	}
	boom := errors.New("boom")
	big, _ := tensor.FromData(base(100000), 100000)
	if err := Write(failWriter{after: 1000, err: boom}, big); !errors.Is(err, boom) {
		t.Errorf("writer error: got %v", err)
	}
}

type failWriter struct {
	after int
	err   error
}

func (f failWriter) Write(p []byte) (int, error) {
	if len(p) > f.after {
		return 0, f.err
	}
	return len(p), nil
}

// npyBytes builds a .npy file from a raw header dict and data.
func npyBytes(major byte, dict string, data []byte) []byte {
	var b []byte
	b = append(b, magic...)
	b = append(b, major, 0)
	h := dict + "\n"
	if major == 1 {
		b = binary.LittleEndian.AppendUint16(b, uint16(len(h)))
	} else {
		b = binary.LittleEndian.AppendUint32(b, uint32(len(h)))
	}
	b = append(b, h...)
	return append(b, data...)
}

func f32bytes(v ...float32) []byte {
	var b []byte
	for _, x := range v {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(x))
	}
	return b
}

func TestHeaderVariants(t *testing.T) {
	cases := []struct {
		name  string
		b     []byte
		shape []int
	}{
		{"keys reordered", npyBytes(1, "{'shape': (2,), 'fortran_order': False, 'descr': '<f4'}", f32bytes(1, 2)), []int{2}},
		{"double quotes", npyBytes(1, `{"descr": "<f4", "fortran_order": False, "shape": (2,)}`, f32bytes(1, 2)), []int{2}},
		{"no trailing comma", npyBytes(1, "{'descr':'<f4','fortran_order':False,'shape':(1,2)}", f32bytes(1, 2)), []int{1, 2}},
		{"python2 longs", npyBytes(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1L, 2L), }", f32bytes(1, 2)), []int{1, 2}},
		{"list shape rejected? no: tuple with spaces", npyBytes(2, "{ 'descr' : '<f4' , 'fortran_order' : False , 'shape' : ( 2 , ) , }   ", f32bytes(1, 2)), []int{2}},
		{"trailing bytes ignored", npyBytes(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }", f32bytes(1, 2, 3)), []int{1}},
	}
	for _, c := range cases {
		got, err := Read(bytes.NewReader(c.b))
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if !tensor.SameShape(got.Shape, c.shape) {
			t.Errorf("%s: shape %v, want %v", c.name, got.Shape, c.shape)
		}
	}
}

func TestBadInputs(t *testing.T) {
	good := npyBytes(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", f32bytes(base(6)...))
	hdr := func(shape string) []byte {
		return npyBytes(1, "{'descr': '<f4', 'fortran_order': False, 'shape': "+shape+", }", nil)
	}
	cases := []struct {
		name string
		b    []byte
		want string
	}{
		{"empty", nil, "npy: empty input"},
		{"bad magic", []byte("PK\x03\x04 this is a zip file"), "npy: bad magic"},
		{"short magic", []byte("\x93NUM"), "npy: truncated header"},
		{"no length", []byte("\x93NUMPY\x01\x00\x10"), "npy: truncated header"},
		{"short header", good[:40], "npy: truncated header"},
		{"version 4", append([]byte("\x93NUMPY\x04\x00"), good[8:]...), "npy: unsupported format version 4.0"},
		{"version 1.1", append([]byte("\x93NUMPY\x01\x01"), good[8:]...), "npy: unsupported format version 1.1"},
		{"huge header length", []byte("\x93NUMPY\x02\x00\xff\xff\xff\xff{"), "npy: header length 4294967295 exceeds"},
		{"short data", good[:len(good)-3], "npy: data has 21 bytes, shape (2, 3) needs 24"},
		{"no data", hdr("(2, 3)"), "npy: data has 0 bytes, shape (2, 3) needs 24"},
		{"f8", npyBytes(1, "{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }", nil), "npy: dtype '<f8' is not float32 (convert with arr.astype(np.float32))"},
		{"big-endian f8", npyBytes(1, "{'descr': '>f8', 'fortran_order': False, 'shape': (2,), }", nil), "npy: dtype '>f8' is big-endian"},
		{"structured", npyBytes(1, "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2,), }", nil), "npy: dtype is structured"},
		{"fortran", npyBytes(1, "{'descr': '<f4', 'fortran_order': True, 'shape': (2,), }", nil), "npy: fortran order unsupported"},
		{"negative", hdr("(2, -3)"), "npy: negative dimension in shape (2, -3)"},
		{"overflow dim", hdr("(99999999999999999999999,)"), "npy: dimension 0 of shape (huge) overflows"},
		{"too many", hdr("(65536, 65536)"), "npy: too many elements in shape (65536, 65536)"},
		{"zero hides overflow", hdr("(0, 2147483648, 2147483648)"), "npy: too many elements"},
		{"claims 2^31 floats", hdr("(2147483648,)"), "npy: data has 0 bytes, shape (2147483648) needs 8589934592"},
		{"missing shape", npyBytes(1, "{'descr': '<f4', 'fortran_order': False}", nil), "npy: bad header: missing key 'shape'"},
		{"extra key", npyBytes(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (), 'x': 1}", nil), "npy: bad header: unexpected key 'x'"},
		{"duplicate key", npyBytes(1, "{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': ()}", nil), "npy: bad header: duplicate key 'descr'"},
		{"shape not tuple", hdr("5"), "npy: bad header: shape is not a tuple"},
		{"shape of strings", hdr("('a',)"), "npy: bad header: shape holds a non-integer"},
		{"fortran not bool", npyBytes(1, "{'descr': '<f4', 'fortran_order': 0, 'shape': ()}", nil), "npy: bad header: fortran_order"},
		{"not a dict", npyBytes(1, "[1, 2]", nil), "npy: bad header: not a dict"},
		{"garbage", npyBytes(1, "{'descr': '<f4', import os}", nil), "npy: bad header:"},
		{"unterminated", npyBytes(1, "{'descr': '<f4", nil), "npy: bad header: newline in string"},
		{"trailing junk", npyBytes(1, "{'descr': '<f4', 'fortran_order': False, 'shape': ()} x", nil), "npy: bad header: unexpected"},
		{"deep nesting", npyBytes(1, "{'descr': "+strings.Repeat("(", 100)+"}", nil), "npy: bad header: nested too deeply"},
	}
	for _, c := range cases {
		_, err := Read(bytes.NewReader(c.b))
		if err == nil || !strings.HasPrefix(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want prefix %q", c.name, err, c.want)
			continue
		}
		if strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: multi-line error %q", c.name, err)
		}
	}
}

// A tiny file claiming ~8 GiB must fail without allocating for the claim.
func TestHugeClaimAllocatesLittle(t *testing.T) {
	b := npyBytes(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2147483648,), }", f32bytes(1, 2, 3))
	allocs := testing.Benchmark(func(tb *testing.B) {
		for range tb.N {
			Read(bytes.NewReader(b))
		}
	})
	if per := allocs.AllocedBytesPerOp(); per > 64<<20 {
		t.Fatalf("allocated %d bytes for a 3-value file", per)
	}
}

// Large arrays go through the chunked path; check it decodes correctly.
func TestChunkedRead(t *testing.T) {
	n := chunkBytes/4*2 + 17
	want, _ := tensor.FromData(base(n), n)
	var buf bytes.Buffer
	if err := Write(&buf, want); err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()
	got, err := Read(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	if !sameBits(got.Data, want.Data) {
		t.Fatal("chunked read differs")
	}
	_, err = Read(bytes.NewReader(b[:len(b)-1]))
	if err == nil || !strings.Contains(err.Error(), "needs") {
		t.Fatalf("short chunked read: %v", err)
	}
	if wantMsg := fmt.Sprintf("npy: data has %d bytes, shape (%d) needs %d", 4*n-1, n, 4*n); err.Error() != wantMsg {
		t.Fatalf("got %q, want %q", err, wantMsg)
	}
}

func TestReadFileMissing(t *testing.T) {
	_, err := ReadFile(filepath.Join(t.TempDir(), "nope.npy"))
	if err == nil || !strings.HasPrefix(err.Error(), "npy: ") {
		t.Fatalf("err = %v", err)
	}
}

func FuzzRead(f *testing.F) {
	ents, _ := os.ReadDir("testdata")
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".npy") {
			b, err := os.ReadFile(filepath.Join("testdata", e.Name()))
			if err == nil && len(b) < 4096 {
				f.Add(b)
			}
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := Read(bytes.NewReader(b))
		if err != nil {
			if !strings.HasPrefix(err.Error(), "npy: ") || strings.Contains(err.Error(), "\n") {
				t.Fatalf("bad error text %q", err)
			}
			return
		}
		if tensor.NumelOf(got.Shape) != len(got.Data) {
			t.Fatalf("shape %v with %d values", got.Shape, len(got.Data))
		}
		// Whatever we read must survive a write/read round trip.
		var buf bytes.Buffer
		if err := Write(&buf, got); err != nil {
			t.Fatal(err)
		}
		again, err := Read(&buf)
		if err != nil {
			t.Fatal(err)
		}
		if !tensor.SameShape(again.Shape, got.Shape) || !sameBits(again.Data, got.Data) {
			t.Fatal("round trip differs")
		}
	})
}
