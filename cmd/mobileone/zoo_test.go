package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mobileone-go/mobileone/arch"
	"github.com/mobileone-go/mobileone/format/npy"
	"github.com/mobileone-go/mobileone/format/pth"
	"github.com/mobileone-go/mobileone/tensor"
)

func TestInfoList(t *testing.T) {
	code, out, errs := cli("info", "--list", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var rows []struct {
		Name   string
		Params int64
		MACs   int64
	}
	if err := json.Unmarshal([]byte(out), &rows); err != nil {
		t.Fatal(err)
	}
	want := []string{"mobilenet_v1", "mobilenet_v2", "mobilenet_v3_small", "mobilenet_v3_large", "efficientnet_b0",
		"shufflenet_v2_x1_0", "mnasnet1_0", "regnet_x_400mf", "resnet18", "resnet50", "ghostnet", "repvgg_a0", "repvgg_b0",
		"mobilevit_xs", "mobileone_s0", "mobileone_s1", "mobileone_s2", "mobileone_s3", "mobileone_s4"}
	got := map[string]int64{}
	for _, r := range rows {
		got[r.Name] = r.Params
	}
	for _, n := range want {
		if got[n] == 0 {
			t.Errorf("info --list lacks %s", n)
		}
	}
	if got["resnet18"] != 11689512 {
		t.Errorf("resnet18: %d parameters, torchvision has 11,689,512", got["resnet18"])
	}
	if code, out, _ := cli("info", "-m", "shufflenet_v2_x1_0"); code != 0 || !strings.Contains(out, "2,278,604") || !strings.Contains(out, "Shuffle") {
		t.Errorf("info -m shufflenet_v2_x1_0: exit %d\n%s", code, out)
	}
	if code, _, errs := cli("info", "-m", "resnet19"); code == 0 || !strings.Contains(errs, "resnet18") {
		t.Errorf("unknown model: exit %d, %q (should list the known ones)", code, errs)
	}
}

// TestZooPredictLoadsStateDict: a state dict saved under torchvision's key
// names loads into the zoo model and classifies; --npy gives the reference
// executor's logits; bad state dicts are refused by key.
func TestZooPredictLoadsStateDict(t *testing.T) {
	dir := t.TempDir()
	s, err := arch.Get("mobilenet_v3_small")
	if err != nil {
		t.Fatal(err)
	}
	g, err := s.Build(64, 64)
	if err != nil {
		t.Fatal(err)
	}
	g.InitRandom(3)
	keys, sd := g.StateDict()
	save := func(name string, keys []string, sd map[string]*tensor.Tensor) string {
		var b bytes.Buffer
		if err := pth.Save(&b, keys, sd); err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	w := save("v3s.pth", keys, sd)
	x := tensor.New(2, 3, 64, 64)
	for i := range x.Data {
		x.Data[i] = float32((i*7919)%255)/255 - 0.5
	}
	in, out := filepath.Join(dir, "in.npy"), filepath.Join(dir, "out.npy")
	if err := npy.WriteFile(in, x); err != nil {
		t.Fatal(err)
	}
	if code, _, errs := cli("predict", "-m", "mobilenet_v3_small", "-w", w, "--npy", in, "--out", out); code != 0 {
		t.Fatalf("predict --npy: exit %d: %s", code, errs)
	}
	got, err := npy.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	want, _, err := g.Ref(x)
	if err != nil {
		t.Fatal(err)
	}
	if e := maxRel(got.Data, want.Data); e > 1e-4 || !tensor.SameShape(got.Shape, []int{2, 1000}) {
		t.Errorf("logits %v differ from the reference executor's by %.3g", got.Shape, e)
	}
	img := filepath.Join(dir, "a.png")
	writePNG(t, img, 300, 200)
	code, stdout, errs := cli("predict", "-m", "mobilenet_v3_small", "-w", w, "--top", "2", "--json", img)
	if code != 0 || !strings.Contains(stdout, `"model":"mobilenet_v3_small"`) {
		t.Errorf("predict image: exit %d\n%s%s", code, stdout, errs)
	}
	delete(sd, keys[1])
	bad := save("missing.pth", append([]string{keys[0]}, keys[2:]...), sd)
	if code, _, errs := cli("predict", "-m", "mobilenet_v3_small", "-w", bad, img); code == 0 || !strings.Contains(errs, keys[1]) {
		t.Errorf("missing key: exit %d, %q", code, errs)
	}
	if code, _, errs := cli("predict", "-m", "mobilenet_v3_small", img); code == 0 || !strings.Contains(errs, "needs -w") {
		t.Errorf("no -w: exit %d, %q", code, errs)
	}
}

func TestZooBenchExport(t *testing.T) {
	code, out, errs := cli("bench", "-m", "ghostnet", "--size", "64", "--rounds", "1", "--runs", "3", "--trim", "1", "--threads", "1", "--json")
	if code != 0 {
		t.Fatalf("bench: exit %d: %s", code, errs)
	}
	var res struct {
		Variant string
		MinMS   float64 `json:"min_ms"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil || res.Variant != "ghostnet" || res.MinMS <= 0 {
		t.Errorf("bench result %+v (%v)", res, err)
	}
	p := filepath.Join(t.TempDir(), "m.onnx")
	if code, out, errs := cli("export", "-m", "mobilevit_xs", "--random-seed", "1", "--size", "128", "-o", p); code != 0 || !strings.Contains(out, "opset 17") {
		t.Errorf("export: exit %d %s %s", code, out, errs)
	}
	if st, err := os.Stat(p); err != nil || st.Size() < 1e6 {
		t.Errorf("export wrote %v (%v)", st, err)
	}
	if code, _, errs := cli("export", "-m", "resnet18", "-o", p); code == 0 || !strings.Contains(errs, "--random-seed") {
		t.Errorf("export without weights: exit %d %q", code, errs)
	}
}
