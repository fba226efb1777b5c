package data

import (
	"bytes"
	"compress/gzip"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// idxBytes builds an unsigned-byte IDX file, gzip-compressed if gz.
func idxBytes(t testing.TB, dims []int, data []byte, gz bool) []byte {
	t.Helper()
	var raw bytes.Buffer
	if err := WriteIDX(&raw, dims, data); err != nil {
		t.Fatal(err)
	}
	if !gz {
		return raw.Bytes()
	}
	return gzipBytes(t, raw.Bytes())
}

func gzipBytes(t testing.TB, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func seq(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i * 7)
	}
	return b
}

func TestReadIDX(t *testing.T) {
	good := idxBytes(t, []int{3, 4, 5}, seq(60), false)
	goodGz := idxBytes(t, []int{3, 4, 5}, seq(60), true)
	labels := idxBytes(t, []int{6}, []byte{0, 1, 2, 9, 9, 3}, true)
	floatType := append([]byte{0, 0, 0x0D, 1, 0, 0, 0, 1}, 0, 0, 0, 0)
	tests := []struct {
		name  string
		in    []byte
		dims  []int
		want  string // error substring; "" means success
		isIDX bool   // errors.Is(err, ErrIDX)
	}{
		{name: "raw", in: good, dims: []int{3, 4, 5}},
		{name: "gzip", in: goodGz, dims: []int{3, 4, 5}},
		{name: "labels", in: labels, dims: []int{6}},
		{name: "zero images", in: idxBytes(t, []int{0, 28, 28}, nil, false), dims: []int{0, 28, 28}},
		{name: "empty", in: nil, want: "empty file", isIDX: true},
		{name: "short header", in: good[:3], want: "truncated header", isIDX: true},
		{name: "truncated dims", in: good[:9], want: "truncated header (3 dimensions)", isIDX: true},
		{name: "truncated data", in: good[:len(good)-1], want: "need 60 bytes of data, file has 59", isIDX: true},
		{name: "truncated gzip data", in: gzipBytes(t, good[:len(good)-10]), want: "file has 50", isIDX: true},
		{name: "truncated gzip stream", in: goodGz[:len(goodGz)-12], want: "truncated", isIDX: true},
		{name: "trailing data", in: append(append([]byte(nil), good...), 1), want: "trailing data", isIDX: true},
		{name: "bad magic", in: append([]byte{0x50, 0x4b, 3, 4}, good[4:]...), want: "bad magic number 0x504b0304", isIDX: true},
		{name: "png", in: []byte("\x89PNG\r\n\x1a\n"), want: "bad magic", isIDX: true},
		{name: "float type", in: floatType, want: "element type float32", isIDX: true},
		{name: "unknown type", in: []byte{0, 0, 0x42, 1, 0, 0, 0, 0}, want: "unknown element type 0x42", isIDX: true},
		{name: "zero dims", in: []byte{0, 0, 8, 0}, want: "zero dimensions", isIDX: true},
		{name: "huge claim", in: []byte{0, 0, 8, 3, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 2, 1}, want: "more than", isIDX: true},
		{name: "big claim small file", in: []byte{0, 0, 8, 1, 0x7f, 0xff, 0xff, 0xff, 1, 2, 3}, want: "file has 3", isIDX: true},
		{name: "corrupt gzip", in: corruptGzip(goodGz), want: "gzip", isIDX: true},
		{name: "gzip of garbage", in: gzipBytes(t, []byte("hello, world")), want: "bad magic", isIDX: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			x, err := ReadIDX(bytes.NewReader(tc.in))
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if len(x.Dims) != len(tc.dims) {
					t.Fatalf("dims %v, want %v", x.Dims, tc.dims)
				}
				n := 1
				for i, d := range tc.dims {
					if x.Dims[i] != d {
						t.Fatalf("dims %v, want %v", x.Dims, tc.dims)
					}
					n *= d
				}
				if len(x.Data) != n {
					t.Fatalf("%d bytes, want %d", len(x.Data), n)
				}
				return
			}
			if err == nil {
				t.Fatalf("accepted; want error %q", tc.want)
			}
			if x != nil {
				t.Fatal("result and error")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q, want it to contain %q", err, tc.want)
			}
			if tc.isIDX && !errors.Is(err, ErrIDX) {
				t.Fatalf("error %q is not ErrIDX", err)
			}
		})
	}
}

