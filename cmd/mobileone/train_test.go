package main

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"image"
	"image/color"
	"image/png"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/mobileone-go/mobileone/data"
	"github.com/mobileone-go/mobileone/internal/kernel"
)

// writeToyFolder writes DIR/{train,val}/{left,right}/*.png: a bright block
// on the left or the right of a 16×16 grey image.
func writeToyFolder(t *testing.T, dir string) {
	t.Helper()
	r := rand.New(rand.NewPCG(1, 2))
	// A fixed order of splits (not a map's): the images come from one
	// random stream, so the order decides them.
	for _, sp := range []struct {
		split string
		n     int
	}{{"train", 48}, {"val", 16}} {
		split, n := sp.split, sp.n
		for c, class := range []string{"left", "right"} {
			d := filepath.Join(dir, split, class)
			if err := os.MkdirAll(d, 0o755); err != nil {
				t.Fatal(err)
			}
			for i := 0; i < n; i++ {
				img := image.NewGray(image.Rect(0, 0, 16, 16))
				for j := range img.Pix {
					img.Pix[j] = uint8(r.IntN(50))
				}
				x0, y0 := 1+8*c+r.IntN(3), 2+r.IntN(8)
				for y := y0; y < y0+5; y++ {
					for x := x0; x < x0+4; x++ {
						img.Set(x, y, color.Gray{230})
					}
				}
				var b bytes.Buffer
				png.Encode(&b, img)
				os.WriteFile(filepath.Join(d, class+"_"+string(rune('a'+i%26))+string(rune('a'+i/26))+".png"), b.Bytes(), 0o644)
			}
		}
	}
}

func TestTrainEvalPredict(t *testing.T) {
	dir := t.TempDir()
	writeToyFolder(t, dir)
	run := filepath.Join(dir, "run")
	args := []string{"train", "--data", dir, "-o", run, "--epochs", "6", "--batch", "16", "--size", "16", "--in-channels", "1",
		"--channels-override", "8,8,8,16,16", "--blocks", "1,1,1,1", "--k", "2", "--lr", "0.1", "--ema", "0.9", "--no-augment"}
	code, out, errs := cli(args...)
	if code != 0 {
		t.Fatalf("train: exit %d\n%s\n%s", code, out, errs)
	}
	for _, want := range []string{"epoch   6/6", "model_unfused.pth.tar", "validation top-1: unfused"} {
		if !strings.Contains(out, want) {
			t.Errorf("train output lacks %q:\n%s", want, out)
		}
	}
	for _, f := range []string{"checkpoint.safetensors", "log.csv", "curves.png", "model_unfused.pth.tar", "model.safetensors"} {
		if _, err := os.Stat(filepath.Join(run, f)); err != nil {
			t.Error(err)
		}
	}
	// The same folder again is refused; resuming a finished run rewrites the models.
	if code, _, errs := cli(args...); code != 1 || !strings.Contains(errs, "--resume") {
		t.Errorf("second train into the same folder: exit %d, %s", code, errs)
	}
	if code, out, errs := cli("train", "--resume", run); code != 0 || !strings.Contains(out, "all 6 epochs are done") || !strings.Contains(out, filepath.Join(run, "model.safetensors")) {
		t.Errorf("resume finished run: exit %d\n%s%s", code, out, errs)
	}
	if _, err := os.Stat("model.safetensors"); err == nil {
		t.Error("resume wrote its model into the working directory")
	}
	// eval on the val split: JSON with accuracy and a confusion matrix.
	code, out, errs = cli("eval", "-w", filepath.Join(run, "model.safetensors"), "--data", filepath.Join(dir, "val"), "--json")
	if code != 0 {
		t.Fatalf("eval: exit %d: %s", code, errs)
	}
	var ev struct {
		N         int
		Top1      float64
		Confusion [][]int
		Classes   []string
	}
	if err := json.Unmarshal([]byte(out), &ev); err != nil {
		t.Fatal(err)
	}
	if ev.N != 32 || len(ev.Confusion) != 2 || ev.Classes[1] != "right" || ev.Top1 < 90 {
		t.Errorf("eval result %+v", ev)
	}
	// The trained model classifies an image by name, with its own preprocessing.
	img := filepath.Join(dir, "val", "right", "right_aa.png")
	code, out, errs = cli("predict", "-w", filepath.Join(run, "model.safetensors"), "--top", "1", img)
	if code != 0 || !strings.Contains(out, "right") {
		t.Errorf("predict: exit %d\n%s%s", code, out, errs)
	}
	// The unfused checkpoint (authors' names) loads and fine-tunes.
	code, out, errs = cli("train", "--data", dir, "-o", filepath.Join(dir, "ft"), "--init", filepath.Join(run, "model_unfused.pth.tar"),
		"--classes", "3", "--epochs", "1", "--batch", "16", "--size", "16", "--in-channels", "1")
	if code != 0 || !strings.Contains(out, "3 classes") && !strings.Contains(out, "classes") {
		t.Errorf("fine-tune: exit %d\n%s%s", code, out, errs)
	}
	// The .pth.tar does not record the stem stride; a 16×16 fine-tune gets
	// the stride-1 stem of small inputs, in the trained and the EMA network.
	if !strings.Contains(out, "stem stride 1") {
		t.Errorf("fine-tune at 16x16 does not use the stride-1 stem:\n%s", out)
	}
}

