package main

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"hash/crc32"
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mobileone-go/mobileone/format/npy"
)

const golden = "../../testdata/golden/tiny-k4"

// cli runs the command in-process and returns exit status, stdout, stderr.
func cli(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := run(args, &out, &errb)
	return code, out.String(), errb.String()
}

func writePNG(t *testing.T, path string, w, h int) {
	t.Helper()
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			img.Set(x, y, color.NRGBA{uint8(x * 3), uint8(y * 5), uint8(x ^ y), 255})
		}
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func maxRel(a, b []float32) float64 {
	var d, s float64
	for i := range a {
		d = math.Max(d, math.Abs(float64(a[i])-float64(b[i])))
		s = math.Max(s, math.Abs(float64(b[i])))
	}
	return d / s
}

func TestPredictImages(t *testing.T) {
	dir := t.TempDir()
	img1, img2 := filepath.Join(dir, "a.png"), filepath.Join(dir, "b.png")
	writePNG(t, img1, 90, 70)
	writePNG(t, img2, 40, 120)
	code, out, errs := cli("predict", "-w", golden+"/unfused.pth.tar", "--stem-stride", "2", "--preprocess", "imagenet", "--top", "3", img1, img2)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	if strings.Count(out, "class ") != 6 || !strings.Contains(out, "a.png") || !strings.Contains(out, "b.png") {
		t.Errorf("unexpected output:\n%s", out)
	}
	code, out, errs = cli("predict", img1, "--json", "-w", golden+"/fused.pth.tar", "--stem-stride", "2", "--preprocess", "imagenet")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var res struct {
		File string
		Top  []struct {
			Index int
			Label string
			Prob  float64
		}
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("--json output %q: %v", out, err)
	}
	if res.File != img1 || len(res.Top) != 5 || res.Top[0].Prob < res.Top[1].Prob || res.Top[0].Prob <= 0 {
		t.Errorf("bad JSON result %+v", res)
	}
}

func TestPredictNpyAndFuse(t *testing.T) {
	dir := t.TempDir()
	want, err := npy.ReadFile(golden + "/logits.npy")
	if err != nil {
		t.Fatal(err)
	}
	fused := filepath.Join(dir, "fused.safetensors")
	if code, _, errs := cli("fuse", "-w", golden+"/unfused.pth.tar", "--stem-stride", "2", "--preprocess", "imagenet", "-o", fused); code != 0 {
		t.Fatalf("fuse: exit %d: %s", code, errs)
	}
	for _, ckpt := range []string{golden + "/unfused.pth.tar", golden + "/timm_unfused.safetensors", fused} {
		out := filepath.Join(dir, "logits.npy")
		code, _, errs := cli("predict", "-w", ckpt, "--stem-stride", "2", "--npy", golden+"/input.npy", "--out", out)
		if code != 0 {
			t.Fatalf("%s: exit %d: %s", ckpt, code, errs)
		}
		got, err := npy.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		if e := maxRel(got.Data, want.Data); e > 1e-4 {
			t.Errorf("%s: logits differ from PyTorch by %.3g", ckpt, e)
		}
	}
	// Half-precision, timm-named output loads too.
	half := filepath.Join(dir, "half.safetensors")
	if code, _, errs := cli("fuse", "-w", golden+"/unfused.pth.tar", "--stem-stride", "2", "--preprocess", "imagenet", "-o", half, "--half", "--naming", "timm"); code != 0 {
		t.Fatalf("fuse --half: exit %d: %s", code, errs)
	}
	if code, out, errs := cli("info", "-w", half, "--json"); code != 0 || !strings.Contains(out, `"params"`) {
		t.Fatalf("info on half file: exit %d: %s %s", code, out, errs)
	}
}

