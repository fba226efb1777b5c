package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/mobileone-go/mobileone/data"
	"github.com/mobileone-go/mobileone/dense"
	"github.com/mobileone-go/mobileone/dense/canvas"
	"github.com/mobileone-go/mobileone/format/safetensors"
	"github.com/mobileone-go/mobileone/imageproc"
	"github.com/mobileone-go/mobileone/model"
	"github.com/mobileone-go/mobileone/train"
)

// tinyCanvases writes a canvases dataset (VOC layout) of 8 train and 4 val
// 64×64 canvases made of synthetic items (grey squares and bars).
func tinyCanvases(t *testing.T, dir string) {
	t.Helper()
	items := func(n, off int) data.Dataset {
		imgs := make([]*imageproc.Image8, n)
		labels := make([]int, n)
		for i := range imgs {
			m := imageproc.NewImage8(28, 28, 1)
			w, h := 8+(i+off)%18, 24-(i+off)%14
			for y := 2; y < 2+h; y++ {
				for x := 2; x < 2+w; x++ {
					m.Pix[y*28+x] = uint8(120 + 10*(i%10))
				}
			}
			imgs[i], labels[i] = m, i%10
		}
		ds, err := data.NewMemory(imgs, labels, data.FashionMNISTClasses)
		if err != nil {
			t.Fatal(err)
		}
		return ds
	}
	cfg := canvas.Config{Options: canvas.Options{Size: 64, MinItems: 1, MaxItems: 2, MinScale: 0.8, MaxScale: 1.5}, Train: 8, Val: 4, Seed: 3}
	if err := canvas.Build(context.Background(), dir, items(30, 0), items(10, 5), cfg, nil); err != nil {
		t.Fatal(err)
	}
}

// segTinyFlags is a tiny backbone for the trainer's tests.
var segTinyFlags = []string{"--channels-override", "8,8,16,16,32", "--blocks", "1,1,1,1", "--k", "1", "--size", "64", "--batch", "4", "--threads", "1", "--workers", "1"}

