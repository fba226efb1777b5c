package pth

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/mobileone-go/mobileone/tensor"
)

type goldenFile struct {
	Keys    []string `json:"keys"`
	Tensors map[string]struct {
		Shape []int     `json:"shape"`
		Data  []float64 `json:"data"`
	} `json:"tensors"`
}

// TestGolden loads checkpoints written by real torch (1.13) with
// tools/pthfixtures/make_pth_fixtures.py and compares with their JSON.
func TestGolden(t *testing.T) {
	for _, name := range []string{"plain", "wrapped", "proto4"} {
		t.Run(name, func(t *testing.T) {
			raw, err := os.ReadFile(filepath.Join("testdata", name+".json"))
			if err != nil {
				t.Fatal(err)
			}
			var want goldenFile
			if err := json.Unmarshal(raw, &want); err != nil {
				t.Fatal(err)
			}
			got, err := LoadFile(filepath.Join("testdata", name+".pth"))
			if err != nil {
				t.Fatalf("LoadFile: %v", err)
			}
			if len(got) != len(want.Keys) {
				t.Errorf("got %d tensors, want %d", len(got), len(want.Keys))
			}
			for _, k := range want.Keys {
				w := want.Tensors[k]
				g, ok := got[k]
				if !ok {
					t.Errorf("missing key %q", k)
					continue
				}
				if !tensor.SameShape(g.Shape, w.Shape) {
					t.Errorf("%s: shape %v, want %v", k, g.Shape, w.Shape)
					continue
				}
				if len(g.Data) != len(w.Data) {
					t.Errorf("%s: %d values, want %d", k, len(g.Data), len(w.Data))
					continue
				}
				for i := range w.Data {
					if g.Data[i] != float32(w.Data[i]) {
						t.Errorf("%s[%d] = %v, want %v", k, i, g.Data[i], float32(w.Data[i]))
						break
					}
				}
			}
		})
	}
}

// TestGoldenDetails pins a few facts the JSON comparison implies.
func TestGoldenDetails(t *testing.T) {
	sd, err := LoadFile("testdata/plain.pth")
	if err != nil {
		t.Fatal(err)
	}
	nbt := sd["1.num_batches_tracked"]
	if len(nbt.Shape) != 0 || len(nbt.Data) != 1 || nbt.Data[0] != 7 {
		t.Errorf("num_batches_tracked = %v %v, want shape () value 7", nbt.Shape, nbt.Data)
	}
	if v := sd["shared.view"]; !reflect.DeepEqual(v.Data, []float32{1.25, 1.5, 2.25, 2.5}) {
		t.Errorf("shared.view = %v", v.Data)
	}
	if v := sd["transposed"]; !reflect.DeepEqual(v.Data, []float32{0, 3, 1, 4, 2, 5}) {
		t.Errorf("transposed = %v", v.Data)
	}
	// Storages are copied per tensor, never shared between results.
	sd["shared.base"].Data[5] = 99
	if sd["shared.view"].Data[0] == 99 {
		t.Error("shared.view aliases shared.base")
	}
}

func TestHalfToFloat32(t *testing.T) {
	for _, c := range []struct {
		h    uint16
		want float32
	}{
		{0x0000, 0}, {0x3c00, 1}, {0xc000, -2}, {0x7bff, 65504}, {0x0001, 5.9604645e-08},
		{0x03ff, 6.097555e-05}, {0x0400, 6.1035156e-05}, {0x7c00, float32(math.Inf(1))}, {0xfc00, float32(math.Inf(-1))},
	} {
		if got := halfToFloat32(c.h); got != c.want {
			t.Errorf("halfToFloat32(%#04x) = %v, want %v", c.h, got, c.want)
		}
	}
	if got := halfToFloat32(0x7e00); !math.IsNaN(float64(got)) {
		t.Errorf("halfToFloat32(NaN) = %v", got)
	}
	if got := halfToFloat32(0x8000); got != 0 || !math.Signbit(float64(got)) {
		t.Errorf("halfToFloat32(-0) = %v", got)
	}
}

