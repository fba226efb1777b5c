package main

import (
	"bufio"
	"encoding/json"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mobileone-go/mobileone/arch"
	"github.com/mobileone-go/mobileone/dense"
	"github.com/mobileone-go/mobileone/detect"
	"github.com/mobileone-go/mobileone/format/safetensors"
	"github.com/mobileone-go/mobileone/imageproc"
	"github.com/mobileone-go/mobileone/model"
	"github.com/mobileone-go/mobileone/tensor"
)

// writeDetCheckpoint writes a random fused SSDLite on a tiny MobileOne with
// `classes` classes (background included; the graph's own state dict) and
// returns its path; edit changes the state dict before it is written.
func writeDetCheckpoint(t *testing.T, dir string, classes int, meta map[string]string, edit func(map[string]*tensor.Tensor)) string {
	t.Helper()
	g, err := arch.SSDLiteMobileOne(segTinyConfig, classes, 0.0625, 64)
	if err != nil {
		t.Fatal(err)
	}
	g.InitRandom(5)
	keys, sd := g.StateDict()
	if edit != nil {
		edit(sd)
		keys = keys[:0]
		for k := range sd {
			keys = append(keys, k)
		}
	}
	path := filepath.Join(dir, "det.safetensors")
	if err := safetensors.WriteFile(path, keys, sd, meta, "F32"); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestDetectImages: one JSON object per image, boxes inside the original
// image (not the network's 64×64), scores at least --score and best first,
// names from the metadata, a drawn PNG of the image's size.
func TestDetectImages(t *testing.T) {
	dir := t.TempDir()
	ck := writeDetCheckpoint(t, dir, 3, map[string]string{"labels": `["background","circle","square"]`, "size": "64"}, nil)
	a, b := filepath.Join(dir, "a.png"), filepath.Join(dir, "b.png")
	writePNG(t, a, 200, 50)
	writePNG(t, b, 40, 120)
	out := filepath.Join(dir, "out")
	code, stdout, stderr := cli("detect", "-w", ck, a, b, "-o", out, "--json", "--score", "0.2")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	sc := bufio.NewScanner(strings.NewReader(stdout))
	n, objects := 0, 0
	for sc.Scan() {
		var r detResult
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("%q: %v", sc.Text(), err)
		}
		n++
		want := map[string][2]int{a: {200, 50}, b: {40, 120}}[r.File]
		if r.Width != want[0] || r.Height != want[1] {
			t.Errorf("%s: %dx%d, want %v", r.File, r.Width, r.Height, want)
		}
		for i, d := range r.Detections {
			objects++
			if d.Box[0] < 0 || d.Box[1] < 0 || d.Box[2] > float32(want[0]) || d.Box[3] > float32(want[1]) || d.Box[0] >= d.Box[2] || d.Box[1] >= d.Box[3] {
				t.Errorf("%s: box %v outside %v", r.File, d.Box, want)
			}
			if d.Score < 0.2 || (i > 0 && d.Score > r.Detections[i-1].Score) {
				t.Errorf("%s: detection %d score %g (threshold 0.2, best first)", r.File, i, d.Score)
			}
			if d.Label < 1 || d.Label > 2 || d.Name != []string{"", "circle", "square"}[d.Label] {
				t.Errorf("%s: label %d named %q", r.File, d.Label, d.Name)
			}
		}
		f, err := os.Open(r.Output)
		if err != nil {
			t.Fatal(err)
		}
		img, err := png.Decode(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		if s := img.Bounds().Size(); s.X != want[0] || s.Y != want[1] {
			t.Errorf("%s: drawn PNG %v, want %v", r.Output, s, want)
		}
	}
	if n != 2 {
		t.Errorf("%d JSON lines, want 2", n)
	}
	if objects == 0 {
		t.Error("no detection above 0.2 in either image (random weights, 3 classes: expected some)")
	}
	// text output
	code, stdout, stderr = cli("detect", "-w", ck, a, "-o", out, "--score", "0.9")
	if code != 0 || !strings.Contains(stdout, "a.png (200x50):") {
		t.Errorf("text output: exit %d, %q %q", code, stdout, stderr)
	}
}

func TestDetectErrors(t *testing.T) {
	dir := t.TempDir()
	img := filepath.Join(dir, "a.png")
	writePNG(t, img, 30, 30)
	good := writeDetCheckpoint(t, dir, 3, nil, nil)
	noHead := writeDetCheckpoint(t, t.TempDir(), 3, nil, func(sd map[string]*tensor.Tensor) {
		delete(sd, "head.classification_head.module_list.0.1.weight")
	})
	noExtra := writeDetCheckpoint(t, t.TempDir(), 3, nil, func(sd map[string]*tensor.Tensor) { delete(sd, "backbone.extra.2.1.0.weight") })
	badLabels := writeDetCheckpoint(t, t.TempDir(), 3, map[string]string{"labels": `["a","b"]`}, nil)
	segCk := writeSegCheckpoint(t, t.TempDir(), 3, nil, nil)
	out := filepath.Join(dir, "out")
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"no weights", []string{img}, "-w is required"},
		{"no images", []string{"-w", good}, "no images"},
		{"bad score", []string{"-w", good, "--score", "2", img}, "--score"},
		{"missing head", []string{"-w", noHead, img}, "head.classification_head.module_list.0.1.weight"},
		{"missing extra", []string{"-w", noExtra, img}, "backbone.extra.2.1.0.weight"},
		{"labels", []string{"-w", badLabels, img}, "2 labels for 3 classes"},
		{"a segmentation checkpoint", []string{"-w", segCk, img}, "not torchvision's SSDLiteHead"},
		{"missing image", []string{"-w", good, "-o", out, filepath.Join(dir, "nope.png")}, "nope.png"},
	} {
		code, _, stderr := cli(append([]string{"detect"}, c.args...)...)
		if code == 0 || !strings.Contains(stderr, c.want) {
			t.Errorf("%s: exit %d, stderr %q, want it to mention %q", c.name, code, stderr, c.want)
		}
	}
	if _, err := os.Stat(filepath.Join(out, "nope_detections.png")); err == nil {
		t.Error("a PNG was written for a missing image")
	}
}

