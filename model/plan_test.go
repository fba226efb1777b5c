package model

import (
	"os"
	"strings"
	"testing"

	"github.com/mobileone-go/mobileone/internal/kernel"
)

// The planned engine computes what the layer-by-layer model computes, for
// zoo and custom configurations, batch > 1 and odd sizes, and allocates
// nothing per run.
func TestPlanMatchesForward(t *testing.T) {
	s0, _ := Variant("s0")
	s4, _ := Variant("s4")
	tests := []struct {
		cfg     Config
		n, h, w int
	}{
		{s0, 1, 64, 64},
		{s4, 2, 45, 57},
		{Config{Name: "gray", Channels: [5]int{8, 8, 16, 16, 24}, Blocks: [4]int{1, 2, 1, 1}, K: 3, SEPairs: [4]int{0, 1, 0, 1}, NumClasses: 10, InChannels: 1, StemStride: 1}, 3, 28, 28},
		{Config{Name: "backbone", Channels: [5]int{16, 16, 32, 32, 64}, Blocks: [4]int{1, 1, 2, 1}, K: 2, InChannels: 3, StemStride: 2}, 2, 33, 31},
	}
	for _, tc := range tests {
		for _, layout := range []string{LayoutBlocked, LayoutNCHW} {
			t.Run(tc.cfg.Name+"/"+layout, func(t *testing.T) {
				m, err := New(tc.cfg, false)
				if err != nil {
					t.Fatal(err)
				}
				m.InitRandom(11)
				f := m.Fuse()
				x := randInput(5, tc.n, tc.cfg.InChannels, tc.h, tc.w)
				want, err := f.Forward(x)
				if err != nil {
					t.Fatal(err)
				}
				p, err := NewPlanLayout(m, tc.n, tc.h, tc.w, layout) // fuses internally
				if err != nil {
					t.Fatal(err)
				}
				if p.Layout != layout {
					t.Errorf("plan layout %q, want %q", p.Layout, layout)
				}
				got, err := p.Run(x.Data)
				if err != nil {
					t.Fatal(err)
				}
				if len(got) != len(want.Data) {
					t.Fatalf("plan gives %d values, forward %d", len(got), len(want.Data))
				}
				if d := maxRelDiff(got, want.Data); d > 1e-5 {
					t.Errorf("plan vs forward: max rel diff %.3g", d)
				}
				if _, err := p.Run(x.Data[1:]); err == nil {
					t.Error("a short input must be an error")
				}
				if !raceEnabled {
					if a := testing.AllocsPerRun(5, func() { p.Run(x.Data) }); a != 0 {
						t.Errorf("Run allocates %.1f times per call, want 0", a)
					}
				}
				p.Profile = true
				p.Run(x.Data)
				// One entry per layer, or per group of layers run as one op
				// (names joined with "+"), then the head.
				prof := p.Profiled()
				var names []string
				for _, lt := range prof[:len(prof)-1] {
					names = append(names, strings.Split(lt.Name, "+")...)
					if lt.MACs <= 0 {
						t.Errorf("profile entry %+v", lt)
					}
				}
				var blocks []string
				for _, nb := range m.Blocks() {
					blocks = append(blocks, nb.Name)
				}
				if strings.Join(names, ",") != strings.Join(blocks, ",") || prof[len(prof)-1].Name != "head" {
					t.Errorf("profile names %v, want the blocks %v then head", names, blocks)
				}
				if layout == LayoutBlocked && os.Getenv("MOBILEONE_STEMDW") != "0" && strings.HasPrefix(tc.cfg.Name, "s") && prof[0].Name != "stage0+stage1.0" {
					t.Errorf("S0–S4 blocked: first profile entry %q, want the fused stage0+stage1.0", prof[0].Name)
				}
			})
		}
	}
}

// A batch of more images than threads runs on one, two and three threads
// (images in parallel lanes), and every image gets its own logits, run
// after run, bit-identical to the same image run alone.
func TestPlanBatchThreads(t *testing.T) {
	cfg := Config{Name: "small", Channels: [5]int{16, 16, 32, 32, 48}, Blocks: [4]int{1, 1, 2, 1}, K: 2,
		SEPairs: [4]int{0, 0, 1, 1}, NumClasses: 7, InChannels: 3, StemStride: 2}
	m, err := New(cfg, false)
	if err != nil {
		t.Fatal(err)
	}
	m.InitRandom(3)
	const n = 9
	x := randInput(9, n, 3, 30, 34)
	want, err := m.Fuse().Forward(x)
	if err != nil {
		t.Fatal(err)
	}
	defer kernel.SetThreads(0)
	for _, threads := range []int{1, 2, 3} {
		kernel.SetThreads(threads)
		p, err := NewPlanLayout(m, n, 30, 34, LayoutBlocked)
		if err != nil {
			t.Fatal(err)
		}
		one, err := NewPlanLayout(m, 1, 30, 34, LayoutBlocked)
		if err != nil {
			t.Fatal(err)
		}
		per, out := 3*30*34, p.Outputs()
		for run := 0; run < 3; run++ {
			got, err := p.Run(x.Data)
			if err != nil {
				t.Fatal(err)
			}
			if d := maxRelDiff(got, want.Data); d > 1e-5 {
				t.Errorf("threads %d run %d: max rel diff %.3g", threads, run, d)
			}
			for i := 0; i < n; i++ {
				alone, _ := one.Run(x.Data[i*per : (i+1)*per])
				for j := range alone {
					if got[i*out+j] != alone[j] {
						t.Fatalf("threads %d run %d image %d: logit %d is %v in the batch, %v alone", threads, run, i, j, got[i*out+j], alone[j])
					}
				}
			}
		}
	}
}
