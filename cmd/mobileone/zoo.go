package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/mobileone-go/mobileone"
	"github.com/mobileone-go/mobileone/arch"
	"github.com/mobileone-go/mobileone/format/npy"
	"github.com/mobileone-go/mobileone/format/pth"
	"github.com/mobileone-go/mobileone/format/safetensors"
	"github.com/mobileone-go/mobileone/graph"
	"github.com/mobileone-go/mobileone/imageproc"
	"github.com/mobileone-go/mobileone/internal/cpu"
	"github.com/mobileone-go/mobileone/internal/kernel"
	"github.com/mobileone-go/mobileone/model"
	"github.com/mobileone-go/mobileone/study"
	"github.com/mobileone-go/mobileone/tensor"
)

func layoutName(blocked bool) string {
	if blocked {
		return "graph, blocked where a kernel has it"
	}
	return "graph, nchw"
}

// zooSpec returns the comparison-zoo architecture -m names, or nil for the
// MobileOne variants s0..s4 (and the empty name), which keep their own
// commands' paths.
func zooSpec(name string) (*arch.Spec, error) {
	if name == "" {
		return nil, nil
	}
	if _, err := model.Variant(name); err == nil {
		return nil, nil
	}
	s, err := arch.Get(name)
	if err != nil {
		return nil, fmt.Errorf("unknown variant or model %q: a MobileOne variant s0..s4, or a model of the comparison zoo (%s)", name, strings.Join(arch.Names(), ", "))
	}
	return s, nil
}

// zooList prints every architecture with its parameters and MACs at 224.
func zooList(stdout io.Writer, asJSON bool) error {
	type row struct {
		Name   string `json:"name"`
		Params int64  `json:"params"`
		MACs   int64  `json:"macs"`
		Source string `json:"source"`
	}
	var rows []row
	for _, n := range arch.Names() {
		s, _ := arch.Get(n)
		g, err := s.Build(224, 224)
		if err != nil {
			return err
		}
		rows = append(rows, row{n, g.Params(), g.MACs(), s.Source})
	}
	if asJSON {
		return json.NewEncoder(stdout).Encode(rows)
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "model\tparams\tMMACs (224×224)\tsource")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%.1f\t%s\n", r.Name, commas(r.Params), float64(r.MACs)/1e6, r.Source)
	}
	return tw.Flush()
}

// zooInfo prints a zoo model's counts and its per-node table.
func zooInfo(s *arch.Spec, h, w int, stdout io.Writer, asJSON bool) error {
	g, err := s.Build(h, w)
	if err != nil {
		return err
	}
	type node struct {
		Kind   string `json:"kind"`
		Name   string `json:"name"`
		Output []int  `json:"output"`
		Params int64  `json:"params"`
		MACs   int64  `json:"macs"`
	}
	var nodes []node
	for _, n := range g.Nodes[1:] {
		nodes = append(nodes, node{n.Kind.String(), n.Name, g.Shapes[n.Out], n.NodeParams(), g.NodeMACs(n)})
	}
	if asJSON {
		return json.NewEncoder(stdout).Encode(struct {
			Model      string          `json:"model"`
			Source     string          `json:"source"`
			Input      [2]int          `json:"input"`
			Params     int64           `json:"params"`
			MACs       int64           `json:"macs"`
			Preprocess arch.Preprocess `json:"preprocess"`
			Nodes      []node          `json:"nodes"`
		}{s.Name, s.Source, [2]int{h, w}, g.Params(), g.MACs(), s.Preprocess, nodes})
	}
	fmt.Fprintf(stdout, "%s (%s)\n", s.Name, s.Source)
	fmt.Fprintf(stdout, "parameters:  %s\n", commas(g.Params()))
	fmt.Fprintf(stdout, "MACs at %dx%d: %.1f M\n", h, w, float64(g.MACs())/1e6)
	p := s.Preprocess
	fmt.Fprintf(stdout, "preprocessing: resize %d (%s), centre crop %d, mean %v, std %v\n", p.Resize, p.Interpolation, p.Crop, p.Mean, p.Std)
	if p.Note != "" {
		fmt.Fprintf(stdout, "note: %s\n", p.Note)
	}
	fmt.Fprintln(stdout)
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "node\tname\toutput\tparams\tMACs\t")
	for _, n := range nodes {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t\n", n.Kind, n.Name, tensor.ShapeString(n.Output), commas(n.Params), commas(n.MACs))
	}
	return tw.Flush()
}