func mustTensor(t testing.TB, data []float32, shape ...int) *tensor.Tensor {
	tt, err := tensor.FromData(data, shape...)
	if err != nil {
		t.Fatal(err)
	}
	return tt
}

func roundTripCases(t testing.TB) []struct {
	name string
	keys []string
	sd   map[string]*tensor.Tensor
} {
	big := make([]float32, 3*70*5)
	for i := range big {
		big[i] = float32(i)*0.5 - 100
	}
	return []struct {
		name string
		keys []string
		sd   map[string]*tensor.Tensor
	}{
		{"empty", nil, map[string]*tensor.Tensor{}},
		{"scalar", []string{"s"}, map[string]*tensor.Tensor{"s": mustTensor(t, []float32{3.5})}},
		{"mixed", []string{"z.weight", "a.bias", "module.conv.weight", "nbt", "empty", "ünï"},
			map[string]*tensor.Tensor{
				"z.weight":           mustTensor(t, []float32{1, -2, 3.25, float32(math.Inf(1)), -0, 1e-40}, 2, 3),
				"a.bias":             mustTensor(t, []float32{0.5}, 1),
				"module.conv.weight": mustTensor(t, big, 3, 70, 1, 5),
				"nbt":                mustTensor(t, []float32{12345}),
				"empty":              mustTensor(t, nil, 0, 4),
				"ünï":                mustTensor(t, []float32{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32}, 2, 2, 2, 2, 2),
			}},
		{"big dims", []string{"w"}, map[string]*tensor.Tensor{"w": mustTensor(t, make([]float32, 70000), 70000, 1)}},
	}
}

