package main

import (
	"bytes"
	"encoding/csv"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mobileone-go/mobileone/format/npy"
	"github.com/mobileone-go/mobileone/format/pth"
	"github.com/mobileone-go/mobileone/tensor"
)

// TestRunCheckpointsAgree: every checkpoint a run writes gives the same
// predictions through every command (the .pth.tar used to lose the stem
// stride, the preprocessing and the class names, and predict answered
// "class 1" with confidence), and a plain state dict that cannot tell what
// it needs is refused with the flags that settle it.
func TestRunCheckpointsAgree(t *testing.T) {
	dir := t.TempDir()
	writeToyFolder(t, dir)
	run := filepath.Join(dir, "run")
	if code, out, errs := cli("train", "--data", dir, "-o", run, "--epochs", "4", "--batch", "16", "--size", "16", "--in-channels", "1",
		"--channels-override", "8,8,8,16,16", "--blocks", "1,1,1,1", "--k", "2", "--lr", "0.1", "--ema", "0.9", "--no-augment"); code != 0 {
		t.Fatalf("train: exit %d\n%s\n%s", code, out, errs)
	}
	fused, unfused := filepath.Join(run, "model.safetensors"), filepath.Join(run, "model_unfused.pth.tar")
	img := filepath.Join(dir, "val", "right", "right_aa.png")

	// predict on images: the same top class, label and probability.
	var outs []string
	for _, w := range []string{fused, unfused} {
		code, out, errs := cli("predict", "-w", w, "--top", "2", img)
		if code != 0 {
			t.Fatalf("predict -w %s: exit %d: %s", w, code, errs)
		}
		if errs != "" {
			t.Errorf("predict -w %s says %q: a run's checkpoint should leave nothing to assume", w, errs)
		}
		outs = append(outs, strings.TrimPrefix(out, img))
	}
	if !strings.Contains(outs[0], "right") || outs[0] != outs[1] {
		t.Errorf("the run's two checkpoints predict differently:\nfused:\n%s\nunfused:\n%s", outs[0], outs[1])
	}

	// --npy: the same logits (a stride-2 stem, ImageNet's default, would change every one).
	in := filepath.Join(dir, "in.npy")
	x := tensor.New(3, 1, 16, 16)
	r := rand.New(rand.NewPCG(3, 4))
	for i := range x.Data {
		x.Data[i] = float32(r.NormFloat64())
	}
	if err := npy.WriteFile(in, x); err != nil {
		t.Fatal(err)
	}
	logits := func(w string, extra ...string) (*tensor.Tensor, string) {
		t.Helper()
		out := filepath.Join(dir, "logits.npy")
		code, _, errs := cli(append([]string{"predict", "-w", w, "--npy", in, "--out", out}, extra...)...)
		if code != 0 {
			t.Fatalf("predict -w %s --npy: exit %d: %s", w, code, errs)
		}
		y, err := npy.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		return y, errs
	}
	lf, _ := logits(fused)
	lu, _ := logits(unfused)
	if d := maxRel(lf.Data, lu.Data); d > 1e-5 {
		t.Errorf("fused and unfused logits differ by %.3g (relative)", d)
	}

	// A plain state dict of the same weights (what a re-save in PyTorch
	// gives) cannot tell its stem stride or preprocessing: refused, naming
	// the flags; with them given, the same answers.
	sd, err := pth.LoadFile(unfused)
	if err != nil {
		t.Fatal(err)
	}
	keys := make([]string, 0, len(sd))
	for k := range sd {
		keys = append(keys, k)
	}
	var buf bytes.Buffer
	if err := pth.Save(&buf, keys, sd); err != nil {
		t.Fatal(err)
	}
	plain := filepath.Join(dir, "plain.pth")
	if err := os.WriteFile(plain, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errs := cli("predict", "-w", plain, img)
	if code == 0 || !strings.Contains(errs, "--stem-stride") || !strings.Contains(errs, "--preprocess") || out != "" {
		t.Errorf("predict on a plain state dict of a 2-class grey model: exit %d, stdout %q, stderr %q; want a refusal naming --stem-stride and --preprocess", code, out, errs)
	}
	if code, _, errs := cli("predict", "-w", plain, "--npy", in, "--out", filepath.Join(dir, "x.npy")); code == 0 || !strings.Contains(errs, "--stem-stride") || strings.Contains(errs, "--preprocess ") {
		t.Errorf("predict --npy on a plain state dict: exit %d, %q; want a refusal naming only --stem-stride", code, errs)
	}
	if _, err := os.Stat(filepath.Join(dir, "x.npy")); err == nil {
		t.Error("a refused predict --npy wrote its output")
	}
	lp, _ := logits(plain, "--stem-stride", "1")
	if d := maxRel(lf.Data, lp.Data); d > 1e-5 {
		t.Errorf("plain state dict with --stem-stride 1: logits differ by %.3g", d)
	}
	if code, _, errs := cli("eval", "-w", plain, "--data", filepath.Join(dir, "val")); code == 0 || !strings.Contains(errs, "--preprocess") {
		t.Errorf("eval of a plain state dict on a folder: exit %d, %q; want a refusal naming --preprocess", code, errs)
	}
	if code, _, errs := cli("fuse", "-w", plain, "-o", filepath.Join(dir, "f.safetensors")); code == 0 || !strings.Contains(errs, "--stem-stride") {
		t.Errorf("fuse of a plain state dict: exit %d, %q; want a refusal naming --stem-stride", code, errs)
	}
	if _, err := os.Stat(filepath.Join(dir, "f.safetensors")); err == nil {
		t.Error("a refused fuse wrote its output")
	}
	for _, bad := range [][]string{
		{"--stem-stride", "3"},
		{"--preprocess", "cifar"},
	} {
		if code, _, errs := cli(append([]string{"predict", "-w", plain}, append(bad, img)...)...); code == 0 || !strings.Contains(errs, bad[0]) {
			t.Errorf("predict %v: exit %d, %q", bad, code, errs)
		}
	}
	if code, _, errs := cli("predict", "--stem-stride", "1", img); code == 0 || !strings.Contains(errs, "-w") {
		t.Errorf("predict --stem-stride without -w: exit %d, %q", code, errs)
	}
}

// TestPlainImageNetStateDictSaysWhatItAssumes: an ImageNet-shaped plain
// state dict (the authors' checkpoints) is read with the authors' setting,
// and the command says so.
func TestPlainImageNetStateDictSaysWhatItAssumes(t *testing.T) {
	golden := filepath.Join("..", "..", "testdata", "golden", "tiny-k4", "unfused.pth.tar")
	img := filepath.Join(t.TempDir(), "a.png")
	writePNG(t, img, 40, 30)
	// tiny-k4 has 10 classes: refused.
	if code, _, errs := cli("predict", "-w", golden, img); code == 0 || !strings.Contains(errs, "--stem-stride") {
		t.Errorf("10-class plain state dict: exit %d, %q", code, errs)
	}
	code, out, errs := cli("predict", "-w", golden, "--stem-stride", "2", "--preprocess", "imagenet", img)
	if code != 0 || !strings.Contains(out, "class ") || strings.Contains(errs, "note:") {
		t.Errorf("with --stem-stride and --preprocess: exit %d, %q, %q (nothing left to assume)", code, out, errs)
	}
}

// TestTrainSmallSetSeesEveryImage: a training set smaller than a batch or
// not a multiple of it is trained on whole every epoch (it used to be one
// full batch per epoch, the rest never seen).
func TestTrainSmallSetSeesEveryImage(t *testing.T) {
	dir := t.TempDir()
	writeToyFolder(t, dir) // 96 training images
	for _, tc := range []struct {
		flags      []string
		batches    string
		images     string
		dropLeft   bool
		wantBatchs int
	}{
		{nil, "2 batches of 48", "96", false, 2},
		{[]string{"--last-batch", "drop"}, "1 batches of 64", "64", true, 1},
	} {
		run := filepath.Join(t.TempDir(), "run")
		args := append([]string{"train", "--data", dir, "-o", run, "--epochs", "1", "--batch", "64", "--size", "16", "--in-channels", "1",
			"--channels-override", "8,8,8,16,16", "--blocks", "1,1,1,1", "--k", "1", "--no-augment"}, tc.flags...)
		code, out, errs := cli(args...)
		if code != 0 {
			t.Fatalf("%v: exit %d\n%s%s", tc.flags, code, out, errs)
		}
		if !strings.Contains(out, tc.batches) || strings.Contains(out, "left out") != tc.dropLeft {
			t.Errorf("%v: output does not say %q:\n%s", tc.flags, tc.batches, out)
		}
		f, err := os.Open(filepath.Join(run, "log.csv"))
		if err != nil {
			t.Fatal(err)
		}
		rows, err := csv.NewReader(f).ReadAll()
		f.Close()
		if err != nil || len(rows) != 2 {
			t.Fatalf("log.csv: %v, %d rows", err, len(rows))
		}
		if got := rows[1][len(rows[1])-1]; got != tc.images {
			t.Errorf("%v: %s images trained in the epoch, want %s", tc.flags, got, tc.images)
		}
	}
	if code, _, errs := cli("train", "--data", dir, "-o", filepath.Join(t.TempDir(), "r"), "--last-batch", "keep"); code == 0 || !strings.Contains(errs, "--last-batch") {
		t.Errorf("--last-batch keep: exit %d, %q", code, errs)
	}
}

// TestConfusionLongNames: class names are never cut, so names sharing a
// prefix stay distinguishable.
func TestConfusionLongNames(t *testing.T) {
	names := []string{"T-shirt/top", "T-shirt/top with a long sleeve", "Bag"}
	var b bytes.Buffer
	if err := writeConfusion(&b, names, [][]int{{5, 1, 0}, {2, 7, 0}, {0, 0, 9}}); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if len(lines) != 4 {
		t.Fatalf("%d lines:\n%s", len(lines), out)
	}
	for i, n := range names {
		if !strings.HasPrefix(strings.TrimSpace(lines[i+1]), digit(i)+" "+n+" ") {
			t.Errorf("row %d does not start with its number and full name %q: %q", i, n, lines[i+1])
		}
	}
	if !strings.Contains(lines[1], "83.3%") || !strings.Contains(lines[2], "77.8%") {
		t.Errorf("recall column wrong:\n%s", out)
	}
	// Columns line up: every line is as long as the header.
	for _, l := range lines[1:] {
		if len([]rune(l)) != len([]rune(lines[0])) {
			t.Errorf("ragged table:\n%s", out)
			break
		}
	}
}

func digit(i int) string { return string(rune('0' + i)) }
