package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mobileone-go/mobileone/internal/zoo"
)

// TestQuantizeCLI quantises the built-in model on a folder of images
// (the built-in samples), then runs the int8 file through predict (images
// and .npy), bench and export.
func TestQuantizeCLI(t *testing.T) {
	dir := t.TempDir()
	calib := filepath.Join(dir, "calib", "sub") // class sub-folders are walked
	if err := os.MkdirAll(calib, 0o755); err != nil {
		t.Fatal(err)
	}
	var imgs []string
	for _, s := range zoo.Samples()[:4] {
		p := filepath.Join(calib, s.Name)
		if err := os.WriteFile(p, s.PNG, 0o644); err != nil {
			t.Fatal(err)
		}
		imgs = append(imgs, p)
	}
	// A masks folder (a canvases set) is skipped: a broken file there would fail.
	os.MkdirAll(filepath.Join(dir, "calib", "masks"), 0o755)
	os.WriteFile(filepath.Join(dir, "calib", "masks", "x.png"), []byte("not a png"), 0o644)
	out := filepath.Join(dir, "m.int8.safetensors")
	code, stdout, stderr := cli("quantize", "--calib", filepath.Join(dir, "calib"), "-o", out, "--report-images", "2")
	if code != 0 {
		t.Fatalf("quantize: %d\n%s", code, stderr)
	}
	if !strings.Contains(stdout, "stage0.reparam_conv") || !strings.Contains(stdout, "logits SQNR") {
		t.Errorf("no per-layer report:\n%s", stdout)
	}
	code, stdout, stderr = cli("predict", "-w", out, "--top", "1", imgs[0], imgs[1])
	if code != 0 || strings.Count(stdout, "1. ") != 2 {
		t.Fatalf("predict int8: %d\n%s\n%s", code, stdout, stderr)
	}
	if !strings.Contains(stdout, "T-shirt/top") || !strings.Contains(stdout, "Trouser") {
		t.Errorf("int8 model misclassifies the built-in samples 0 and 1:\n%s", stdout)
	}
	code, _, stderr = cli("bench", "-w", out, "--rounds", "1", "--runs", "3", "--trim", "0")
	if code != 0 {
		t.Fatalf("bench int8: %s", stderr)
	}
	for _, args := range [][]string{{"predict", imgs[0]}, {"eval"}, {"bench"}} {
		cmd := args[0]
		code, _, stderr = cli(append([]string{cmd, "-w", out, "--precision", "bf16"}, args[1:]...)...)
		if code == 0 || !strings.Contains(stderr, "is an int8 model") {
			t.Errorf("%s --precision bf16 on an int8 file: exit %d, %q", cmd, code, stderr)
		}
	}
	onnxOut := filepath.Join(dir, "m.onnx")
	code, stdout, stderr = cli("export", "-w", out, "-o", onnxOut)
	if code != 0 || !strings.Contains(stdout, "QDQ") {
		t.Fatalf("export int8: %d %s %s", code, stdout, stderr)
	}
	empty := filepath.Join(dir, "empty")
	os.MkdirAll(filepath.Join(empty, "masks"), 0o755)
	os.WriteFile(filepath.Join(empty, "masks", "m.png"), []byte("x"), 0o644)
	// Flags that do not apply to an int8 file, a missing --calib, a bad method.
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"predict", "-w", out, "--preprocess", "imagenet", imgs[0]}, "int8 model"},
		{[]string{"quantize", "-o", filepath.Join(dir, "x")}, "--calib"},
		{[]string{"quantize", "--calib", "fashion-mnist", "-o", filepath.Join(dir, "x"), "--method", "kl"}, "--method"},
		{[]string{"quantize", "-w", out, "--calib", filepath.Join(dir, "calib"), "-o", filepath.Join(dir, "x")}, "already an int8 model"},
		{[]string{"quantize", "--calib", empty, "-o", filepath.Join(dir, "x")}, "no images found"},
	} {
		code, _, stderr := cli(c.args...)
		if code == 0 || !strings.Contains(stderr, c.want) {
			t.Errorf("%v: exit %d, stderr %q, want an error mentioning %q", c.args, code, stderr, c.want)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "x")); err == nil {
		t.Error("a failed quantize left an output file")
	}
	// A corrupt int8 file: an error, not a panic, for every command.
	b, _ := os.ReadFile(out)
	bad := filepath.Join(dir, "bad.safetensors")
	os.WriteFile(bad, b[:len(b)-100], 0o644)
	for _, cmd := range [][]string{{"predict", "-w", bad, imgs[0]}, {"bench", "-w", bad}, {"export", "-w", bad, "-o", filepath.Join(dir, "y.onnx")}} {
		if code, _, stderr := cli(cmd...); code == 0 || stderr == "" {
			t.Errorf("%v on a truncated int8 file: exit %d", cmd, code)
		}
	}
}