func TestTrainBadInput(t *testing.T) {
	dir := t.TempDir()
	toy := t.TempDir()
	writeToyFolder(t, toy)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"train"}, "need -o"},
		{[]string{"train", "-o", dir, "--data", filepath.Join(dir, "none")}, "no such file"},
		{[]string{"train", "-o", dir, "--data", "fashion-mnist", "--fashion-mnist-dir", dir}, "dataset-fashion-mnist"},
		{[]string{"train", "--resume", dir}, "checkpoint.safetensors"},
		{[]string{"train", "--resume", dir, "--epochs", "3"}, "no other flags"},
		{[]string{"train", "-o", filepath.Join(dir, "p"), "--data", toy, "--size", "16", "--progressive", "12@1,20@3"}, "ends at 20"},
		{[]string{"train", "-o", filepath.Join(dir, "e"), "--data", toy, "--size", "16", "--random-erase", "1.5"}, "probability"},
		{[]string{"train", "-o", filepath.Join(dir, "pad1"), "--pad", "-1"}, "--pad -1: want 0..14"},
		{[]string{"train", "-o", filepath.Join(dir, "pad2"), "--pad", "15"}, "--pad 15: want 0..14"},
		{[]string{"train", "-o", filepath.Join(dir, "pad3"), "--data", toy, "--size", "16", "--pad", "2"}, "--pad is Fashion-MNIST's"},
		{[]string{"train", "-o", filepath.Join(dir, "pr1"), "--data", toy, "--size", "16", "--prune", "1"}, "--prune 1: want a probability in [0, 1)"},
		{[]string{"train", "-o", filepath.Join(dir, "pr2"), "--data", toy, "--size", "16", "--prune", "-0.5"}, "--prune -0.5"},
		{[]string{"train", "-o", filepath.Join(dir, "pr3"), "--data", toy, "--size", "16", "--prune", "0.5", "--prune-anneal", "2"}, "--prune-anneal 2"},
		{[]string{"train", "-o", filepath.Join(dir, "i1"), "--data", toy, "--size", "16", "--init", "../../testdata/golden/tiny-k4/unfused.pth.tar", "--k", "2"}, "cannot be combined with --init"},
		{[]string{"train", "-o", filepath.Join(dir, "i2"), "--data", toy, "--size", "16", "--init", "../../testdata/golden/tiny-k4/unfused.pth.tar", "-m", "s1"}, "not those of -m s1"},
		{[]string{"train", "-o", filepath.Join(dir, "i3"), "--data", toy, "--size", "16", "--init", "../../testdata/golden/tiny-k4/fused.pth.tar"}, "is fused"},
		{[]string{"eval", "-w", "../../testdata/golden/tiny-k4/fused.pth.tar", "--data", dir}, "class"},
		{[]string{"eval", "-w", "../../testdata/golden/tiny-k4/fused.pth.tar", "--stem-stride", "3"}, "--stem-stride"},
	} {
		code, _, errs := cli(tc.args...)
		if code == 0 || !strings.Contains(errs, tc.want) {
			t.Errorf("%v: exit %d, stderr %q, want %q", tc.args, code, errs, tc.want)
		}
		// A refused run leaves no run folder behind.
		for i, a := range tc.args {
			if a == "-o" && tc.args[i+1] != dir {
				if _, err := os.Stat(tc.args[i+1]); err == nil {
					t.Errorf("%v: left %s behind", tc.args, tc.args[i+1])
				}
			}
		}
	}
}