// loadStateDict reads a torch.save state dict or a safetensors file.
func loadStateDict(path string) (map[string]*tensor.Tensor, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	head := make([]byte, 4)
	n, _ := f.Read(head)
	f.Close()
	if n == 4 && string(head) == "PK\x03\x04" {
		sd, err := pth.LoadFile(path)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		return stripModulePrefix(sd), nil
	}
	sf, err := safetensors.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%s: not a torch.save or safetensors file (%w)", path, err)
	}
	return stripModulePrefix(sf.Tensors), nil
}

// stripModulePrefix drops DataParallel's "module." from every key.
func stripModulePrefix(sd map[string]*tensor.Tensor) map[string]*tensor.Tensor {
	for k := range sd {
		if !strings.HasPrefix(k, "module.") {
			return sd
		}
	}
	out := make(map[string]*tensor.Tensor, len(sd))
	for k, v := range sd {
		out[strings.TrimPrefix(k, "module.")] = v
	}
	return out
}

// zooGraph builds s at h×w with the weights of path (random, seeded, when
// path is empty).
func zooGraph(s *arch.Spec, path string, h, w int, seed uint64) (*graph.Graph, error) {
	g, err := s.Build(h, w)
	if err != nil {
		return nil, err
	}
	if path == "" {
		g.InitRandom(seed)
		return g, nil
	}
	sd, err := loadStateDict(path)
	if err != nil {
		return nil, err
	}
	if err := g.Load(sd); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return g, nil
}

// zooPreprocess is the image transform of s's published weights.
func zooPreprocess(s *arch.Spec) imageproc.Params {
	p := s.Preprocess
	return imageproc.Params{ResizeShort: p.Resize, Crop: p.Crop, Mean: p.Mean, Std: p.Std, Bicubic: p.Interpolation == "bicubic"}
}

