package model

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/mobileone-go/mobileone/tensor"
)

func randInput(seed uint64, shape ...int) *tensor.Tensor {
	r := rand.New(rand.NewPCG(seed, 1))
	x := tensor.New(shape...)
	for i := range x.Data {
		x.Data[i] = float32(r.NormFloat64())
	}
	return x
}

// maxRelDiff returns max|a-b| / max(1, max|b|).
func maxRelDiff(a, b []float32) float64 {
	var d, s float64
	for i := range a {
		d = math.Max(d, math.Abs(float64(a[i])-float64(b[i])))
		s = math.Max(s, math.Abs(float64(b[i])))
	}
	return d / math.Max(1, s)
}

// Fused and unfused networks agree, per block and per model, for every zoo
// variant (S0's k=4 branches and skip BNs, S4's SE blocks) and for custom
// configurations.
func TestFuseMatchesUnfused(t *testing.T) {
	cfgs := []Config{}
	for _, z := range Zoo {
		cfgs = append(cfgs, z)
	}
	cfgs = append(cfgs,
		Config{Name: "gray-stride1", Channels: [5]int{8, 8, 16, 16, 24}, Blocks: [4]int{1, 2, 1, 1}, K: 3, SEPairs: [4]int{0, 1, 0, 1}, NumClasses: 10, InChannels: 1, StemStride: 1},
		Config{Name: "backbone", Channels: [5]int{16, 16, 32, 32, 64}, Blocks: [4]int{1, 1, 2, 1}, K: 2, NumClasses: 0, InChannels: 3, StemStride: 2},
	)
	for _, cfg := range cfgs {
		t.Run(cfg.Name, func(t *testing.T) {
			if testing.Short() && cfg.Name != "s0" && cfg.Name != "s4" && len(cfg.Name) == 2 {
				t.Skip("short mode: only s0, s4 and custom configs")
			}
			m, err := New(cfg, false)
			if err != nil {
				t.Fatal(err)
			}
			m.InitRandom(7)
			f := m.Fuse()
			if !f.IsFused() || m.IsFused() {
				t.Fatal("Fuse must return a fused model and leave the receiver unfused")
			}
			if got, want := f.Params(), cfg.Params(); got != want {
				t.Errorf("fused params %d, want %d", got, want)
			}
			size := 64
			if cfg.InChannels == 1 {
				size = 28
			}
			x := randInput(3, 1, cfg.InChannels, size, size+8)
			// Per block: feed each block the unfused activation.
			h := x
			for i, nb := range m.Blocks() {
				fb := f.Blocks()[i].Block
				want := nb.Block.Forward(h)
				got := fb.Forward(h)
				if d := maxRelDiff(got.Data, want.Data); d > 1e-5 {
					t.Errorf("block %s: fused vs unfused max rel diff %.3g", nb.Name, d)
				}
				h = want
			}
			want, err := m.Forward(x)
			if err != nil {
				t.Fatal(err)
			}
			got, err := f.Forward(x)
			if err != nil {
				t.Fatal(err)
			}
			if d := maxRelDiff(got.Data, want.Data); d > 1e-4 {
				t.Errorf("model: fused vs unfused max rel diff %.3g", d)
			}
		})
	}
}

func TestStateDictRoundTrip(t *testing.T) {
	cfg, _ := Variant("s4")
	for _, fused := range []bool{false, true} {
		m, _ := New(cfg, fused)
		m.InitRandom(1)
		keys, sd := m.StateDict()
		m2, _ := New(cfg, fused)
		if err := m2.LoadStateDict(sd); err != nil {
			t.Fatal(err)
		}
		_, sd2 := m2.StateDict()
		for _, k := range keys {
			if maxRelDiff(sd[k].Data, sd2[k].Data) != 0 {
				t.Fatalf("key %s differs after round trip", k)
			}
		}
		got, isFused, err := DetectConfig(sd)
		if err != nil {
			t.Fatal(err)
		}
		if got.Name != "s4" || isFused != fused || !got.SameArchitecture(cfg) {
			t.Errorf("DetectConfig = %+v fused=%v, want s4 fused=%v", got, isFused, fused)
		}
		// timm naming round trip.
		tk, tsd := ToNaming(keys, sd, NamingTimm)
		if tk[0] == keys[0] {
			t.Errorf("timm naming left %q unchanged", keys[0])
		}
		back, naming, err := CanonicalKeys(tsd)
		if err != nil || naming != NamingTimm {
			t.Fatalf("CanonicalKeys: %v, naming %s", err, naming)
		}
		if err := m2.LoadStateDict(back); err != nil {
			t.Fatal(err)
		}
	}
}

func TestLoadStateDictErrors(t *testing.T) {
	cfg, _ := Variant("s0")
	m, _ := New(cfg, false)
	_, sd := m.StateDict()
	tests := []struct {
		name   string
		mutate func(map[string]*tensor.Tensor)
		want   string
	}{
		{"missing", func(sd map[string]*tensor.Tensor) { delete(sd, "stage1.1.rbr_skip.weight") }, `missing key "stage1.1.rbr_skip.weight"`},
		{"unexpected", func(sd map[string]*tensor.Tensor) { sd["stage9.extra"] = tensor.New(1) }, `unexpected key "stage9.extra"`},
		{"misshaped", func(sd map[string]*tensor.Tensor) { sd["linear.bias"] = tensor.New(10) }, `"linear.bias" has shape (10) in the checkpoint but the model (s0) expects (1000)`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := map[string]*tensor.Tensor{}
			for k, v := range sd {
				c[k] = v
			}
			tc.mutate(c)
			err := m.LoadStateDict(c)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want it to contain %s", err, tc.want)
			}
		})
	}
}
