package model

import "testing"

// The spec's table (paper and authors' release): learnable parameters of the
// fused and train-time networks, and fused MACs at 224×224 in millions.
func TestZooTable(t *testing.T) {
	tests := []struct {
		name        string
		fused       int
		train       int
		macsMillion float64
	}{
		{"s0", 2078504, 5293272, 275.1},
		{"s1", 4764840, 4825192, 825.1},
		{"s2", 7808168, 7884648, 1298.4},
		{"s3", 10078312, 10170600, 1895.8},
		{"s4", 14838352, 14951248, 2979.3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := Variant(tc.name)
			if err != nil {
				t.Fatal(err)
			}
			if got := cfg.Params(); got != tc.fused {
				t.Errorf("fused params = %d, want %d", got, tc.fused)
			}
			if got := cfg.TrainParams(); got != tc.train {
				t.Errorf("train-time params = %d, want %d", got, tc.train)
			}
			macs := float64(cfg.MACs(224, 224)) / 1e6
			if d := macs - tc.macsMillion; d > 0.05 || d < -0.05 {
				t.Errorf("MACs = %.3f M, want %.1f M", macs, tc.macsMillion)
			}
			// The built models count the same.
			for _, fused := range []bool{true, false} {
				m, err := New(cfg, fused)
				if err != nil {
					t.Fatal(err)
				}
				want := tc.train
				if fused {
					want = tc.fused
				}
				if got := m.Params(); got != want {
					t.Errorf("model (fused=%v) params = %d, want %d", fused, got, want)
				}
			}
		})
	}
}
