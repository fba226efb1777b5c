package model

import (
	"github.com/mobileone-go/mobileone/internal/kernel"
	"strings"
	"testing"
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
				if layout == LayoutBlocked && stemDWFusion && strings.HasPrefix(tc.cfg.Name, "s") && prof[0].Name != "stage0+stage1.0" {
					t.Errorf("S0–S4 blocked: first profile entry %q, want the fused stage0+stage1.0", prof[0].Name)
				}
			})
		}
	}
}

// A batch of more images than threads runs on one, two and three threads,
// and every image gets its own logits, run after run; the last layer runs
// for all of a lane's images at once, bit-identical to running it image by
// image.
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
	for _, threads := range []int{1, 2, 3} {
		kernel.SetThreads(threads)
		p, err := NewPlanLayout(m, n, 30, 34, LayoutBlocked)
		if err != nil {
			t.Fatal(err)
		}
		batchFrom = "off"
		single, err := NewPlanLayout(m, n, 30, 34, LayoutBlocked)
		batchFrom = ""
		if err != nil {
			t.Fatal(err)
		}
		batchFrom = "stage3.0"
		early, err := NewPlanLayout(m, n, 30, 34, LayoutBlocked)
		batchFrom = ""
		if err != nil {
			t.Fatal(err)
		}
		// The same in segments of 2 and 3 images (the sizes L2 gives
		// the real models' layers).
		batchFrom = "stage3.0"
		chunked, err := NewPlanLayout(m, n, 30, 34, LayoutBlocked)
		batchFrom = ""
		if err != nil {
			t.Fatal(err)
		}
		mid := (chunked.tail + len(chunked.layers)) / 2
		chunked.segs = []planSeg{{chunked.tail, mid, 2}, {mid, len(chunked.layers), 3}}
		if err != nil {
			t.Fatal(err)
		}
		if p.tail < 0 || single.tail != -1 || early.tail < 0 || p.layers[early.tail].name != "stage3.0" {
			t.Fatalf("group run from layer %d (%d off, %d from stage3.0), want one (-1, stage3.0)", p.tail, single.tail, early.tail)
		}
		ref, err := single.Run(x.Data)
		if err != nil {
			t.Fatal(err)
		}
		for run := 0; run < 6; run++ {
			q := []*Plan{p, early, chunked}[run/2]
			got, err := q.Run(x.Data)
			if err != nil {
				t.Fatal(err)
			}
			if q.lanes[0].grpA == nil {
				t.Errorf("threads %d: the lanes have no group buffers", threads)
			}
			if d := maxRelDiff(got, want.Data); d > 1e-5 {
				t.Errorf("threads %d run %d: max rel diff %.3g", threads, run, d)
			}
			for j := range got {
				if got[j] != ref[j] {
					t.Fatalf("threads %d run %d: logit %d is %v with the group run, %v without", threads, run, j, got[j], ref[j])
				}
			}
		}
	}
	kernel.SetThreads(0)
}