// TestTrainResumeChangedData: --resume refuses data whose classes or number
// of training images changed since the run started, rather than continuing
// with shifted labels or a different shuffle.
func TestTrainResumeChangedData(t *testing.T) {
	dir := t.TempDir()
	writeToyFolder(t, dir)
	run := filepath.Join(dir, "run")
	code, out, errs := cli("train", "--data", dir, "-o", run, "--epochs", "1", "--batch", "16", "--size", "16", "--in-channels", "1",
		"--channels-override", "8,8,8,16,16", "--blocks", "1,1,1,1", "--k", "1", "--no-augment", "--threads", "1")
	if code != 0 {
		t.Fatalf("train: exit %d\n%s\n%s", code, out, errs)
	}
	// The run's checkpoint is not a model; predict and eval say so.
	for _, cmd := range [][]string{{"eval", "-w", filepath.Join(run, "checkpoint.safetensors"), "--data", dir},
		{"predict", "-w", filepath.Join(run, "checkpoint.safetensors"), filepath.Join(dir, "val", "left", "left_aa.png")}} {
		if code, _, errs := cli(cmd...); code == 0 || !strings.Contains(errs, "training checkpoint") {
			t.Errorf("%s on a training checkpoint: exit %d, %s", cmd[0], code, errs)
		}
	}
	src := filepath.Join(dir, "train", "left", "left_aa.png")
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	extra := filepath.Join(dir, "train", "left", "extra.png")
	if err := os.WriteFile(extra, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, errs := cli("train", "--resume", run); code == 0 || !strings.Contains(errs, "97 training images") && !strings.Contains(errs, "now has 97") {
		t.Errorf("resume with one more image: exit %d, %s", code, errs)
	}
	os.Remove(extra)
	// Renaming a class folder reorders the classes: "left" was 0, "xleft" sorts after "right".
	rename := func(from, to string) {
		for _, split := range []string{"train", "val"} {
			if err := os.Rename(filepath.Join(dir, split, from), filepath.Join(dir, split, to)); err != nil {
				t.Fatal(err)
			}
		}
	}
	rename("left", "xleft")
	if code, _, errs := cli("train", "--resume", run); code == 0 || !strings.Contains(errs, "classes changed") {
		t.Errorf("resume with a renamed class: exit %d, %s", code, errs)
	}
	rename("xleft", "left")
	if code, out, errs := cli("train", "--resume", run); code != 0 {
		t.Errorf("resume with the original data: exit %d\n%s%s", code, out, errs)
	}
}

// TestEvalBuiltin scores the built-in model (eval without -w) on the real
// Fashion-MNIST test split: docs/training.md reports 95.05 % for it (float16).
func TestEvalBuiltin(t *testing.T) {
	if _, err := os.Stat(filepath.Join(data.FashionMNISTDir, "t10k-images-idx3-ubyte.gz")); err != nil {
		t.Skipf("Fashion-MNIST not installed in %s (apt-get install dataset-fashion-mnist)", data.FashionMNISTDir)
	}
	code, out, errs := cli("eval", "--json")
	if code != 0 {
		t.Fatalf("eval: exit %d: %s", code, errs)
	}
	if !strings.Contains(errs, "built-in") {
		t.Errorf("eval without -w does not say it uses the built-in model: %q", errs)
	}
	var ev struct {
		N         int
		Top1      float64
		Confusion [][]int
	}
	if err := json.Unmarshal([]byte(out), &ev); err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, row := range ev.Confusion {
		for _, v := range row {
			total += v
		}
	}
	if ev.N != 10000 || total != 10000 || len(ev.Confusion) != 10 || ev.Top1 < 94.8 || ev.Top1 > 95.3 {
		t.Errorf("built-in model on the test split: %d images, confusion sum %d, top-1 %.2f %% (want 10000, 10000, 95.05 %%)", ev.N, total, ev.Top1)
	}
}

// TestTrainBF16: --bf16 trains (and resumes) with bfloat16 matrix
// multiplies where the CPU has AMX or AVX512-BF16, and is refused with a
// clear error and no run folder where it has neither.
func TestTrainBF16(t *testing.T) {
	dir := t.TempDir()
	writeToyFolder(t, dir)
	run := filepath.Join(dir, "run")
	args := []string{"train", "--data", dir, "-o", run, "--epochs", "6", "--batch", "16", "--size", "16", "--in-channels", "1",
		"--channels-override", "16,16,16,32,32", "--blocks", "1,1,1,1", "--k", "1", "--lr", "0.1", "--ema", "0.9", "--no-augment", "--bf16"}
	code, out, errs := cli(args...)
	if !kernel.HaveBF16() {
		if code == 0 || !strings.Contains(errs, "AMX") || !strings.Contains(errs, "AVX512-BF16") {
			t.Errorf("--bf16 without AMX or AVX512-BF16: exit %d, stderr %q", code, errs)
		}
		if _, err := os.Stat(run); err == nil {
			t.Errorf("a refused --bf16 run left %s behind", run)
		}
		return
	}
	if code != 0 {
		t.Fatalf("train --bf16: exit %d\n%s\n%s", code, out, errs)
	}
	if !strings.Contains(out, "validation top-1: unfused") || !strings.Contains(out, "bfloat16 with "+kernel.BF16Unit()+" (--bf16)") {
		t.Errorf("train --bf16 output:\n%s", out)
	}
	// The setting is part of the run: resuming the finished run keeps it.
	if code, out, errs := cli("train", "--resume", run); code != 0 || !strings.Contains(out, "all 6 epochs are done") {
		t.Errorf("resume: exit %d\n%s%s", code, out, errs)
	}
	ck, err := os.ReadFile(filepath.Join(run, "checkpoint.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(ck, []byte(`\"bf16\":true`)) && !bytes.Contains(ck, []byte(`"bf16":true`)) {
		t.Error("the checkpoint does not record bf16")
	}
	// bfloat16 training fits the toy task (training accuracy of the last
	// epoch) and generalises.
	logCSV, err := os.ReadFile(filepath.Join(run, "log.csv"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(logCSV)), "\n")
	fields := strings.Split(lines[len(lines)-1], ",")
	if trainAcc, err := strconv.ParseFloat(fields[5], 64); err != nil || trainAcc < 90 {
		t.Errorf("bf16 training accuracy in the last epoch %q, want ≥ 90 (%v)", fields[5], err)
	}
	code, out, errs = cli("eval", "-w", filepath.Join(run, "model.safetensors"), "--data", filepath.Join(dir, "val"), "--json")
	if code != 0 {
		t.Fatalf("eval: exit %d: %s", code, errs)
	}
	var ev struct{ Top1 float64 }
	if err := json.Unmarshal([]byte(out), &ev); err != nil {
		t.Fatal(err)
	}
	if ev.Top1 < 90 {
		t.Errorf("bf16-trained toy model: top-1 %.1f %%, want ≥ 90", ev.Top1)
	}
	// The same run again gives the same model, bit for bit.
	run2 := filepath.Join(dir, "run2")
	args[4] = run2
	if code, out, errs := cli(args...); code != 0 {
		t.Fatalf("second train --bf16: exit %d\n%s\n%s", code, out, errs)
	}
	m1, err1 := os.ReadFile(filepath.Join(run, "model.safetensors"))
	m2, err2 := os.ReadFile(filepath.Join(run2, "model.safetensors"))
	if err1 != nil || err2 != nil || !bytes.Equal(m1, m2) {
		t.Errorf("two identical --bf16 runs gave different models (%v, %v)", err1, err2)
	}
}

// TestTrainPrune: --prune trains the middle epochs on fewer images (the log
// says how many), the first and the annealed last ones on all of them.
func TestTrainPrune(t *testing.T) {
	dir := t.TempDir()
	writeToyFolder(t, dir)
	run := filepath.Join(dir, "run")
	code, out, errs := cli("train", "--data", dir, "-o", run, "--epochs", "4", "--batch", "8", "--size", "16", "--in-channels", "1",
		"--channels-override", "8,8,8,16,16", "--blocks", "1,1,1,1", "--k", "1", "--no-augment", "--threads", "1",
		"--prune", "0.5", "--prune-anneal", "0.25")
	if code != 0 {
		t.Fatalf("train: exit %d\n%s\n%s", code, out, errs)
	}
	if !strings.Contains(out, "data pruning (--prune 0.5)") || !strings.Contains(out, "the last 1 epochs train on every image") {
		t.Errorf("no pruning line in:\n%s", out)
	}
	f, err := os.Open(filepath.Join(run, "log.csv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 5 || recs[0][len(recs[0])-1] != "images" {
		t.Fatalf("log.csv: %v", recs)
	}
	images := func(e int) string { return recs[e][len(recs[e])-1] }
	if images(1) != "96" || images(4) != "96" {
		t.Errorf("epochs 1 and 4 trained %s and %s images, want 96", images(1), images(4))
	}
	if n, _ := strconv.Atoi(images(2)); n >= 96 || n < 40 {
		t.Errorf("pruned epoch 2 trained %s images, want fewer than 96 (about 3/4 of them)", images(2))
	}
	if !strings.Contains(out, images(2)+" images") {
		t.Errorf("the epoch line does not say how many images:\n%s", out)
	}
}
