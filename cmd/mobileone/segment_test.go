package main

import (
	"bufio"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mobileone-go/mobileone/arch"
	"github.com/mobileone-go/mobileone/dense"
	"github.com/mobileone-go/mobileone/format/pth"
	"github.com/mobileone-go/mobileone/format/safetensors"
	"github.com/mobileone-go/mobileone/imageproc"
	"github.com/mobileone-go/mobileone/model"
	"github.com/mobileone-go/mobileone/tensor"
)

var segTinyConfig = model.Config{Name: "tiny", Channels: [5]int{8, 8, 16, 16, 32}, Blocks: [4]int{1, 1, 1, 1}, K: 1, InChannels: 3, StemStride: 2}

// writeSegCheckpoint writes a random DeepLabV3 on a tiny MobileOne with
// `classes` classes (the graph's own state dict) and returns its path;
// edit changes the state dict before it is written.
func writeSegCheckpoint(t *testing.T, dir string, classes int, meta map[string]string, edit func(map[string]*tensor.Tensor)) string {
	t.Helper()
	g, err := arch.DeepLabV3MobileOne(segTinyConfig, classes, 16, nil, 64, 64)
	if err != nil {
		t.Fatal(err)
	}
	g.InitRandom(3)
	keys, sd := g.StateDict()
	if edit != nil {
		edit(sd)
		keys = keys[:0]
		for k := range sd {
			keys = append(keys, k)
		}
	}
	path := filepath.Join(dir, "seg.safetensors")
	if err := safetensors.WriteFile(path, keys, sd, meta, "F32"); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestSegmentImages: masks and overlays of the input images' sizes, the
// JSON shares summing to 1, names from the metadata, the mask file the
// class map the shares count.
func TestSegmentImages(t *testing.T) {
	dir := t.TempDir()
	ck := writeSegCheckpoint(t, dir, 4, map[string]string{"labels": `["bg","cat","dog","car"]`, "output_stride": "16"}, nil)
	a, b := filepath.Join(dir, "a.png"), filepath.Join(dir, "b.png")
	writePNG(t, a, 90, 70)
	writePNG(t, b, 40, 120)
	out := filepath.Join(dir, "out")
	code, stdout, stderr := cli("segment", "-w", ck, a, b, "-o", out, "--json", "--size", "64")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	sc := bufio.NewScanner(strings.NewReader(stdout))
	n := 0
	for sc.Scan() {
		var r segResult
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("%q: %v", sc.Text(), err)
		}
		n++
		want := map[string][2]int{a: {90, 70}, b: {40, 120}}[r.File]
		if r.Width != want[0] || r.Height != want[1] {
			t.Errorf("%s: %dx%d, want %v", r.File, r.Width, r.Height, want)
		}
		m, err := dense.ReadMaskFile(r.Mask)
		if err != nil {
			t.Fatal(err)
		}
		if m.Width != want[0] || m.Height != want[1] {
			t.Errorf("%s: mask %dx%d, want %v", r.Mask, m.Width, m.Height, want)
		}
		img, err := imageproc.DecodeFile(r.Overlay, 0)
		if err != nil {
			t.Fatal(err)
		}
		if bd := img.Bounds(); bd.Dx() <= want[0] || bd.Dy() < want[1] {
			t.Errorf("%s: overlay %v, want wider than %d and at least %d high", r.Overlay, bd, want[0], want[1])
		}
		var sum float64
		pixels := 0
		for _, s := range r.Shares {
			sum += s.Share
			pixels += s.Pixels
			if s.Class >= 4 || s.Name != []string{"bg", "cat", "dog", "car"}[s.Class] {
				t.Errorf("share %+v", s)
			}
		}
		if math.Abs(sum-1) > 1e-9 || pixels != want[0]*want[1] {
			t.Errorf("%s: shares sum to %g over %d pixels", r.File, sum, pixels)
		}
		got := dense.Shares(m, nil)
		if len(got) != len(r.Shares) || got[0].Pixels != r.Shares[0].Pixels {
			t.Errorf("%s: the mask file's classes %+v, the JSON's %+v", r.Mask, got, r.Shares)
		}
	}
	if n != 2 {
		t.Fatalf("%d JSON lines, want 2:\n%s", n, stdout)
	}
	// --fit stretch, --labels, text output
	labels := filepath.Join(dir, "labels.txt")
	os.WriteFile(labels, []byte("w\nx\ny\nz\n"), 0o644)
	code, stdout, stderr = cli("segment", "-w", ck, a, "-o", out, "--size", "64", "--fit", "stretch", "--labels", labels)
	if code != 0 || !strings.Contains(stdout, "a_mask.png") || !strings.Contains(stdout, "%") {
		t.Errorf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
}

// TestSegmentErrors: bad input gives a clear error naming the problem, and
// writes nothing for the image that failed.
func TestSegmentErrors(t *testing.T) {
	dir := t.TempDir()
	ck := writeSegCheckpoint(t, dir, 3, nil, nil)
	img := filepath.Join(dir, "ok.png")
	writePNG(t, img, 30, 20)
	notImage := filepath.Join(dir, "notes.png")
	os.WriteFile(notImage, []byte("hello, not a PNG"), 0o644)
	labels := filepath.Join(dir, "labels.txt")
	os.WriteFile(labels, []byte("a\nb\n"), 0o644)
	wrongKey := writeSegCheckpoint(t, t.TempDir(), 3, nil, func(sd map[string]*tensor.Tensor) {
		sd["classifier.0.project.0.weight_typo"] = sd["classifier.0.project.0.weight"]
		delete(sd, "classifier.0.project.0.weight")
	})
	classifier := writeSegCheckpoint(t, t.TempDir(), 3, nil, func(sd map[string]*tensor.Tensor) {
		for k, v := range sd {
			if b, ok := strings.CutPrefix(k, "backbone."); ok {
				sd[b] = v
				delete(sd, k)
			}
		}
	})
	out := filepath.Join(dir, "out")
	for _, tc := range []struct {
		name string
		args []string
		want []string
	}{
		{"no -w", []string{img}, []string{"-w is required"}},
		{"no images", []string{"-w", ck}, []string{"no images"}},
		{"not an image", []string{"-w", ck, notImage, "-o", out, "--size", "64"}, []string{"notes.png", "1 of 1 images failed"}},
		{"missing image", []string{"-w", ck, filepath.Join(dir, "absent.png"), "-o", out, "--size", "64"}, []string{"absent.png"}},
		{"wrong keys", []string{"-w", wrongKey, img, "--size", "64"}, []string{"classifier.0.project.0.weight"}},
		{"not segmentation", []string{"-w", classifier, img, "--size", "64"}, []string{"not a DeepLabV3-MobileOne checkpoint", "backbone.stage0.reparam_conv.weight"}},
		{"not a checkpoint", []string{"-w", notImage, img}, []string{"notes.png", "not a torch.save or safetensors file"}},
		{"variant", []string{"-w", ck, img, "-m", "s1", "--size", "64"}, []string{"-m s1", "custom"}},
		{"classes", []string{"-w", ck, img, "--classes", "21", "--size", "64"}, []string{"--classes 21", "has 3"}},
		{"labels", []string{"-w", ck, img, "--labels", labels, "--size", "64"}, []string{"labels.txt", "2 class names for 3 classes"}},
		{"output stride", []string{"-w", ck, img, "--output-stride", "4", "--size", "64"}, []string{"output stride 4"}},
		{"rates", []string{"-w", ck, img, "--rates", "6,x"}, []string{"--rates"}},
		{"fit", []string{"-w", ck, img, "--fit", "crop"}, []string{"--fit"}},
		{"same stems", []string{"-w", ck, img, filepath.Join(dir, "sub", "ok.jpg")}, []string{"ok_mask.png", "-o"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := cli(append([]string{"segment"}, tc.args...)...)
			if code == 0 {
				t.Fatal("succeeded")
			}
			for _, w := range tc.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr %q lacks %q", stderr, w)
				}
			}
			if strings.Contains(stderr, "panic") {
				t.Errorf("panicked: %s", stderr)
			}
		})
	}
	if ents, _ := os.ReadDir(out); len(ents) > 0 {
		t.Errorf("failed images left files: %v", ents)
	}
}

