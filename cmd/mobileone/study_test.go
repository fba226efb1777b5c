package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestStudyCommands runs each study small (64×64, few runs) and checks its
// outputs: the tables, the JSON with correlations in [-1, 1], the plots.
func TestStudyCommands(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a dozen networks")
	}
	dir := t.TempDir()
	quick := []string{"--threads", "1", "--size", "64", "--rounds", "1", "--runs", "3", "--trim", "1", "--bootstrap", "200"}
	out := filepath.Join(dir, "corr")
	code, stdout, errs := cli(append([]string{"study", "correlation", "--models", "mobilenet_v3_small,shufflenet_v2_x1_0,mobileone_s0,ghostnet", "-o", out}, quick...)...)
	if code != 0 {
		t.Fatalf("correlation: exit %d\n%s%s", code, stdout, errs)
	}
	if !strings.Contains(stdout, "Spearman") || !strings.Contains(errs, "[4/4] ghostnet") {
		t.Errorf("output:\n%s\nprogress:\n%s", stdout, errs)
	}
	var rep struct {
		Rows         []struct{ Model string }
		Correlations map[string]map[string]map[string]struct{ Rho, Lo, Hi float64 }
	}
	raw, err := os.ReadFile(filepath.Join(out, "correlation.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &rep); err != nil {
		t.Fatal(err)
	}
	c := rep.Correlations["ours"]["1"]["macs"]
	if len(rep.Rows) != 4 || c.Rho < -1 || c.Rho > 1 || c.Lo > c.Hi {
		t.Errorf("report: %d rows, rho %+v", len(rep.Rows), c)
	}
	for _, f := range []string{"correlation.md", "correlation.csv", "latency_vs_macs_t1.png", "latency_vs_macs_t1.svg", "latency_vs_params_t1.png"} {
		if st, err := os.Stat(filepath.Join(out, f)); err != nil || st.Size() == 0 {
			t.Errorf("%s: %v", f, err)
		}
	}
	out = filepath.Join(dir, "blocks")
	if code, stdout, errs := cli(append([]string{"study", "blocks", "-o", out}, quick...)...); code != 0 {
		t.Fatalf("blocks: exit %d\n%s%s", code, stdout, errs)
	}
	md, err := os.ReadFile(filepath.Join(out, "blocks.md"))
	if err != nil || !strings.Contains(string(md), "skip_se") {
		t.Errorf("blocks.md: %v\n%s", err, md)
	}
	for _, bad := range [][]string{
		{"study", "tables"},
		{"study", "correlation", "--peer", "tflite"},
		{"study", "correlation", "--threads", "0"},
		{"study", "blocks", "--models", "a,b,c"},
		{"study", "correlation", "--models", "resnet18,resnet19,resnet50"},
		{"study"},
	} {
		if code, _, errs := cli(bad...); code == 0 || errs == "" {
			t.Errorf("%v: exit %d, %q", bad, code, errs)
		}
	}
}
