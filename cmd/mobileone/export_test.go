package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/mobileone-go/mobileone"
	"github.com/mobileone-go/mobileone/format/npy"
	"github.com/mobileone-go/mobileone/format/onnx"
	"github.com/mobileone-go/mobileone/format/onnx/onnxpb"
	"github.com/mobileone-go/mobileone/model"
)

func TestExportCheckpoint(t *testing.T) {
	dir := t.TempDir()
	out, wout := filepath.Join(dir, "m.onnx"), filepath.Join(dir, "m.safetensors")
	code, stdout, errs := cli("export", "-w", golden+"/unfused.pth.tar", "--stem-stride", "2", "--format", "onnx", "-o", out,
		"--dynamic", "--weights-out", wout)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	if !strings.Contains(stdout, "m.onnx") || !strings.Contains(stdout, "height, width") {
		t.Errorf("output %q", stdout)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var mp onnxpb.ModelProto
	if err := proto.Unmarshal(b, &mp); err != nil {
		t.Fatal(err)
	}
	if mp.GetIrVersion() != onnx.IRVersion || mp.Graph.Input[0].GetName() != "input" || mp.Graph.Output[0].GetName() != "logits" {
		t.Errorf("IR %d, input %s, output %s", mp.GetIrVersion(), mp.Graph.Input[0].GetName(), mp.Graph.Output[0].GetName())
	}
	// The saved weights predict the golden logits (same model as the ONNX file).
	lo := filepath.Join(dir, "logits.npy")
	if code, _, errs := cli("predict", "-w", wout, "--npy", golden+"/input.npy", "--out", lo); code != 0 {
		t.Fatalf("predict on --weights-out: exit %d: %s", code, errs)
	}
	got, err := npy.ReadFile(lo)
	if err != nil {
		t.Fatal(err)
	}
	want, err := npy.ReadFile(golden + "/logits.npy")
	if err != nil {
		t.Fatal(err)
	}
	if r := maxRel(got.Data, want.Data); r > 1e-4 {
		t.Errorf("--weights-out logits differ from golden by %.3g", r)
	}
}

func TestExportRandom(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "s0.onnx")
	code, _, errs := cli("export", "-m", "s0", "--random-seed", "3", "-o", out, "--size", "160x128")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	// The same weights as mobileone.New(s0, seed 3), fused: what bench runs.
	cfg, _ := model.Variant("s0")
	m, err := mobileone.New(cfg, true, 3)
	if err != nil {
		t.Fatal(err)
	}
	var want bytes.Buffer
	if err := onnx.Export(&want, m.Fuse().Model, onnx.Options{Height: 160, Width: 128, ProducerVersion: version}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want.Bytes()) {
		t.Error("exported file differs from the library's export of the same seeded model")
	}
}

func TestExportErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.pth.tar")
	if err := os.WriteFile(bad, []byte("PK\x03\x04 not really a zip"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out.onnx")
	for _, c := range []struct {
		name string
		args []string
		want string
		code int
	}{
		{"no output", []string{"export", "-w", golden + "/fused.pth.tar"}, "need -w", 1},
		{"no model", []string{"export", "-o", out}, "need -w", 1},
		{"format", []string{"export", "-w", golden + "/fused.pth.tar", "--stem-stride", "2", "--format", "tflite", "-o", out}, "tflite", 1},
		{"no seed", []string{"export", "-m", "s0", "-o", out}, "--random-seed", 1},
		{"seed with -w", []string{"export", "-w", golden + "/fused.pth.tar", "--stem-stride", "2", "--random-seed", "1", "-o", out}, "without -w", 1},
		{"variant", []string{"export", "-m", "s9", "--random-seed", "1", "-o", out}, "s9", 1},
		{"wrong variant", []string{"export", "-w", golden + "/fused.pth.tar", "--stem-stride", "2", "-m", "s1", "-o", out}, "s1", 1},
		{"bad checkpoint", []string{"export", "-w", bad, "-o", out}, "bad.pth.tar", 1},
		{"size", []string{"export", "-w", golden + "/fused.pth.tar", "--stem-stride", "2", "--size", "0", "-o", out}, "--size", 1},
		{"no dir", []string{"export", "-w", golden + "/fused.pth.tar", "--stem-stride", "2", "-o", filepath.Join(dir, "nodir", "x.onnx")}, "nodir", 1},
		{"extra arg", []string{"export", "-w", golden + "/fused.pth.tar", "--stem-stride", "2", "-o", out, "extra"}, "extra", 1},
		{"bad flag", []string{"export", "--nope"}, "", 2},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, _, errs := cli(c.args...)
			if code != c.code {
				t.Fatalf("exit %d, want %d: %s", code, c.code, errs)
			}
			last := strings.TrimSpace(errs)
			if i := strings.LastIndex(last, "\n"); i >= 0 {
				last = last[i+1:]
			}
			if c.code == 1 && (!strings.HasPrefix(last, "mobileone export: ") || !strings.Contains(last, c.want)) {
				t.Errorf("error %q, want a line mentioning %q", last, c.want)
			}
		})
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() != "bad.pth.tar" {
			t.Errorf("left behind %s", e.Name())
		}
	}
}
