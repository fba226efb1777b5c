package pth

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/mobileone-go/mobileone/tensor"
)

// fuzzSeeds are small hand-built inputs, valid and broken, that seed
// FuzzLoad; TestWriteFuzzSeeds commits them to testdata/fuzz/FuzzLoad.
func fuzzSeeds(t testing.TB) map[string][]byte {
	var saved bytes.Buffer
	sd := map[string]*tensor.Tensor{
		"a.weight": mustTensor(t, []float32{1, 2, 3, 4, 5, 6}, 2, 3),
		"a.nbt":    mustTensor(t, []float32{7}),
	}
	if err := Save(&saved, []string{"a.weight", "a.nbt"}, sd); err != nil {
		t.Fatal(err)
	}
	st := f32bytes(12)
	views := tensorPickle(
		pview{"t", "FloatStorage", "0", 12, 0, []int{4, 3}, []int{1, 4}},
		pview{"v", "FloatStorage", "0", 12, 5, []int{2, 2}, []int{4, 1}},
		pview{"h", "HalfStorage", "1", 4, 0, []int{2, 2}, []int{2, 1}},
		pview{"l", "LongStorage", "2", 1, 0, []int{}, []int{}},
	)
	return map[string][]byte{
		"saved":       saved.Bytes(),
		"views":       makeZip(t, zent{"x/data.pkl", views}, zent{"x/data/0", st}, zent{"x/data/1", make([]byte, 8)}, zent{"x/data/2", make([]byte, 8)}, zent{"x/byteorder", []byte("little")}),
		"os_system":   makeZip(t, zent{"archive/data.pkl", []byte("cos\nsystem\n(S'echo pwned'\ntR.")}),
		"stack_glob":  makeZip(t, zent{"a/data.pkl", []byte("\x80\x04\x95\x20\x00\x00\x00\x00\x00\x00\x00\x8c\x0bcollections\x94\x8c\x0bOrderedDict\x94\x93\x94)R\x94.")}),
		"missing":     makeZip(t, zent{"archive/data.pkl", statePickle([]string{"w"}, map[string]*tensor.Tensor{"w": mustTensor(t, []float32{1})})}),
		"short":       makeZip(t, zent{"a/data.pkl", tensorPickle(pview{"w", "FloatStorage", "0", 4, 1, []int{2, 2}, []int{2, 1}})}, zent{"a/data/0", f32bytes(4)}),
		"wrapper":     makeZip(t, zent{"a/data.pkl", []byte("\x80\x02}(X\x05\x00\x00\x00epochK\x03X\n\x00\x00\x00state_dict}u.")}),
		"no_data_pkl": makeZip(t, zent{"a/version", []byte("3\n")}),
		"garbage":     []byte("PK\x05\x06garbage"),
	}
}

