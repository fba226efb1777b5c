package arch

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/mobileone-go/mobileone/model"
)

// segDir holds the DeepLabV3-MobileOne golden sets, written by
// tools/reference/seg_ref.py (git-ignored; CI generates them).
var segDir = filepath.Join("..", "testdata", "seg")

// TestSegLogits: DeepLabV3 on MobileOne, given the PyTorch reference's
// fused checkpoint (torchvision's DeepLabHead under classifier., the
// authors' keys under backbone.) strictly by key name, computes its logits
// at the input size through the reference executor and the plan (every
// node planned): S0 at output stride 16 with torchvision's rates, and a
// small backbone at output stride 8 (dilated depthwise blocks) with rates
// whose taps fall partly, or for whole rows, outside the map.
func TestSegLogits(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the reference executor on S0's head takes seconds (the full run and CI's zoo step run it)")
	}
	for _, name := range []string{"s0_os16", "tiny_os8"} {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join(segDir, name)
			if _, err := os.Stat(filepath.Join(dir, "state_dict.pth")); errors.Is(err, fs.ErrNotExist) {
				t.Skipf("golden set %s is absent: generate it with tools/reference/seg_ref.py (see tools/reference/README.md)", dir)
			}
			raw, err := os.ReadFile(filepath.Join(dir, "spec.json"))
			if err != nil {
				t.Fatal(err)
			}
			var spec struct {
				Config       model.Config `json:"config"`
				OutputStride int          `json:"output_stride"`
				Rates        []int        `json:"rates"`
				Classes      int          `json:"classes"`
				Params       int64        `json:"params"`
			}
			if err := json.Unmarshal(raw, &spec); err != nil {
				t.Fatal(err)
			}
			x, want := readNpy(t, dir, "input.npy"), readNpy(t, dir, "logits.npy")
			g, err := DeepLabV3MobileOne(spec.Config, spec.Classes, spec.OutputStride, spec.Rates, x.Shape[2], x.Shape[3])
			if err != nil {
				t.Fatal(err)
			}
			if g.Params() != spec.Params {
				t.Errorf("%d parameters, PyTorch's model has %d", g.Params(), spec.Params)
			}
			checkLogits(t, g, readPth(t, dir, "state_dict.pth"), x, want, zooTol, zooTol)
		})
	}
}