// corruptGzip keeps the gzip header and makes the first deflate block use
// the reserved block type 3.
func corruptGzip(b []byte) []byte {
	c := append([]byte(nil), b...)
	c[10] = 0x07 // BFINAL=1, BTYPE=11
	return c
}

func TestReadIDXContent(t *testing.T) {
	data := seq(2 * 3 * 4)
	x, err := ReadIDX(bytes.NewReader(idxBytes(t, []int{2, 3, 4}, data, true)))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(x.Data, data) {
		t.Fatalf("data %v, want %v", x.Data, data)
	}
}

// writeMNIST writes a Fashion-MNIST-style directory with n w×h images; image
// i is filled with i and labelled i%10.
func writeMNIST(t testing.TB, dir, prefix string, n, w, h int, gz bool) {
	t.Helper()
	pix := make([]byte, n*w*h)
	labels := make([]byte, n)
	for i := range n {
		for j := range w * h {
			pix[i*w*h+j] = byte(i + j%3)
		}
		labels[i] = byte(i % 10)
	}
	ext := ""
	if gz {
		ext = ".gz"
	}
	must(t, os.WriteFile(filepath.Join(dir, prefix+"-images-idx3-ubyte"+ext), idxBytes(t, []int{n, h, w}, pix, gz), 0o644))
	must(t, os.WriteFile(filepath.Join(dir, prefix+"-labels-idx1-ubyte"+ext), idxBytes(t, []int{n}, labels, gz), 0o644))
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestLoadFashionMNISTFixture(t *testing.T) {
	dir := t.TempDir()
	writeMNIST(t, dir, "train", 25, 6, 5, true)
	writeMNIST(t, dir, "t10k", 7, 6, 5, false) // raw files are accepted too
	for _, tc := range []struct {
		split string
		n     int
	}{{"train", 25}, {"test", 7}} {
		ds, err := LoadFashionMNIST(dir, tc.split)
		if err != nil {
			t.Fatal(err)
		}
		if ds.Len() != tc.n || len(ds.Classes()) != 10 || ds.Classes()[9] != "Ankle boot" {
			t.Fatalf("%s: %d samples, classes %v", tc.split, ds.Len(), ds.Classes())
		}
		m, label, err := ds.Get(3)
		if err != nil || m.Width != 6 || m.Height != 5 || m.Channels != 1 || label != 3 || m.Pix[0] != 3 || m.Pix[1] != 4 {
			t.Fatalf("Get(3) = %+v, %d, %v", m, label, err)
		}
		if _, _, err := ds.Get(tc.n); err == nil {
			t.Fatal("Get out of range accepted")
		}
	}
	if _, err := LoadFashionMNIST(dir, "val"); err == nil || !strings.Contains(err.Error(), `"val"`) {
		t.Fatalf("bad split: %v", err)
	}
}

func TestLoadFashionMNISTErrors(t *testing.T) {
	write := func(t *testing.T, dir, name string, b []byte) {
		must(t, os.WriteFile(filepath.Join(dir, name), b, 0o644))
	}
	tests := []struct {
		name  string
		setup func(t *testing.T, dir string)
		want  string
	}{
		{"missing", func(t *testing.T, dir string) {}, "apt-get install dataset-fashion-mnist"},
		{"missing labels", func(t *testing.T, dir string) {
			write(t, dir, "train-images-idx3-ubyte.gz", idxBytes(t, []int{2, 2, 2}, seq(8), true))
		}, "train-labels-idx1-ubyte.gz nor train-labels-idx1-ubyte"},
		{"count mismatch", func(t *testing.T, dir string) {
			write(t, dir, "train-images-idx3-ubyte.gz", idxBytes(t, []int{3, 2, 2}, seq(12), true))
			write(t, dir, "train-labels-idx1-ubyte.gz", idxBytes(t, []int{2}, []byte{1, 2}, true))
		}, "has 3 images but"},
		{"label range", func(t *testing.T, dir string) {
			write(t, dir, "train-images-idx3-ubyte.gz", idxBytes(t, []int{2, 2, 2}, seq(8), true))
			write(t, dir, "train-labels-idx1-ubyte.gz", idxBytes(t, []int{2}, []byte{1, 10}, true))
		}, "label 10 of sample 1 out of range"},
		{"images not 3-d", func(t *testing.T, dir string) {
			write(t, dir, "train-images-idx3-ubyte.gz", idxBytes(t, []int{2, 4}, seq(8), true))
			write(t, dir, "train-labels-idx1-ubyte.gz", idxBytes(t, []int{2}, []byte{1, 2}, true))
		}, "images need 3 dimensions"},
		{"swapped files", func(t *testing.T, dir string) {
			write(t, dir, "train-labels-idx1-ubyte.gz", idxBytes(t, []int{2, 2, 2}, seq(8), true))
			write(t, dir, "train-images-idx3-ubyte.gz", idxBytes(t, []int{2}, []byte{1, 2}, true))
		}, "images need 3 dimensions"},
		{"truncated images", func(t *testing.T, dir string) {
			b := idxBytes(t, []int{2, 2, 2}, seq(8), false)
			write(t, dir, "train-images-idx3-ubyte", b[:len(b)-2])
			write(t, dir, "train-labels-idx1-ubyte.gz", idxBytes(t, []int{2}, []byte{1, 2}, true))
		}, "train-images-idx3-ubyte: bad IDX file: truncated"},
		{"no images", func(t *testing.T, dir string) {
			write(t, dir, "train-images-idx3-ubyte.gz", idxBytes(t, []int{0, 2, 2}, nil, true))
			write(t, dir, "train-labels-idx1-ubyte.gz", idxBytes(t, []int{0}, nil, true))
		}, "holds no images"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			tc.setup(t, dir)
			_, err := LoadFashionMNIST(dir, "train")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

// TestFashionMNISTReal reads the real files when Debian's package is
// installed.
func TestFashionMNISTReal(t *testing.T) {
	dir := fashionDir(t)
	if testing.Short() {
		t.Skip("reads 30 MB of gzip (slow under -race); skipped with -short")
	}
	for _, tc := range []struct {
		split string
		n     int
	}{{"train", 60000}, {"test", 10000}} {
		ds, err := LoadFashionMNIST(dir, tc.split)
		if err != nil {
			t.Fatal(err)
		}
		if w, h := ds.Size(); ds.Len() != tc.n || w != 28 || h != 28 {
			t.Fatalf("%s: %d images of %dx%d", tc.split, ds.Len(), w, h)
		}
		var counts [10]int
		for i := range ds.Len() {
			_, l, err := ds.Get(i)
			if err != nil {
				t.Fatal(err)
			}
			counts[l]++
		}
		for c, n := range counts {
			if n != tc.n/10 {
				t.Fatalf("%s: class %d has %d samples, want %d", tc.split, c, n, tc.n/10)
			}
		}
		if tc.split == "train" {
			var sum uint64
			for _, v := range ds.pix {
				sum += uint64(v)
			}
			mean := float64(sum) / 255 / float64(60000*784)
			if d := mean - FashionMNISTMean; d > 5e-4 || d < -5e-4 {
				t.Fatalf("train mean %.4f, want %.4f", mean, FashionMNISTMean)
			}
		}
	}
}

func fashionDir(t testing.TB) string {
	t.Helper()
	if _, err := os.Stat(filepath.Join(FashionMNISTDir, "train-images-idx3-ubyte.gz")); err != nil {
		t.Skipf("Fashion-MNIST not installed in %s (apt-get install dataset-fashion-mnist)", FashionMNISTDir)
	}
	return FashionMNISTDir
}
