package imageproc

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// TestBicubicGolden: ResizeFilter(..., bicubic) is PIL's Image.BICUBIC,
// bit for bit, down- and upsampling (testdata/make_bicubic_golden.py).
func TestBicubicGolden(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("testdata", "bicubic_cases.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cs struct {
		Cases []struct {
			Image string
			W, H  int
			Npy   string
		}
	}
	if err := json.Unmarshal(raw, &cs); err != nil || len(cs.Cases) == 0 {
		t.Fatalf("cases: %v", err)
	}
	for _, c := range cs.Cases {
		t.Run(fmt.Sprintf("%s_%dx%d", c.Image, c.W, c.H), func(t *testing.T) {
			img, err := DecodeFile(filepath.Join("testdata", "images", c.Image), 1<<30)
			if err != nil {
				t.Fatal(err)
			}
			want, err := readNpy(filepath.Join("testdata", "golden", c.Npy))
			if err != nil {
				t.Fatal(err)
			}
			got := ToImage8(img, false).ResizeFilter(c.W, c.H, true)
			if len(got.Pix) != len(want.U8) {
				t.Fatalf("%d values, want %d", len(got.Pix), len(want.U8))
			}
			nd := 0
			for i, v := range want.U8 {
				if got.Pix[i] != v {
					nd++
				}
			}
			if nd > 0 {
				t.Errorf("%d of %d values differ from PIL's", nd, len(want.U8))
			}
			// And it is not the bilinear filter.
			bl := ToImage8(img, false).Resize(c.W, c.H)
			same := 0
			for i := range bl.Pix {
				if bl.Pix[i] == got.Pix[i] {
					same++
				}
			}
			if same == len(bl.Pix) {
				t.Error("bicubic equals bilinear")
			}
		})
	}
}