// TestSegmentationModelCommands: info, export and bench take the
// segmentation models by name (random weights, or a checkpoint's class
// count), and info --list keeps to the classification zoo.
func TestSegmentationModelCommands(t *testing.T) {
	dir := t.TempDir()
	code, stdout, stderr := cli("info", "-m", "deeplabv3_mobileone_s0", "--size", "64")
	if code != 0 || !strings.Contains(stdout, "classifier.0.convs.4.1") {
		t.Errorf("info: exit %d: %s", code, stderr)
	}
	onnxPath := filepath.Join(dir, "seg.onnx")
	code, stdout, stderr = cli("export", "-m", "deeplabv3_mobileone_s1", "--random-seed", "1", "--size", "64x96", "-o", onnxPath)
	if code != 0 || !strings.Contains(stdout, "(batch, 3, 64, 96)") {
		t.Errorf("export: exit %d: %s %s", code, stdout, stderr)
	}
	code, stdout, stderr = cli("bench", "-m", "deeplabv3_mobileone_s0", "--size", "64", "--rounds", "1", "--runs", "2", "--trim", "0", "--threads", "1")
	if code != 0 || !strings.Contains(stdout, "deeplabv3_mobileone_s0") || strings.Contains(stdout, "reference code") {
		t.Errorf("bench: exit %d: %s %s", code, stdout, stderr)
	}
	code, stdout, _ = cli("info", "--list")
	if code != 0 || strings.Contains(stdout, "deeplabv3") {
		t.Errorf("info --list: exit %d, lists a segmentation model:\n%s", code, stdout)
	}
	code, _, stderr = cli("bench", "-m", "deeplabv3_mobileone_s9")
	if code == 0 || !strings.Contains(stderr, "deeplabv3_mobileone_s0") {
		t.Errorf("an unknown segmentation model: exit %d: %s", code, stderr)
	}
}