// TestExportDetector: the detection models export by name (random weights)
// at a square size; a non-square size and an unknown variant are errors.
func TestExportDetector(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "det.onnx")
	code, stdout, stderr := cli("export", "-m", "ssdlite_mobileone_s0", "--size", "64", "--random-seed", "1", "-o", out)
	if code != 0 || !strings.Contains(stdout, "ssdlite_mobileone_s0") {
		t.Fatalf("exit %d: %s%s", code, stdout, stderr)
	}
	if st, err := os.Stat(out); err != nil || st.Size() < 1e6 {
		t.Errorf("ONNX file: %v", err)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"export", "-m", "ssdlite_mobileone_s0", "--size", "64x96", "--random-seed", "1", "-o", filepath.Join(dir, "x.onnx")}, "square"},
		{[]string{"export", "-m", "ssdlite_mobileone_s9", "--size", "64", "--random-seed", "1", "-o", filepath.Join(dir, "y.onnx")}, "unknown detection model"},
	} {
		code, _, stderr := cli(c.args...)
		if code == 0 || !strings.Contains(stderr, c.want) {
			t.Errorf("%v: exit %d, stderr %q, want it to mention %q", c.args, code, stderr, c.want)
		}
	}
}

// BenchmarkDetect times a fused detector on one image, the network part
// and detect.Postprocess (torchvision's defaults) separately:
// MOBILEONE_DET_MODEL (a model.safetensors) on MOBILEONE_DET_IMAGE, or,
// without them, random S0 weights at 320×320 with 91 classes on a random
// image (random logits put every class of every box above the 0.001 score
// threshold: post-processing's worst case).
func BenchmarkDetect(b *testing.B) {
	var det *detector
	var err error
	im := imageproc.NewImage8(320, 320, 3)
	for i := range im.Pix {
		im.Pix[i] = uint8(i * 7919 % 251)
	}
	if path := os.Getenv("MOBILEONE_DET_MODEL"); path != "" {
		if det, err = loadDetector(path, 0, ""); err != nil {
			b.Fatal(err)
		}
		if p := os.Getenv("MOBILEONE_DET_IMAGE"); p != "" {
			img, err := imageproc.DecodeFile(p, 0)
			if err != nil {
				b.Fatal(err)
			}
			im = imageproc.ToImage8(img, false)
		}
	} else {
		g, err := arch.SSDLiteMobileOne(model.Zoo[0], 91, 1, 320)
		if err != nil {
			b.Fatal(err)
		}
		g.InitRandom(1)
		_, sd := g.StateDict()
		if det, err = newDetector(sd, nil, 320, ""); err != nil {
			b.Fatal(err)
		}
	}
	x := dense.CHW(im.Resize(det.Size, det.Size), imageproc.ImageNetMean, imageproc.ImageNetStd)
	var net, post time.Duration
	for b.Loop() {
		t0 := time.Now()
		out, err := det.plan.Run(x)
		if err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		det.logits, det.regs, _ = arch.SSDLiteSplit(out, det.Classes, det.logits, det.regs)
		if _, err := detect.Postprocess(det.logits, det.regs, det.anchors, det.Classes, det.Size, det.Size, detect.PostOptions{}); err != nil {
			b.Fatal(err)
		}
		net += t1.Sub(t0)
		post += time.Since(t1)
	}
	b.ReportMetric(float64(net.Microseconds())/1e3/float64(b.N), "net-ms/op")
	b.ReportMetric(float64(post.Microseconds())/1e3/float64(b.N), "post-ms/op")
}