func TestSaveLoadRoundTrip(t *testing.T) {
	for _, c := range roundTripCases(t) {
		t.Run(c.name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := Save(&buf, c.keys, c.sd); err != nil {
				t.Fatal(err)
			}
			got, err := Load(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(c.sd) {
				t.Fatalf("got %d tensors, want %d", len(got), len(c.sd))
			}
			for k, w := range c.sd {
				g := got[k]
				if g == nil || !tensor.SameShape(g.Shape, w.Shape) || len(g.Data) != len(w.Data) {
					t.Fatalf("%q: got %v, want %v", k, g, w)
				}
				for i := range w.Data {
					if math.Float32bits(g.Data[i]) != math.Float32bits(w.Data[i]) {
						t.Fatalf("%q[%d] = %v, want %v", k, i, g.Data[i], w.Data[i])
					}
				}
			}
			// Data entries are 64-byte aligned, like torch writes them.
			zr, err := zip.NewReader(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range zr.File {
				off, err := f.DataOffset()
				if err != nil || off%64 != 0 {
					t.Errorf("%s: data offset %d (%v), want multiple of 64", f.Name, off, err)
				}
				if f.Method != zip.Store {
					t.Errorf("%s: method %d, want stored", f.Name, f.Method)
				}
			}
		})
	}
}

func TestMetadataRoundTrip(t *testing.T) {
	c := roundTripCases(t)[0]
	for _, meta := range []map[string]string{
		nil,
		{"config": `{"channels":[8,8]}`, "preprocess": "{}", "labels": `["T-shirt/top","Trouser"]`},
	} {
		var buf bytes.Buffer
		if err := SaveWithMetadata(&buf, c.keys, c.sd, meta); err != nil {
			t.Fatal(err)
		}
		sd, got, err := LoadWithMetadata(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
		if err != nil {
			t.Fatal(err)
		}
		if len(sd) != len(c.sd) {
			t.Fatalf("%d tensors, want %d", len(sd), len(c.sd))
		}
		if len(got) != len(meta) {
			t.Fatalf("metadata %v, want %v", got, meta)
		}
		for k, v := range meta {
			if got[k] != v {
				t.Errorf("metadata %q = %q, want %q", k, got[k], v)
			}
		}
	}
}

func TestBadMetadata(t *testing.T) {
	c := roundTripCases(t)[0]
	var buf bytes.Buffer
	if err := Save(&buf, c.keys, c.sd); err != nil {
		t.Fatal(err)
	}
	// Rebuild the archive with a metadata entry that is not an object of strings.
	zr, err := zip.NewReader(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{`[1, 2]`, `{"config": 3}`, `{"config": "x"`} {
		var ents []zent
		for _, f := range zr.File {
			rc, err := f.Open()
			if err != nil {
				t.Fatal(err)
			}
			b, err := io.ReadAll(rc)
			rc.Close()
			if err != nil {
				t.Fatal(err)
			}
			ents = append(ents, zent{f.Name, b})
		}
		ents = append(ents, zent{"archive/" + MetadataEntry, []byte(bad)})
		data := makeZip(t, ents...)
		_, _, err := LoadWithMetadata(bytes.NewReader(data), int64(len(data)))
		if err == nil || !strings.Contains(err.Error(), MetadataEntry) {
			t.Errorf("metadata %s: error %v, want one naming %s", bad, err, MetadataEntry)
		}
	}
	if err := SaveWithMetadata(io.Discard, c.keys, c.sd, map[string]string{"x": string([]byte{0xff})}); err == nil {
		t.Error("invalid UTF-8 metadata saved without error")
	}
}

func TestSaveErrors(t *testing.T) {
	one := mustTensor(t, []float32{1})
	for _, c := range []struct {
		name string
		keys []string
		sd   map[string]*tensor.Tensor
		want string
	}{
		{"missing key", []string{"a", "b"}, map[string]*tensor.Tensor{"a": one, "c": one}, `no tensor for key "b"`},
		{"extra tensor", []string{"a"}, map[string]*tensor.Tensor{"a": one, "c": one}, "1 keys for 2 tensors"},
		{"dup key", []string{"a", "a"}, map[string]*tensor.Tensor{"a": one, "c": one}, `key "a" twice`},
		{"nil tensor", []string{"a"}, map[string]*tensor.Tensor{"a": nil}, `no tensor for key "a"`},
		{"bad shape", []string{"a"}, map[string]*tensor.Tensor{"a": {Shape: []int{2, 2}, Data: []float32{1}}}, "shape (2, 2) needs 4 values"},
		{"bad utf8", []string{"a\xff"}, map[string]*tensor.Tensor{"a\xff": one}, "UTF-8"},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := Save(&bytes.Buffer{}, c.keys, c.sd)
			if err == nil || !strings.HasPrefix(err.Error(), "pth: ") || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Save error = %v, want one containing %q", err, c.want)
			}
		})
	}
}

const torchPython = "/usr/bin/python3"