func TestInfo(t *testing.T) {
	code, out, errs := cli("info", "-m", "s0", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var info struct {
		Params      int   `json:"params"`
		TrainParams int   `json:"train_params"`
		MACs        int64 `json:"macs"`
		Layers      []struct{ Name string }
	}
	if err := json.Unmarshal([]byte(out), &info); err != nil {
		t.Fatal(err)
	}
	if info.Params != 2078504 || info.TrainParams != 5293272 || math.Abs(float64(info.MACs)/1e6-275.1) > 0.05 || len(info.Layers) != 45 {
		t.Errorf("info -m s0 = %+v", info)
	}
	code, out, _ = cli("info", "-m", "s1", "--size", "256x192")
	if code != 0 || !strings.Contains(out, "stage4.1") || !strings.Contains(out, "8x6") {
		t.Errorf("info --size 256x192: exit %d\n%s", code, out)
	}
}

// writeZip writes a zip archive with the given entries.
func writeZip(t *testing.T, path string, entries map[string][]byte) {
	t.Helper()
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	for name, data := range entries {
		w, err := zw.CreateHeader(&zip.FileHeader{Name: name, Method: zip.Store})
		if err != nil {
			t.Fatal(err)
		}
		w.Write(data)
	}
	zw.Close()
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func writeNpy(t *testing.T, path, descr string, shape string, data []byte) {
	t.Helper()
	header := "{'descr': '" + descr + "', 'fortran_order': False, 'shape': " + shape + ", }"
	for (10+len(header)+1)%64 != 0 {
		header += " "
	}
	header += "\n"
	var b bytes.Buffer
	b.WriteString("\x93NUMPY\x01\x00")
	binary.Write(&b, binary.LittleEndian, uint16(len(header)))
	b.WriteString(header)
	b.Write(data)
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// Bad input: a one-line error naming the problem, exit status 1, no panic,
// and no output file left behind.
func TestBadInput(t *testing.T) {
	dir := t.TempDir()
	p := func(name string) string { return filepath.Join(dir, name) }
	ckpt, err := os.ReadFile(golden + "/unfused.pth.tar")
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(p("truncated.pth.tar"), ckpt[:len(ckpt)/2], 0o644)
	corrupt := append([]byte(nil), ckpt...)
	for i := len(corrupt) / 3; i < len(corrupt)/3+200; i++ {
		corrupt[i] ^= 0x5a
	}
	os.WriteFile(p("corrupt.pth.tar"), corrupt, 0o644)
	os.WriteFile(p("random.pth"), bytes.Repeat([]byte{1, 2, 3, 250}, 1000), 0o644)
	os.WriteFile(p("empty.pth"), nil, 0o644)
	writeZip(t, p("evil.pth"), map[string][]byte{
		"archive/data.pkl": []byte("\x80\x02cposix\nsystem\nq\x00X\x0a\x00\x00\x00touch pwndq\x01\x85q\x02Rq\x03."),
		"archive/version":  []byte("3\n"),
	})
	os.WriteFile(p("notimage.jpg"), []byte("this is not an image at all"), 0o644)
	writePNG(t, p("ok.png"), 64, 64)
	okPNG, _ := os.ReadFile(p("ok.png"))
	os.WriteFile(p("truncated.png"), okPNG[:len(okPNG)/2], 0o644)
	// A PNG header claiming 100000×100000 pixels.
	huge := append([]byte(nil), okPNG[:33]...)
	binary.BigEndian.PutUint32(huge[16:], 100000)
	binary.BigEndian.PutUint32(huge[20:], 100000)
	binary.BigEndian.PutUint32(huge[29:], crc32.ChecksumIEEE(huge[12:29]))
	os.WriteFile(p("huge.png"), huge, 0o644)
	writeNpy(t, p("f64.npy"), "<f8", "(1, 3, 32, 32)", make([]byte, 8*3*32*32))
	writeNpy(t, p("rank3.npy"), "<f4", "(3, 32, 32)", make([]byte, 4*3*32*32))
	writeNpy(t, p("chan4.npy"), "<f4", "(1, 4, 32, 32)", make([]byte, 4*4*32*32))
	writeNpy(t, p("short.npy"), "<f4", "(1, 3, 32, 32)", make([]byte, 100))

	good := golden + "/unfused.pth.tar"
	tests := []struct {
		name string
		args []string
		want string // substring of the error
	}{
		{"truncated checkpoint", []string{"predict", "-w", p("truncated.pth.tar"), p("ok.png")}, "truncated.pth.tar"},
		{"corrupt checkpoint", []string{"predict", "-w", p("corrupt.pth.tar"), p("ok.png")}, "corrupt.pth.tar"},
		{"random bytes", []string{"predict", "-w", p("random.pth"), p("ok.png")}, "not a checkpoint"},
		{"empty checkpoint", []string{"predict", "-w", p("empty.pth"), p("ok.png")}, "empty"},
		{"malicious pickle", []string{"predict", "-w", p("evil.pth"), p("ok.png")}, "posix.system"},
		{"missing checkpoint", []string{"predict", "-w", p("nope.pth"), p("ok.png")}, "no such file"},
		{"wrong variant", []string{"predict", "-w", good, "--stem-stride", "2", "--preprocess", "imagenet", "-m", "s0", p("ok.png")}, "not s0"},
		{"unknown variant", []string{"info", "-m", "s9"}, "unknown variant"},
		{"non-image", []string{"predict", "-w", good, "--stem-stride", "2", "--preprocess", "imagenet", p("notimage.jpg")}, "notimage.jpg"},
		{"truncated image", []string{"predict", "-w", good, "--stem-stride", "2", "--preprocess", "imagenet", p("truncated.png")}, "truncated.png"},
		{"huge image", []string{"predict", "-w", good, "--stem-stride", "2", "--preprocess", "imagenet", p("huge.png")}, "MP"},
		{"npy float64", []string{"predict", "-w", good, "--stem-stride", "2", "--preprocess", "imagenet", "--npy", p("f64.npy"), "--out", p("out1.npy")}, "<f8"},
		{"npy rank 3", []string{"predict", "-w", good, "--stem-stride", "2", "--preprocess", "imagenet", "--npy", p("rank3.npy"), "--out", p("out2.npy")}, "(N, C, H, W)"},
		{"npy channels", []string{"predict", "-w", good, "--stem-stride", "2", "--preprocess", "imagenet", "--npy", p("chan4.npy"), "--out", p("out3.npy")}, "4 channels"},
		{"npy short", []string{"predict", "-w", good, "--stem-stride", "2", "--preprocess", "imagenet", "--npy", p("short.npy"), "--out", p("out4.npy")}, "short.npy"},
		{"fuse bad checkpoint", []string{"fuse", "-w", p("truncated.pth.tar"), "-o", p("out5.safetensors")}, "truncated.pth.tar"},
		{"fuse missing dir", []string{"fuse", "-w", good, "--stem-stride", "2", "--preprocess", "imagenet", "-o", p("nodir/out6.safetensors")}, "nodir"},
		{"bench unknown layout", []string{"bench", "-m", "s0", "--size", "32", "--layout", "nhwc"}, "unknown layout \"nhwc\""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, _, errs := cli(tc.args...)
			if code != 1 {
				t.Errorf("exit status %d, want 1 (stderr %q)", code, errs)
			}
			lines := strings.Split(strings.TrimSpace(errs), "\n")
			last := lines[len(lines)-1]
			if !strings.Contains(errs, tc.want) {
				t.Errorf("stderr %q does not mention %q", errs, tc.want)
			}
			if !strings.HasPrefix(last, "mobileone ") {
				t.Errorf("last stderr line %q is not a mobileone error", last)
			}
			t.Logf("%s", strings.TrimSpace(errs))
		})
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "out") || strings.Contains(e.Name(), ".tmp") {
			t.Errorf("partial output left behind: %s", e.Name())
		}
	}
	if _, err := os.Stat("pwnd"); err == nil {
		t.Fatal("the malicious pickle executed a command")
	}
}

func TestUsage(t *testing.T) {
	if code, _, _ := cli(); code != 2 {
		t.Errorf("no arguments: exit %d, want 2", code)
	}
	if code, _, _ := cli("frobnicate"); code != 2 {
		t.Errorf("unknown command: exit %d, want 2", code)
	}
	if code, _, errs := cli("predict", "-h"); code != 0 || !strings.Contains(errs, "usage: mobileone predict") {
		t.Errorf("predict -h: exit %d, %q", code, errs)
	}
	if code, _, errs := cli("predict", "--bogus"); code != 2 || !strings.Contains(errs, "bogus") {
		t.Errorf("unknown flag: exit %d, %q", code, errs)
	}
	if code, _, errs := cli("predict", "-w", golden+"/fused.pth.tar"); code != 1 || !strings.Contains(errs, "no images") {
		t.Errorf("no images: exit %d, %q", code, errs)
	}
}

// bench prints one JSON object with the figures, the layout it ran and the
// per-layer profile; both layouts run.
func TestBenchJSON(t *testing.T) {
	for _, layout := range []string{"blocked", "nchw"} {
		t.Run(layout, func(t *testing.T) {
			code, out, errs := cli("bench", "-m", "s0", "--size", "64", "--batch", "2", "--threads", "2",
				"--rounds", "2", "--runs", "3", "--trim", "1", "--layout", layout, "--json", "--profile")
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errs)
			}
			var r struct {
				MinMS    float64 `json:"min_ms"`
				MedianMS float64 `json:"median_ms"`
				MeanMS   float64 `json:"mean_ms"`
				Threads  int
				Batch    int
				Layout   string
				Kernels  string
				Layers   []struct{ Name string }
			}
			if err := json.Unmarshal([]byte(out), &r); err != nil {
				t.Fatalf("%v: %s", err, out)
			}
			if r.MinMS <= 0 || r.MedianMS < r.MinMS || r.MeanMS <= 0 || r.Threads != 2 || r.Batch != 2 ||
				r.Layout != layout || r.Kernels == "" || len(r.Layers) < 2 || !strings.HasPrefix(r.Layers[0].Name, "stage0") {
				t.Errorf("bench JSON %+v", r)
			}
		})
	}
}
