package zoo

import (
	"bytes"
	"testing"

	"github.com/mobileone-go/mobileone/imageproc"
)

// The built-in model loads, is fused, takes grey images and names the ten
// Fashion-MNIST classes; it classifies the built-in test images.
func TestDefaultModel(t *testing.T) {
	m, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	names := m.ClassNames()
	if !m.IsFused() || m.Config.InChannels != 1 || len(names) != 10 || names[9] != "Ankle boot" {
		t.Fatalf("built-in model: fused=%v in=%d classes=%v", m.IsFused(), m.Config.InChannels, names)
	}
	samples := Samples()
	if len(samples) != 10 {
		t.Fatalf("%d samples, want 10", len(samples))
	}
	right := 0
	for _, s := range samples {
		img, _, err := imageproc.Decode(bytes.NewReader(s.PNG), 0)
		if err != nil {
			t.Fatal(err)
		}
		p, err := m.Classify(img, 1)
		if err != nil {
			t.Fatal(err)
		}
		if p[0].Label == names[int(s.Name[0]-'0')] {
			right++
		}
	}
	t.Logf("%d of 10 built-in samples classified correctly", right)
	if right < minSamplesRight {
		t.Errorf("only %d of 10 built-in samples classified correctly, want at least %d", right, minSamplesRight)
	}
}