// TestTrainSegmentEndToEnd trains one tiny epoch on canvases, then: the
// run folder's files; segment runs on the result out of the box; eval
// --task segment scores the fused model with the inference graph as the
// trainer scored the train-time net: the masks it saves agree with the
// train-time net's on at least 99.9 % of the pixels and the mIoU with the
// trainer's (and is the one the trainer printed for the fused model);
// --resume of a finished run only rewrites the model.
func TestTrainSegmentEndToEnd(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "canv")
	tinyCanvases(t, data)
	run := filepath.Join(dir, "run")
	args := append([]string{"train", "--task", "segment", "--data", data, "--epochs", "1", "-o", run}, segTinyFlags...)
	code, stdout, stderr := cli(args...)
	if code != 0 {
		t.Fatalf("train: exit %d\n%s\n%s", code, stdout, stderr)
	}
	t.Log(stdout)
	for _, f := range []string{"checkpoint.safetensors", "model.safetensors", "log.csv", "curves.png"} {
		if _, err := os.Stat(filepath.Join(run, f)); err != nil {
			t.Error(err)
		}
	}
	if ents, _ := os.ReadDir(run); len(ents) != 4 {
		t.Errorf("run folder holds %d files, want 4 (no temporary files left)", len(ents))
	}
	fh, err := os.Open(filepath.Join(run, "log.csv"))
	if err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(fh).ReadAll()
	fh.Close()
	if err != nil || len(recs) != 2 || recs[0][8] != "val_miou" {
		t.Fatalf("log.csv: %v %v", recs, err)
	}
	trainerMIoU, _ := strconv.ParseFloat(recs[1][8], 64)
	if !(trainerMIoU > 0) {
		t.Errorf("trainer's val mIoU %v", trainerMIoU)
	}

	// segment, out of the box: the metadata gives size, stride, rates, labels
	img := filepath.Join(data, "JPEGImages", "val_000001.png")
	out := filepath.Join(dir, "seg")
	code, stdout, stderr = cli("segment", "-w", filepath.Join(run, "model.safetensors"), img, "-o", out, "--json")
	if code != 0 {
		t.Fatalf("segment: exit %d: %s", code, stderr)
	}
	var res segResult
	if err := json.Unmarshal([]byte(stdout), &res); err != nil || res.Width != 64 || res.Height != 64 {
		t.Fatalf("segment: %q: %v", stdout, err)
	}
	for _, f := range []string{res.Mask, res.Overlay} {
		if _, err := os.Stat(f); err != nil {
			t.Error(err)
		}
	}
	for _, s := range res.Shares {
		if s.Name != canvas.Classes()[s.Class] {
			t.Errorf("share %+v: names from the metadata expected", s)
		}
	}

	// eval on the fused model, masks saved
	masks := filepath.Join(dir, "masks")
	code, stdout, stderr = cli("eval", "--task", "segment", "-w", filepath.Join(run, "model.safetensors"), "--data", data, "--save-masks", masks, "--json")
	if code != 0 {
		t.Fatalf("eval: exit %d: %s", code, stderr)
	}
	var rep struct {
		Images int `json:"images"`
		dense.Report
	}
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil || rep.MeanIoU == nil || rep.Images != 4 || len(rep.Matrix) != 11 {
		t.Fatalf("eval --json: %q: %v", stdout, err)
	}
	evalMIoU := 100 * *rep.MeanIoU
	// The train-time net's masks, as the trainer validated it.
	r, err := train.ResumeSeg(run)
	if err != nil {
		t.Fatal(err)
	}
	val, err := dense.Open(data, "val", dense.Options{})
	if err != nil {
		t.Fatal(err)
	}
	same, total := 0, 0
	cm, err := train.SegEvaluate(r.Net, val, 64, imageproc.ImageNetMean, imageproc.ImageNetStd, meanFill, 4, 1, func(i int, m *dense.Mask) error {
		saved, err := dense.ReadMaskFile(filepath.Join(masks, val.Name(i)+".png"))
		if err != nil {
			return err
		}
		if saved.Width != m.Width || saved.Height != m.Height {
			t.Errorf("%s: saved mask %dx%d, want %dx%d", val.Name(i), saved.Width, saved.Height, m.Width, m.Height)
			return nil
		}
		for j, v := range m.Pix {
			if saved.Pix[j] == v {
				same++
			}
		}
		total += len(m.Pix)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if total != 4*64*64 || float64(same) < 0.999*float64(total) {
		t.Errorf("fused (eval) and train-time masks agree on %d of %d pixels, want ≥ 99.9 %%", same, total)
	}
	if got := 100 * cm.MeanIoU(); math.Abs(got-trainerMIoU) > 1e-9 {
		t.Errorf("SegEvaluate on the checkpoint: mIoU %v, the trainer logged %v", got, trainerMIoU)
	}
	if math.Abs(evalMIoU-trainerMIoU) > 0.5 {
		t.Errorf("eval mIoU %.4f%%, trainer's %.4f%%", evalMIoU, trainerMIoU)
	}
	t.Logf("pixels agreeing: %d of %d; mIoU trainer (train-time net) %.6f%%, eval (fused graph) %.6f%%", same, total, trainerMIoU, evalMIoU)
	code, stdout, stderr = cli("train", "--task", "segment", "-o", run) // not --resume: the folder holds a run
	if code == 0 || !strings.Contains(stderr, "already holds a run") {
		t.Errorf("training into a run folder: exit %d, %q", code, stderr)
	}
	code, _, stderr = cli("train", "--resume", run, "--epochs", "3")
	if code == 0 || !strings.Contains(stderr, "--epochs") {
		t.Errorf("--resume with --epochs: exit %d, %q", code, stderr)
	}
	code, stdout, stderr = cli("train", "--resume", run)
	if code != 0 || !strings.Contains(stdout, "all 1 epochs are done") || !strings.Contains(stdout, "fused model") {
		t.Errorf("resume of a finished run: exit %d\n%s\n%s", code, stdout, stderr)
	}
	// --init: the classification checkpoint's backbone (a learning rate
	// of ~0 keeps it as loaded); a missing file or a segmentation model
	// is refused.
	cls := writeTinyClassifier(t, dir)
	code, _, stderr = cli(append([]string{"train", "--task", "segment", "--data", data, "-o", filepath.Join(dir, "run3"), "--init", filepath.Join(dir, "nope.pth")}, segTinyFlags[6:]...)...)
	if code == 0 || !strings.Contains(stderr, "nope.pth") {
		t.Errorf("--init of a missing file: exit %d, %q", code, stderr)
	}
	code, _, stderr = cli(append([]string{"train", "--task", "segment", "--data", data, "-o", filepath.Join(dir, "run3"), "--init", filepath.Join(run, "model.safetensors")}, segTinyFlags[6:]...)...)
	if code == 0 || !strings.Contains(stderr, "fused segmentation model") {
		t.Errorf("--init of a segmentation model: exit %d, %q", code, stderr)
	}
	run2 := filepath.Join(dir, "run2")
	code, stdout, stderr = cli(append([]string{"train", "--task", "segment", "--data", data, "--epochs", "1", "--lr", "1e-12", "--init", cls, "-o", run2}, segTinyFlags[6:]...)...)
	if code != 0 {
		t.Fatalf("--init: exit %d\n%s\n%s", code, stdout, stderr)
	}
	r2, err := train.ResumeSeg(run2)
	if err != nil {
		t.Fatal(err)
	}
	ck, err := safetensors.ReadFile(cls)
	if err != nil {
		t.Fatal(err)
	}
	_, sd2 := r2.Net.StateDict()
	for _, k := range []string{"stage0.rbr_conv.0.conv.weight", "stage4.0.rbr_conv.0.conv.weight"} {
		if d := maxRel(sd2["backbone."+k].Data, ck.Tensors[k].Data); d > 1e-4 {
			t.Errorf("--init: backbone.%s differs from the checkpoint's %s by %g", k, k, d)
		}
	}
	// text output of eval: the table and the matrix
	code, stdout, stderr = cli("eval", "--task", "segment", "-w", filepath.Join(run, "model.safetensors"), "--data", data)
	if code != 0 || !strings.Contains(stdout, "mIoU") || !strings.Contains(stdout, "true \\ predicted") || !strings.Contains(stdout, "10 Ankle boot") {
		t.Errorf("eval text: exit %d\n%s\n%s", code, stdout, stderr)
	}
}

// TestTrainSegmentBadInput: clear errors, non-zero exit, nothing written.
func TestTrainSegmentBadInput(t *testing.T) {
	dir := t.TempDir()
	noMasks := filepath.Join(dir, "nomasks")
	os.MkdirAll(filepath.Join(noMasks, "images"), 0o755)
	writePNG(t, filepath.Join(noMasks, "images", "a.png"), 20, 20)
	os.WriteFile(filepath.Join(noMasks, "labels.txt"), []byte("bg\nfg\n"), 0o644)
	clsCkpt := writeTinyClassifier(t, dir)
	run := filepath.Join(dir, "run")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"train", "--task", "segment", "--data", noMasks, "-o", run}, "masks"},
		{[]string{"train", "--task", "segment", "--data", filepath.Join(dir, "absent"), "-o", run}, "absent"},
		{[]string{"train", "--task", "segment", "--data", noMasks, "-o", run, "--output-stride", "32"}, "--output-stride 32"},
		{[]string{"train", "--task", "segment", "--data", noMasks, "-o", run, "--rates", "6,12"}, "three atrous rates"},
		{[]string{"train", "--task", "segment", "--data", noMasks, "-o", run, "--size", "100"}, "not a multiple"},
		{[]string{"train", "--task", "segment", "--data", noMasks, "-o", run, "--batch", "1"}, "--batch 1"},
		{[]string{"train", "--task", "segment", "-o", run}, "--data"},
		{[]string{"train", "--task", "pose", "-o", run}, `--task "pose"`},
		{[]string{"eval", "--task", "segment", "-w", clsCkpt, "--data", noMasks}, "not a DeepLabV3-MobileOne checkpoint"},
		{[]string{"eval", "--task", "segment", "--data", noMasks}, "-w is required"},
		{[]string{"eval", "--task", "segment", "-w", clsCkpt}, "--data DIR is required"},
		{[]string{"eval", "--task", "segment", "-w", clsCkpt, "--data", noMasks, "--output-stride", "4"}, "--output-stride 4"},
	} {
		code, _, stderr := cli(c.args...)
		if code == 0 || !strings.Contains(stderr, c.want) {
			t.Errorf("%v: exit %d, stderr %q, want it to mention %q", c.args, code, stderr, c.want)
		}
	}
	if _, err := os.Stat(run); err == nil {
		t.Errorf("%s was created by a failed run", run)
	}
	// help
	for _, args := range [][]string{{"train", "--task", "segment", "-h"}, {"eval", "--task", "segment", "-h"}} {
		code, stdout, stderr := cli(args...)
		if code != 0 || !strings.Contains(stdout+stderr, "--output-stride") && !strings.Contains(stdout+stderr, "--save-masks") {
			t.Errorf("%v: exit %d\n%s%s", args, code, stdout, stderr)
		}
	}
}