// TestTorchLoadsSave checks that real torch.load reads what Save writes.
func TestTorchLoadsSave(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping torch.load check in -short mode (importing torch is slow)")
	}
	if err := exec.Command(torchPython, "-c", "import torch").Run(); err != nil {
		t.Skipf("torch not importable by %s (%v); install PyTorch there (Debian: apt install python3-torch) to run this test", torchPython, err)
	}
	dir := t.TempDir()
	cases := roundTripCases(t)
	var paths []string
	for i, c := range cases {
		path := filepath.Join(dir, strconv.Itoa(i)+".pth")
		f, err := os.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		// Every other file carries metadata: torch.load must not mind it.
		var meta map[string]string
		if i%2 == 1 {
			meta = map[string]string{"config": `{"a": [1, 2]}`, "labels": "é"}
		}
		if err := SaveWithMetadata(f, c.keys, c.sd, meta); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, path)
	}
	// One interpreter for all files: importing torch takes seconds.
	const script = `
import collections, json, sys, torch
res = []
for path in sys.argv[1:]:
    try:
        sd = torch.load(path, weights_only=True)
    except TypeError:  # torch without weights_only
        sd = torch.load(path)
    assert type(sd) is collections.OrderedDict, type(sd)
    out = []
    for k, v in sd.items():
        assert v.dtype == torch.float32 and v.is_contiguous(), (k, v.dtype)
        out.append([k, list(v.shape), [repr(float(x)) for x in v.reshape(-1).tolist()]])
    res.append(out)
json.dump(res, sys.stdout)
`
	cmd := exec.Command(torchPython, append([]string{"-c", script}, paths...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdout, err := cmd.Output()
	if err != nil {
		t.Fatalf("torch.load failed: %v\n%s", err, stderr.String())
	}
	var all [][][]json.RawMessage
	if err := json.Unmarshal(stdout, &all); err != nil || len(all) != len(cases) {
		t.Fatalf("bad output %q: %v", stdout, err)
	}
	for ci, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := all[ci]
			if len(got) != len(c.keys) {
				t.Fatalf("torch saw %d tensors, want %d", len(got), len(c.keys))
			}
			for i, row := range got {
				var key string
				var shape []int
				var vals []string
				if len(row) != 3 || json.Unmarshal(row[0], &key) != nil || json.Unmarshal(row[1], &shape) != nil || json.Unmarshal(row[2], &vals) != nil {
					t.Fatalf("bad row %s", row)
				}
				if key != c.keys[i] {
					t.Errorf("key %d = %q, want %q (order must be kept)", i, key, c.keys[i])
				}
				w := c.sd[c.keys[i]]
				if !tensor.SameShape(shape, w.Shape) || len(vals) != len(w.Data) {
					t.Fatalf("%q: torch shape %v (%d values), want %v", key, shape, len(vals), w.Shape)
				}
				for j, s := range vals {
					v, err := strconv.ParseFloat(s, 64)
					if err != nil {
						if s == "inf" {
							v = math.Inf(1)
						} else {
							t.Fatalf("%q[%d]: %q", key, j, s)
						}
					}
					if float32(v) != w.Data[j] {
						t.Fatalf("%q[%d] = %v in torch, want %v", key, j, v, w.Data[j])
					}
				}
			}
		})
	}
}

// --- helpers to build hostile archives ---------------------------------

type zent struct {
	name string
	data []byte
}