// zooPredict classifies images (or runs an .npy tensor) with a zoo model.
func zooPredict(s *arch.Spec, weights string, files []string, npyIn, npyOut string, top, maxPixels int, asJSON bool, stdout, stderr io.Writer) error {
	if weights == "" {
		return fmt.Errorf("-m %s needs -w: its weights as a state dict (in Python: torch.save(model.state_dict(), %q))", s.Name, s.Name+".pth")
	}
	if npyIn != "" {
		x, err := npy.ReadFile(npyIn)
		if err != nil {
			return err
		}
		if len(x.Shape) != 4 || x.Shape[1] != 3 {
			return fmt.Errorf("%s: input must have shape (N, 3, H, W), got %s", npyIn, tensor.ShapeString(x.Shape))
		}
		g, err := zooGraph(s, weights, x.Shape[2], x.Shape[3], 0)
		if err != nil {
			return err
		}
		p, err := graph.NewPlan(g, x.Shape[0])
		if err != nil {
			return err
		}
		y, err := p.Run(x.Data)
		if err != nil {
			return err
		}
		out, err := tensor.FromData(y, append([]int{x.Shape[0]}, g.OutputShape()...)...)
		if err != nil {
			return err
		}
		return npy.WriteFile(npyOut, out)
	}
	prep := zooPreprocess(s)
	if s.Preprocess.Note != "" {
		fmt.Fprintf(stderr, "note: %s: %s\n", s.Name, s.Preprocess.Note)
	}
	g, err := zooGraph(s, weights, prep.Crop, prep.Crop, 0)
	if err != nil {
		return err
	}
	p, err := graph.NewPlan(g, 1)
	if err != nil {
		return err
	}
	names := model.ImageNetClasses()
	var failed int
	enc := json.NewEncoder(stdout)
	for _, f := range files {
		img, err := imageproc.DecodeFile(f, maxPixels)
		if err != nil {
			fmt.Fprintf(stderr, "mobileone predict: %s\n", oneLine(err.Error()))
			failed++
			continue
		}
		x := imageproc.Preprocess(img, prep)
		logits, err := p.Run(x.Data)
		if err != nil {
			return err
		}
		if err := printPredictions(stdout, enc, asJSON, f, s.Name, mobileone.TopK(logits, names, top)); err != nil {
			return err
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d images failed", failed, len(files))
	}
	return nil
}

// zooBench times a zoo model on the graph engine (ModelBench method).
func zooBench(s *arch.Spec, weights string, batch, h, w, threads, rounds, runs, trim int, seed uint64, asJSON, profile bool, precision string, stdout io.Writer) error {
	g, err := zooGraph(s, weights, h, w, seed)
	if err != nil {
		return err
	}
	if precision == "" {
		precision = model.Float32
	}
	if g, err = model.PrecisionGraph(g, precision); err != nil {
		return err
	}
	kernel.SetThreads(threads)
	defer kernel.SetThreads(0)
	p, err := graph.NewPlan(g, batch)
	if err != nil {
		return err
	}
	debug.FreeOSMemory()
	x := make([]float32, batch*3*h*w)
	r := rand.New(rand.NewPCG(seed, 2))
	for i := range x {
		x[i] = float32(r.NormFloat64())
	}
	run := func() time.Duration {
		t0 := time.Now()
		if _, err := p.Run(x); err != nil {
			panic(err)
		}
		return time.Since(t0)
	}
	all, kept := study.ModelBench(run, study.Method{Rounds: rounds, Runs: runs, Trim: trim})
	var sum time.Duration
	for _, d := range kept {
		sum += d
	}
	res := benchResult{
		Variant: s.Name, Checkpoint: weights, Batch: batch, Height: h, Width: w, Threads: threads,
		Rounds: rounds, Runs: runs, Trim: trim,
		MinMS: ms(all[0]), MedianMS: ms(all[len(all)/2]), MeanMS: ms(sum) / float64(len(kept)),
		P90MS: ms(all[len(all)*9/10]), Kernels: kernel.Kernels(), Layout: layoutName(p.Blocked), Precision: precision, CPU: study.ThisMachine().CPU,
		Features: cpu.Detected.String(), GoVersion: runtime.Version(),
	}
	res.ImagesPerS = float64(batch) / (res.MedianMS / 1e3)
	res.GFLOPS = 2 * float64(g.MACs()) * float64(batch) / (res.MinMS * 1e6)
	var prof []model.LayerTime
	if profile {
		p.Profile = true
		for i := 0; i < max(runs, 20); i++ {
			run()
		}
		for k, n := range g.Nodes[1:] {
			prof = append(prof, model.LayerTime{Name: n.Kind.String() + " " + n.Name, MACs: g.NodeMACs(n) * int64(batch), Time: p.Times[k] / time.Duration(p.Runs)})
		}
		res.Layers = prof
	}
	if asJSON {
		return json.NewEncoder(stdout).Encode(res)
	}
	defer printProfile(stdout, prof)
	fmt.Fprintf(stdout, "%s (graph engine, %s), batch %d, %dx%d, %d threads\n", s.Name, precision, batch, h, w, threads)
	fmt.Fprintf(stdout, "kernels: %s; CPU: %s (%s)\n", res.Kernels, res.CPU, res.Features)
	if len(p.Unplanned) > 0 {
		fmt.Fprintf(stdout, "on reference code (slow): %s\n", strings.Join(p.Unplanned, ", "))
	}
	fmt.Fprintf(stdout, "%d rounds x %d runs, trim %d: min %.3f ms  median %.3f ms  mean %.3f ms  p90 %.3f ms\n",
		rounds, runs, trim, res.MinMS, res.MedianMS, res.MeanMS, res.P90MS)
	fmt.Fprintf(stdout, "%.1f images/s at the median, %.1f GFLOP/s at the minimum\n", res.ImagesPerS, res.GFLOPS)
	return nil
}