// writeTinyClassifier writes a train-time (unfused) classification
// checkpoint of the tiny backbone of segTinyFlags (4 classes).
func writeTinyClassifier(t *testing.T, dir string) string {
	t.Helper()
	cfg := model.Config{Channels: [5]int{8, 8, 16, 16, 32}, Blocks: [4]int{1, 1, 1, 1}, K: 1, NumClasses: 4, InChannels: 3, StemStride: 2}
	m, err := model.New(cfg, false)
	if err != nil {
		t.Fatal(err)
	}
	m.InitRandom(5)
	keys, sd := m.StateDict()
	path := filepath.Join(dir, "cls_unfused.safetensors")
	if err := safetensors.WriteFile(path, keys, sd, nil, safetensors.F32); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestTrainSegmentInitBuiltin: --init builtin starts the backbone from the
// built-in Fashion-MNIST model (fused, grey, stem stride 1), says how it
// adapts it, trains and writes a model segment takes; an architecture that
// is not the built-in one is refused.
func TestTrainSegmentInitBuiltin(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "canv")
	tinyCanvases(t, data)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"-m", "s1"}, "not those of -m s1"},
		{[]string{"--k", "4"}, "--k cannot be combined with --init"},
		{[]string{"--schedule", "step"}, `--schedule "step"`},
	} {
		args := append([]string{"train", "--task", "segment", "--data", data, "--init", "builtin", "-o", filepath.Join(dir, "bad")}, c.args...)
		code, _, stderr := cli(args...)
		if code == 0 || !strings.Contains(stderr, c.want) {
			t.Errorf("%v: exit %d, stderr %q, want it to mention %q", c.args, code, stderr, c.want)
		}
	}
	run := filepath.Join(dir, "run")
	code, stdout, stderr := cli("train", "--task", "segment", "--data", data, "--init", "builtin", "--size", "64", "--batch", "4",
		"--epochs", "1", "--threads", "1", "--workers", "1", "-o", run)
	if code != 0 {
		t.Fatalf("train --init builtin: exit %d\n%s\n%s", code, stdout, stderr)
	}
	for _, want := range []string{"grey model", "stem of stride 1", "channels [48 48 128 256 1024]", "k=1"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("stdout does not mention %q:\n%s", want, stdout)
		}
	}
	r, err := train.ResumeSeg(run)
	if err != nil {
		t.Fatal(err)
	}
	if r.Hyper.PolyPower != 0.9 {
		t.Errorf("default schedule: poly power %g, want 0.9", r.Hyper.PolyPower)
	}
	img := filepath.Join(data, "JPEGImages", "val_000001.png")
	if code, _, stderr := cli("segment", "-w", filepath.Join(run, "model.safetensors"), img, "-o", filepath.Join(dir, "seg")); code != 0 {
		t.Fatalf("segment: exit %d: %s", code, stderr)
	}
}