func makeZip(t testing.TB, ents ...zent) []byte {
	var buf bytes.Buffer
	if err := writeZip(&buf, ents...); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func writeZip(w io.Writer, ents ...zent) error {
	zw := zip.NewWriter(w)
	for _, e := range ents {
		fw, err := zw.CreateHeader(&zip.FileHeader{Name: e.name, Method: zip.Store})
		if err != nil {
			return err
		}
		if _, err := fw.Write(e.data); err != nil {
			return err
		}
	}
	return zw.Close()
}

// view describes one tensor for tensorPickle.
type pview struct {
	key     string
	storage string // storage class, e.g. "FloatStorage"
	skey    string
	numel   int
	offset  int
	shape   []int
	stride  []int
}

// tensorPickle hand-assembles a protocol-2 state_dict pickle.
func tensorPickle(vs ...pview) []byte {
	p := &pickleWriter{memo: map[string]byte{}}
	p.Write([]byte{0x80, 2})
	p.global("collections", "OrderedDict")
	p.WriteString(")R(")
	for _, v := range vs {
		p.str(v.key)
		p.global("torch._utils", "_rebuild_tensor_v2")
		p.WriteString("((")
		p.str("storage")
		p.WriteString("ctorch\n" + v.storage + "\n")
		p.str(v.skey)
		p.str("cpu")
		p.int(v.numel)
		p.WriteString("tQ")
		p.int(v.offset)
		p.tuple(v.shape)
		p.tuple(v.stride)
		p.WriteByte(0x89)
		p.global("collections", "OrderedDict")
		p.WriteString(")RtR")
	}
	p.WriteString("u.")
	return p.Bytes()
}

func f32bytes(n int) []byte { return make([]byte, 4*n) }

func TestHandBuiltViews(t *testing.T) {
	// One 12-element storage viewed several ways.
	st := make([]byte, 48)
	for i := 0; i < 12; i++ {
		binary.LittleEndian.PutUint32(st[4*i:], math.Float32bits(float32(i)))
	}
	pkl := tensorPickle(
		pview{"full", "FloatStorage", "0", 12, 0, []int{3, 4}, []int{4, 1}},
		pview{"t", "FloatStorage", "0", 12, 0, []int{4, 3}, []int{1, 4}},
		pview{"bcast", "FloatStorage", "0", 12, 2, []int{2, 3}, []int{0, 1}},
		pview{"step", "FloatStorage", "0", 12, 0, []int{2, 2, 2}, []int{6, 3, 2}},
		pview{"last", "FloatStorage", "0", 12, 11, []int{}, []int{}},
		pview{"zero", "FloatStorage", "0", 12, 0, []int{0, 5}, []int{5, 1}},
	)
	data := makeZip(t, zent{"x/data.pkl", pkl}, zent{"x/data/0", st}, zent{"x/version", []byte("3\n")})
	got, err := Load(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]float32{
		"full":  {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11},
		"t":     {0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11},
		"bcast": {2, 3, 4, 2, 3, 4},
		"last":  {11},
		"zero":  {},
	}
	for _, base := range []int{0, 6} {
		for _, j := range []int{0, 3} {
			for _, k := range []int{0, 2} {
				want["step"] = append(want["step"], float32(base+j+k))
			}
		}
	}
	for k, w := range want {
		if g := got[k]; g == nil || !reflect.DeepEqual(g.Data, w) && !(len(w) == 0 && len(g.Data) == 0) {
			t.Errorf("%s = %v, want %v", k, g, w)
		}
	}
}

func errContains(t *testing.T, data []byte, want string) {
	t.Helper()
	sd, err := Load(bytes.NewReader(data), int64(len(data)))
	if err == nil {
		t.Fatalf("Load succeeded (%d tensors), want error containing %q", len(sd), want)
	}
	if !strings.HasPrefix(err.Error(), "pth: ") || strings.Contains(err.Error(), "\n") {
		t.Errorf("error %q must be one line starting with \"pth: \"", err)
	}
	if !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not contain %q", err, want)
	}
}