// TestSegmentTorchSave: a torch.save checkpoint (here with the metadata
// entry this project writes) works as a safetensors one; its labels and
// output stride are used.
func TestSegmentTorchSave(t *testing.T) {
	dir := t.TempDir()
	g, err := arch.DeepLabV3MobileOne(segTinyConfig, 2, 8, []int{1, 2, 3}, 64, 64)
	if err != nil {
		t.Fatal(err)
	}
	g.InitRandom(4)
	keys, sd := g.StateDict()
	ck := filepath.Join(dir, "seg.pth")
	f, err := os.Create(ck)
	if err != nil {
		t.Fatal(err)
	}
	if err := pth.SaveWithMetadata(f, keys, sd, map[string]string{"labels": `["sky","ground"]`, "output_stride": "8", "rates": "[1,2,3]"}); err != nil {
		t.Fatal(err)
	}
	f.Close()
	img := filepath.Join(dir, "x.png")
	writePNG(t, img, 50, 33)
	code, stdout, stderr := cli("segment", "-w", ck, img, "-o", dir, "--size", "64")
	if code != 0 || !(strings.Contains(stdout, "sky") || strings.Contains(stdout, "ground")) {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	s, err := loadSegmenter(ck, segOptions{Size: 64})
	if err != nil {
		t.Fatal(err)
	}
	if s.OutputStride != 8 || len(s.Rates) != 3 || s.Classes != 2 || s.Config.Channels != segTinyConfig.Channels {
		t.Errorf("read output stride %d, rates %v, %d classes, channels %v", s.OutputStride, s.Rates, s.Classes, s.Config.Channels)
	}
}
