package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mobileone-go/mobileone/detect"
	"github.com/mobileone-go/mobileone/internal/runlog"
)

// TestTrainDetectEndToEnd: a tiny detector trains for two epochs on a COCO
// folder; the run folder holds the checkpoint, the fused model, the log
// and the curves; the fused model's AP from "eval --task detect" is the
// one the trainer printed for it; "detect" runs it; --resume of the
// finished run rewrites the model; bad flags are errors.
func TestTrainDetectEndToEnd(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	writeCOCOFolder(t, data)
	ann, _ := os.ReadFile(filepath.Join(data, "annotations", "instances_val.json"))
	os.WriteFile(filepath.Join(data, "annotations", "instances_train.json"), ann, 0o644)
	run := filepath.Join(dir, "run")
	code, stdout, stderr := cli("train", "--task", "detect", "--data", data, "-o", run, "--channels-override", "8,8,16,16,24",
		"--blocks", "1,1,1,1", "--k", "2", "--size", "64", "--width", "0.05", "--epochs", "2", "--batch", "2", "--threads", "1", "--lr", "0.02")
	if code != 0 {
		t.Fatalf("exit %d: %s%s", code, stdout, stderr)
	}
	t.Log(stdout)
	for _, f := range []string{"checkpoint.safetensors", "model.safetensors", "log.csv", "curves.png"} {
		if _, err := os.Stat(filepath.Join(run, f)); err != nil {
			t.Error(err)
		}
	}
	l, err := runlog.Open(run, 99)
	if err != nil {
		t.Fatal(err)
	}
	if rows := l.Rows(); len(rows) != 2 || rows[1].TrainLoss <= 0 {
		t.Errorf("log rows: %+v", rows)
	}
	model := filepath.Join(run, "model.safetensors")
	code, out, stderr := cli("eval", "--task", "detect", "-w", model, "--data", data, "--json")
	if code != 0 {
		t.Fatalf("eval: exit %d: %s", code, stderr)
	}
	var rep detect.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatal(err)
	}
	var trainer, fused float64
	line := stdout[strings.Index(stdout, "validation AP:"):]
	if _, err := fmt.Sscanf(line, "validation AP: train-time net %f%%, fused detector %f%%", &trainer, &fused); err != nil {
		t.Fatalf("%q: %v", line, err)
	}
	if d := 100*max(rep.AP, 0) - fused; d > 0.01 || d < -0.01 {
		t.Errorf("eval AP %.4f%%, the trainer printed %.4f%% for the fused model", 100*rep.AP, fused)
	}
	if d := trainer - fused; d > 0.5 || d < -0.5 {
		t.Errorf("train-time net AP %.2f%%, fused %.2f%%", trainer, fused)
	}
	img := filepath.Join(data, "images", "a.png")
	if code, _, stderr := cli("detect", "-w", model, img, "-o", filepath.Join(dir, "out")); code != 0 {
		t.Errorf("detect: exit %d: %s", code, stderr)
	}
	code, stdout, stderr = cli("train", "--resume", run)
	if code != 0 || !strings.Contains(stdout, "all 2 epochs are done") {
		t.Errorf("resume of a finished run: exit %d: %s%s", code, stdout, stderr)
	}
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"train", "--resume", run, "--lr", "1"}, "--resume takes no other flags"},
		{[]string{"train", "--task", "detect", "-o", filepath.Join(dir, "r2")}, "needs --data DIR"},
		{[]string{"train", "--task", "detect", "-o", filepath.Join(dir, "r3"), "--data", data, "--recipe", "big"}, "--recipe \"big\""},
		{[]string{"train", "--task", "detect", "-o", filepath.Join(dir, "r4"), "--data", data, "--batch", "1"}, "--batch 1"},
		{[]string{"train", "--task", "detect", "-o", run, "--data", data}, "already holds a run"},
		{[]string{"train", "--task", "detect", "-o", filepath.Join(dir, "r5"), "--data", filepath.Join(dir, "nothing")}, "--data"},
		{[]string{"train", "--task", "classify", "--resume", run}, "is a detection run"},
	} {
		code, _, stderr := cli(c.args...)
		if code == 0 || !strings.Contains(stderr, c.want) {
			t.Errorf("%v: exit %d, stderr %q, want it to mention %q", c.args, code, stderr, c.want)
		}
	}
}