func TestBadInput(t *testing.T) {
	legacy, err := os.ReadFile("testdata/legacy.pth")
	if err != nil {
		t.Fatal(err)
	}
	var good bytes.Buffer
	if err := Save(&good, []string{"w"}, map[string]*tensor.Tensor{"w": mustTensor(t, []float32{1, 2, 3, 4}, 2, 2)}); err != nil {
		t.Fatal(err)
	}
	goodPkl := statePickle([]string{"w"}, map[string]*tensor.Tensor{"w": mustTensor(t, []float32{1, 2, 3, 4}, 2, 2)})
	f32 := func(key string, numel, offset int, shape, stride []int) []byte {
		return tensorPickle(pview{key, "FloatStorage", "0", numel, offset, shape, stride})
	}
	withPkl := func(pkl []byte, storage []byte) []byte {
		return makeZip(t, zent{"archive/data.pkl", pkl}, zent{"archive/data/0", storage}, zent{"archive/version", []byte("3\n")})
	}
	stateDictWith := func(extra string) []byte {
		// {"w": tensor, <extra>} as a plain dict
		p := &pickleWriter{memo: map[string]byte{}}
		p.WriteString("\x80\x02}(")
		p.str("w")
		p.global("torch._utils", "_rebuild_tensor_v2")
		p.WriteString("((")
		p.str("storage")
		p.WriteString("ctorch\nFloatStorage\n")
		p.str("0")
		p.str("cpu")
		p.WriteString("K\x01tQK\x00))\x89")
		p.global("collections", "OrderedDict")
		p.WriteString(")RtR")
		p.WriteString(extra)
		p.WriteString("u.")
		return p.Bytes()
	}
	for _, c := range []struct {
		name string
		data []byte
		want string
	}{
		{"empty file", nil, "not a zip archive"},
		{"random bytes", bytes.Repeat([]byte("\x13\x37garbage"), 100), "not a zip archive"},
		{"truncated zip", good.Bytes()[:good.Len()-30], "not a zip archive"},
		{"legacy", legacy, "legacy torch.save format"},
		{"legacy message", legacy, "re-save"},
		{"bare pickle", []byte("\x80\x02}q\x00."), "bare pickle"},
		{"no data.pkl", makeZip(t, zent{"archive/version", []byte("3\n")}), "no data.pkl"},
		{"os.system", makeZip(t, zent{"archive/data.pkl", []byte("cos\nsystem\n(S'echo pwned'\ntR.")}), `"os.system"`},
		{"builtins.eval", makeZip(t, zent{"a/data.pkl", []byte("\x80\x02cbuiltins\neval\nX\x01\x00\x00\x001\x85R.")}), `disallowed global "builtins.eval"`},
		{"getattr", makeZip(t, zent{"a/data.pkl", []byte("c__builtin__\ngetattr\n.")}), `"__builtin__.getattr"`},
		{"stack global", makeZip(t, zent{"a/data.pkl", []byte("\x80\x04\x8c\x08builtins\x94\x8c\x04exec\x94\x93.")}), `"builtins.exec"`},
		{"stack global memo", makeZip(t, zent{"a/data.pkl", []byte("\x80\x04\x8c\x02os\x94\x8c\x06system\x94h\x00h\x01\x93.")}), `"os.system"`},
		{"stack global unverifiable", makeZip(t, zent{"a/data.pkl", []byte("\x80\x04\x8c\x02os\x94\x8c\x06system\x94K\x01\x30\x93.")}), "cannot be verified"},
		{"inst", makeZip(t, zent{"a/data.pkl", []byte("(S'ls'\nios\nsystem\n.")}), `"os.system"`},
		{"gopickle builtin list", makeZip(t, zent{"a/data.pkl", []byte("\x80\x02cbuiltins\nlist\n)R.")}), `"builtins.list"`},
		{"gopickle reconstructor", makeZip(t, zent{"a/data.pkl", []byte("\x80\x02ccopy_reg\n_reconstructor\n.")}), `"copy_reg._reconstructor"`},
		{"torchscript class", makeZip(t, zent{"a/data.pkl", []byte("\x80\x02c__torch__\nNet\n.")}), `"__torch__.Net"`},
		{"torchscript archive", makeZip(t, zent{"a/data.pkl", goodPkl}, zent{"a/constants.pkl", []byte(".")}), "TorchScript"},
		{"unsupported dtype", withPkl(tensorPickle(pview{"w", "ComplexFloatStorage", "0", 1, 0, []int{1}, []int{1}}), f32bytes(2)), "unsupported dtype"},
		{"missing storage", makeZip(t, zent{"archive/data.pkl", goodPkl}), `missing storage entry "data/0"`},
		{"storage too short", withPkl(f32("w", 4, 0, []int{3, 2}, []int{2, 1}), f32bytes(4)), `storage too short for tensor "w" shape (3, 2)`},
		{"offset past end", withPkl(f32("w", 4, 4, []int{1}, []int{1}), f32bytes(4)), `storage too short for tensor "w"`},
		{"stride past end", withPkl(f32("w", 4, 0, []int{2}, []int{4}), f32bytes(4)), `storage too short for tensor "w"`},
		{"entry size mismatch", withPkl(f32("w", 4, 0, []int{4}, []int{1}), f32bytes(3)), "holds 12 bytes, but data.pkl says 16"},
		{"huge numel", withPkl(f32("w", 1<<40, 0, []int{1}, []int{1}), f32bytes(1)), "limit"},
		{"huge shape", withPkl(f32("w", 1, 0, []int{1 << 20, 1 << 20}, []int{0, 0}), f32bytes(1)), "more than"},
		{"stride-0 bomb", withPkl(f32("w", 1, 0, []int{1 << 29}, []int{0}), f32bytes(1)), "refusing"},
		{"stride overflow", withPkl(f32("w", 4, 0, []int{3}, []int{math.MaxInt64 / 2}), f32bytes(4)), "storage too short"},
		{"dims mismatch", withPkl(f32("w", 4, 0, []int{2, 2}, []int{1}), f32bytes(4)), "differ in length"},
		{"non-tensor value", withPkl(stateDictWith("X\x05\x00\x00\x00epochK\x03"), f32bytes(1)), `entry "epoch" is int, not a tensor`},
		{"non-string key", withPkl(stateDictWith("K\x05K\x03"), f32bytes(1)), "key of type int"},
		{"not a dict", withPkl([]byte("\x80\x02K\x01."), nil), "holds int, not a state_dict"},
		{"big endian", makeZip(t, zent{"archive/data.pkl", goodPkl}, zent{"archive/byteorder", []byte("big")}), "big-endian"},
		{"no stop", withPkl([]byte("\x80\x02}"), nil), "no STOP"},
		{"long string", withPkl([]byte("\x80\x02X\xff\xff\xff\x7f"), nil), "truncated"},
		{"frame bomb", withPkl([]byte("\x80\x04\x95\xff\xff\xff\xff\xff\xff\xff\x7f."), nil), "frame"},
		{"unknown opcode", withPkl([]byte("\x80\x02\xff."), nil), "unknown opcode"},
		{"setitems odd", withPkl([]byte("\x80\x02}(K\x01u."), nil), "pth: "},
		{"empty long1", withPkl([]byte("\x80\x02\x8a\x00."), nil), "LONG1"},
		{"mark bomb", withPkl(bytes.Repeat([]byte("("), 5000), nil), "marks"},
		{"persid not tuple", withPkl([]byte("\x80\x02K\x01Q."), nil), "persistent id"},
		{"unhashable key", withPkl([]byte("\x80\x02ccollections\nOrderedDict\n)R(C\x01a]u."), nil), "pth: "},
	} {
		t.Run(c.name, func(t *testing.T) { errContains(t, c.data, c.want) })
		if testing.Verbose() {
			_, err := Load(bytes.NewReader(c.data), int64(len(c.data)))
			t.Logf("%-26s %v", c.name, err)
		}
	}
}

// TestTruncated cuts real checkpoints at every byte; none may panic or load.
func TestTruncated(t *testing.T) {
	for _, name := range []string{"plain.pth", "wrapped.pth", "proto4.pth"} {
		data, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		for cut := 0; cut < len(data); cut++ {
			if _, err := Load(bytes.NewReader(data[:cut]), int64(cut)); err == nil {
				t.Errorf("%s cut at %d: loaded without error", name, cut)
			} else if !strings.HasPrefix(err.Error(), "pth: ") {
				t.Errorf("%s cut at %d: error %q lacks prefix", name, cut, err)
			}
		}
	}
}

// TestCorrupted flips bytes of real checkpoints; any outcome but a panic is fine.
func TestCorrupted(t *testing.T) {
	data, err := os.ReadFile("testdata/plain.pth")
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, len(data))
	for i := 0; i < len(data); i++ {
		for _, x := range []byte{0xff} {
			copy(b, data)
			b[i] ^= x
			if _, err := Load(bytes.NewReader(b), int64(len(b))); err != nil && !strings.HasPrefix(err.Error(), "pth: ") {
				t.Fatalf("flip %d^%#x: error %q lacks prefix", i, x, err)
			}
		}
	}
}