// TestWriteFuzzSeeds regenerates the committed seed corpus; run with
// PTH_WRITE_FUZZ_SEEDS=1.
func TestWriteFuzzSeeds(t *testing.T) {
	if os.Getenv("PTH_WRITE_FUZZ_SEEDS") == "" {
		t.Skip("set PTH_WRITE_FUZZ_SEEDS=1 to rewrite testdata/fuzz/FuzzLoad seeds")
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzLoad")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	seeds := fuzzSeeds(t)
	for _, name := range []string{"wrapped.pth", "proto4.pth", "legacy.pth"} {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		seeds["golden_"+strings.TrimSuffix(name, ".pth")] = b
	}
	for name, b := range seeds {
		body := "go test fuzz v1\n[]byte(" + strconv.Quote(string(b)) + ")\n"
		if err := os.WriteFile(filepath.Join(dir, "seed_"+name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// FuzzLoad feeds arbitrary bytes to Load: it must never panic, must only
// return "pth: " errors, and whatever it returns must be well-formed and
// survive a Save/Load round trip.
func FuzzLoad(f *testing.F) {
	for _, b := range fuzzSeeds(f) {
		f.Add(b)
	}
	if names, err := filepath.Glob(filepath.Join("testdata", "*.pth")); err == nil {
		for _, n := range names {
			if b, err := os.ReadFile(n); err == nil {
				f.Add(b)
			}
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		sd, err := Load(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			if !strings.HasPrefix(err.Error(), "pth: ") || strings.Contains(err.Error(), "\n") {
				t.Fatalf("bad error %q", err)
			}
			return
		}
		keys := make([]string, 0, len(sd))
		for k, v := range sd {
			if v == nil || tensor.NumelOf(v.Shape) != len(v.Data) {
				t.Fatalf("tensor %q malformed: %v with %d values", k, v, len(v.Data))
			}
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var buf bytes.Buffer
		if err := Save(&buf, keys, sd); err != nil {
			if strings.Contains(err.Error(), "UTF-8") {
				return // keys from a pickle may be arbitrary bytes
			}
			t.Fatalf("Save of loaded dict: %v", err)
		}
		back, err := Load(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
		if err != nil {
			t.Fatalf("reload: %v", err)
		}
		for k, v := range sd {
			w := back[k]
			if w == nil || !tensor.SameShape(v.Shape, w.Shape) || fmt.Sprint(v.Data) != fmt.Sprint(w.Data) {
				t.Fatalf("round trip changed %q", k)
			}
		}
	})
}

// fuzzStorages is the archive FuzzPickle wraps each pickle in: storages
// data/0 .. data/7 of 48 bytes each (12 float32, 24 float16, 6 int64, ...).
func fuzzArchive(pkl []byte) []byte {
	var buf bytes.Buffer
	ents := []zent{{"f/data.pkl", pkl}}
	for i := 0; i < 8; i++ {
		st := make([]byte, 48)
		for j := range st {
			st[j] = byte(i*48 + j)
		}
		ents = append(ents, zent{"f/data/" + strconv.Itoa(i), st})
	}
	if err := writeZip(&buf, ents...); err != nil {
		panic(err)
	}
	return buf.Bytes()
}

// FuzzPickle fuzzes data.pkl itself (FuzzLoad rarely gets past the zip
// CRCs): the pickle is wrapped in a valid archive with eight 48-byte
// storages, so mutations reach the opcode scan, the unpickler, the rebuild
// functions and the view checks.
func FuzzPickle(f *testing.F) {
	f.Add(statePickle([]string{"a", "b"}, map[string]*tensor.Tensor{
		"a": mustTensor(f, make([]float32, 12), 3, 4),
		"b": mustTensor(f, make([]float32, 12), 12),
	}))
	f.Add(tensorPickle(
		pview{"t", "FloatStorage", "0", 12, 0, []int{4, 3}, []int{1, 4}},
		pview{"v", "FloatStorage", "0", 12, 5, []int{2, 2}, []int{4, 1}},
		pview{"h", "HalfStorage", "1", 24, 3, []int{2, 2, 5}, []int{10, 5, 1}},
		pview{"l", "LongStorage", "2", 6, 5, []int{}, []int{}},
		pview{"b", "BoolStorage", "3", 48, 0, []int{48, 1}, []int{1, 0}},
	))
	f.Add([]byte("\x80\x04\x95\x22\x00\x00\x00\x00\x00\x00\x00\x8c\x0bcollections\x94\x8c\x0bOrderedDict\x94\x93\x94)R\x94."))
	f.Add([]byte("\x80\x02}(X\x05\x00\x00\x00epochK\x03X\n\x00\x00\x00state_dict}u."))
	f.Add([]byte("cos\nsystem\n(S'echo pwned'\ntR."))
	f.Fuzz(func(t *testing.T, pkl []byte) {
		data := fuzzArchive(pkl)
		sd, err := Load(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			if !strings.HasPrefix(err.Error(), "pth: ") || strings.Contains(err.Error(), "\n") {
				t.Fatalf("bad error %q", err)
			}
			return
		}
		for k, v := range sd {
			if v == nil || tensor.NumelOf(v.Shape) != len(v.Data) {
				t.Fatalf("tensor %q malformed", k)
			}
		}
	})
}
