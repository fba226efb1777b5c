package arch

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/mobileone-go/mobileone/format/npy"
	"github.com/mobileone-go/mobileone/format/pth"
	"github.com/mobileone-go/mobileone/graph"
)

// TestStudyNets: every variant of the study CNN (Tables 2 and 3b) has the
// PyTorch reference's parameters and MACs, loads its state dict by name and
// gives its logits (testdata/study, written by tools/reference/study.py
// through make_zoo.sh; generated in CI).
func TestStudyNets(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the reference executor on every network takes a minute (the full run and CI's zoo step run it)")
	}
	variants := append(append([]string{}, StudyActivations...), "plain", "skip", "se", "skip_se")
	for _, v := range variants {
		t.Run(v, func(t *testing.T) {
			var build func(h, w int) (*graph.Graph, error)
			if v == "plain" || v == "skip" || v == "se" || v == "skip_se" {
				build = func(h, w int) (*graph.Graph, error) { return StudyBlockNet(v, h, w) }
			} else {
				build = func(h, w int) (*graph.Graph, error) { return StudyActivationNet(v, h, w) }
			}
			dir := filepath.Join("..", "testdata", "study", v)
			raw, err := os.ReadFile(filepath.Join(dir, "spec.json"))
			if err != nil {
				t.Skipf("no golden set (%v): run tools/reference/make_zoo.sh", err)
			}
			var spec struct {
				Params int64 `json:"params"`
				MACs   int64 `json:"macs_224"`
			}
			if err := json.Unmarshal(raw, &spec); err != nil {
				t.Fatal(err)
			}
			g224, err := build(224, 224)
			if err != nil {
				t.Fatal(err)
			}
			if g224.Params() != spec.Params || g224.MACs() != spec.MACs {
				t.Errorf("params %d MACs %d, the reference has %d and %d", g224.Params(), g224.MACs(), spec.Params, spec.MACs)
			}
			x, err := npy.ReadFile(filepath.Join(dir, "input.npy"))
			if err != nil {
				t.Fatal(err)
			}
			want, err := npy.ReadFile(filepath.Join(dir, "logits.npy"))
			if err != nil {
				t.Fatal(err)
			}
			sd, err := pth.LoadFile(filepath.Join(dir, "state_dict.pth"))
			if err != nil {
				t.Fatal(err)
			}
			g, err := build(x.Shape[2], x.Shape[3])
			if err != nil {
				t.Fatal(err)
			}
			checkLogits(t, g, sd, x, want, 1e-4, 1e-4)
		})
	}
}
