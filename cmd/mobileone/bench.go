package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"runtime/debug"
	"text/tabwriter"
	"time"

	"github.com/mobileone-go/mobileone"
	"github.com/mobileone-go/mobileone/internal/cpu"
	"github.com/mobileone-go/mobileone/internal/kernel"
	"github.com/mobileone-go/mobileone/model"
	"github.com/mobileone-go/mobileone/quant"
	"github.com/mobileone-go/mobileone/study"
)

const benchUsage = `usage: mobileone bench (-w CKPT | -m s0..s4|MODEL [--random-seed N]) [--threads N] [--batch B]
                       [--size H[xW]] [--rounds 20 --runs 50 --trim 10] [--layout blocked|nchw]
                       [--precision float32|bf16] [--json] [--profile]
       mobileone bench --peak [--threads N] [--json]

Measures the latency of the fused network with the authors' ModelBench method:
per round, one warm-up run, then --runs timed runs, sorted, and the --trim
fastest and slowest dropped. Prints the minimum, median and p90 over all timed
runs and the trimmed mean, plus the kernels chosen and the CPU features seen.
Without -w the weights are random (seeded). MOBILEONE_KERNELS=purego|avx2|avx512
forces a kernel family. --layout picks the activation layout (default: the
channel-blocked engine with SIMD kernels, NCHW with the pure-Go ones; the
other one for comparison). --precision bf16 times bfloat16 inference (see
predict --help). --profile adds the time of every layer.

--peak measures this CPU's peak multiply-accumulate rate for each instruction
family the kernels use (float32 FMA, exact int16 pairs for int8, u8×s8 with
saturation), on --threads cores at once: the ceilings to compare kernels with.

-m MODEL times a model of the comparison zoo ("mobileone info --list") on the
graph engine that runs them all (random weights, or -w with its state dict).`

type benchResult struct {
	Variant    string            `json:"variant"`
	Checkpoint string            `json:"checkpoint,omitempty"`
	Batch      int               `json:"batch"`
	Height     int               `json:"height"`
	Width      int               `json:"width"`
	Threads    int               `json:"threads"`
	Rounds     int               `json:"rounds"`
	Runs       int               `json:"runs"`
	Trim       int               `json:"trim"`
	MinMS      float64           `json:"min_ms"`
	MedianMS   float64           `json:"median_ms"`
	MeanMS     float64           `json:"mean_ms"`
	P90MS      float64           `json:"p90_ms"`
	ImagesPerS float64           `json:"images_per_s"`
	GFLOPS     float64           `json:"gflops"`
	Kernels    string            `json:"kernels"`
	Layout     string            `json:"layout"`
	Precision  string            `json:"precision"`
	CPU        string            `json:"cpu"`
	Features   string            `json:"cpu_features"`
	GoVersion  string            `json:"go"`
	Layers     []model.LayerTime `json:"layers,omitempty"`
}

func cmdBench(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("bench", benchUsage, stderr)
	var ck ckptFlags
	var size string
	ck.register(fs, false)
	ck.registerPrecision(fs)
	seed := fs.Uint64("random-seed", 1, "seed of the random weights used without -w")
	threads := fs.Int("threads", runtime.GOMAXPROCS(0), "threads the kernels may use")
	batch := fs.Int("batch", 1, "images per run")
	fs.StringVar(&size, "size", "224", "input size `H` or HxW")
	rounds := fs.Int("rounds", 20, "rounds")
	runs := fs.Int("runs", 50, "timed runs per round")
	trim := fs.Int("trim", 10, "fastest and slowest runs dropped per round for the trimmed mean")
	asJSON := fs.Bool("json", false, "print one JSON object")
	profile := fs.Bool("profile", false, "also print the time of every layer")
	peak := fs.Bool("peak", false, "measure the CPU's peak rate per instruction family instead (no model)")
	layout := fs.String("layout", "", "activation layout: blocked or nchw (default: "+model.DefaultLayout()+" here)")
	rest, err := parse(fs, args)
	if err != nil {
		return err
	}
	weights, variant := ck.weights, ck.variant
	if len(rest) > 0 {
		return fmt.Errorf("unexpected argument %q", rest[0])
	}
	if *peak {
		if weights != "" || variant != "" || ck.precision != "" {
			return errors.New("--peak measures the CPU, not a model: drop -w, -m and --precision")
		}
		if *threads < 1 || *threads > 1024 {
			return fmt.Errorf("--threads must be 1..1024, got %d", *threads)
		}
		return benchPeak(*threads, *asJSON, stdout)
	}
	h, w, err := parseSize(size)
	if err != nil {
		return err
	}
	switch {
	case *threads < 1 || *threads > 1024:
		return fmt.Errorf("--threads must be 1..1024, got %d", *threads)
	case *batch < 1 || *batch > 4096:
		return fmt.Errorf("--batch must be 1..4096, got %d", *batch)
	case *rounds < 1 || *runs < 1:
		return errors.New("--rounds and --runs must be at least 1")
	case *trim < 0 || 2**trim >= *runs:
		return fmt.Errorf("--trim %d must leave runs: need 2*trim < runs (%d)", *trim, *runs)
	}
	int8File := weights != "" && quant.IsInt8(weights)
	if err := ck.checkPrecision(int8File); err != nil {
		return err
	}
	if int8File {
		sizeSet := false
		fs.Visit(func(f *flag.Flag) { sizeSet = sizeSet || f.Name == "size" })
		return benchInt8(ck, *batch, h, w, *threads, *rounds, *runs, *trim, sizeSet, *asJSON, *seed, stdout)
	}
	if zs, err := graphSpec(variant, weights); err != nil {
		return err
	} else if zs != nil {
		return zooBench(zs, weights, *batch, h, w, *threads, *rounds, *runs, *trim, *seed, *asJSON, *profile, ck.precision, stdout)
	}
	var m *mobileone.Model
	switch {
	case weights != "":
		if err := ck.check(); err != nil {
			return err
		}
		if m, err = ck.load(mobileone.LoadOptions{}, false, stderr); err != nil {
			return err
		}
	case variant != "":
		cfg, err := model.Variant(variant)
		if err != nil {
			return err
		}
		if m, err = mobileone.New(cfg, true, *seed); err != nil { // random fused weights
			return err
		}
	default:
		fs.Usage()
		return errors.New("need -w CHECKPOINT or -m VARIANT")
	}
	kernel.SetThreads(*threads)
	defer kernel.SetThreads(0)
	plan, err := model.NewPlanWith(m.Model, *batch, h, w, model.PlanOptions{Layout: *layout, Precision: ck.precision})
	if err != nil {
		return err
	}
	debug.FreeOSMemory() // return what loading and packing left behind
	x := make([]float32, *batch*m.Config.InChannels*h*w)
	r := rand.New(rand.NewPCG(*seed, 2))
	for i := range x {
		x[i] = float32(r.NormFloat64())
	}
	run := func() time.Duration {
		t0 := time.Now()
		if _, err := plan.Run(x); err != nil {
			panic(err) // shapes were checked when planning
		}
		return time.Since(t0)
	}
	all, kept := study.ModelBench(run, study.Method{Rounds: *rounds, Runs: *runs, Trim: *trim})
	var sum time.Duration
	for _, d := range kept {
		sum += d
	}
	name := m.Config.Name
	if name == "" {
		name = "custom"
	}
	res := benchResult{
		Variant: name, Checkpoint: weights, Batch: *batch, Height: h, Width: w, Threads: *threads,
		Rounds: *rounds, Runs: *runs, Trim: *trim,
		MinMS: ms(all[0]), MedianMS: ms(all[len(all)/2]), MeanMS: ms(sum) / float64(len(kept)),
		P90MS: ms(all[len(all)*9/10]), Kernels: kernel.Kernels(), Layout: plan.Layout, Precision: plan.Precision, CPU: study.ThisMachine().CPU,
		Features: cpu.Detected.String(), GoVersion: runtime.Version(),
	}
	res.ImagesPerS = float64(*batch) / (res.MedianMS / 1e3)
	res.GFLOPS = 2 * float64(m.Config.MACs(h, w)) * float64(*batch) / (res.MinMS * 1e6)
	if *profile {
		plan.Profile = true
		for i := 0; i < max(*runs, 20); i++ {
			run()
		}
		res.Layers = plan.Profiled()
	}
	if *asJSON {
		return json.NewEncoder(stdout).Encode(res)
	}
	fmt.Fprintf(stdout, "MobileOne %s (fused, %s), batch %d, %dx%d, %d threads\n", name, plan.Precision, *batch, h, w, *threads)
	fmt.Fprintf(stdout, "kernels: %s, %s layout; CPU: %s (%s)\n", res.Kernels, res.Layout, res.CPU, res.Features)
	fmt.Fprintf(stdout, "%d rounds x %d runs, trim %d: min %.3f ms  median %.3f ms  mean %.3f ms  p90 %.3f ms\n",
		*rounds, *runs, *trim, res.MinMS, res.MedianMS, res.MeanMS, res.P90MS)
	fmt.Fprintf(stdout, "%.1f images/s at the median, %.1f GFLOP/s at the minimum\n", res.ImagesPerS, res.GFLOPS)
	if *profile {
		printProfile(stdout, res.Layers)
	}
	return nil
}

// printProfile prints per-layer times (nothing for none).
func printProfile(stdout io.Writer, layers []model.LayerTime) {
	if len(layers) == 0 {
		return
	}
	var total time.Duration
	for _, l := range layers {
		total += l.Time
	}
	fmt.Fprintln(stdout)
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "layer\tMMACs\tms\tGFLOP/s\tshare\t")
	for _, l := range layers {
		gf := 0.0
		if l.Time > 0 {
			gf = 2 * float64(l.MACs) / float64(l.Time)
		}
		fmt.Fprintf(tw, "%s\t%.2f\t%.3f\t%.1f\t%.1f%%\t\n", l.Name, float64(l.MACs)/1e6, ms(l.Time), gf, 100*float64(l.Time)/float64(max(total, 1)))
	}
	tw.Flush()
}

func ms(d time.Duration) float64 { return float64(d) / 1e6 }

// benchPeak prints kernel.PeakRates on threads cores.
func benchPeak(threads int, asJSON bool, stdout io.Writer) error {
	fams := kernel.PeakRates(threads, 400*time.Millisecond)
	if asJSON {
		type fam struct {
			Name   string  `json:"name"`
			Use    string  `json:"use"`
			GMACs  float64 `json:"gmac_per_s"`
			GFLOPs float64 `json:"gflop_per_s"`
		}
		res := struct {
			Threads  int    `json:"threads"`
			CPU      string `json:"cpu"`
			Features string `json:"cpu_features"`
			Families []fam  `json:"families"`
		}{Threads: threads, CPU: study.ThisMachine().CPU, Features: cpu.Detected.String(), Families: []fam{}}
		for _, f := range fams {
			res.Families = append(res.Families, fam{f.Name, f.Use, f.GMACs, 2 * f.GMACs})
		}
		return json.NewEncoder(stdout).Encode(res)
	}
	fmt.Fprintf(stdout, "peak multiply-accumulate rates, %d thread(s); CPU: %s (%s)\n", threads, study.ThisMachine().CPU, cpu.Detected.String())
	if len(fams) == 0 {
		fmt.Fprintln(stdout, "none: this build or CPU runs no assembly kernels (pure Go)")
		return nil
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "family\tGMAC/s\tGFLOP/s\tused by")
	for _, f := range fams {
		fmt.Fprintf(tw, "%s\t%.1f\t%.1f\t%s\n", f.Name, f.GMACs, 2*f.GMACs, f.Use)
	}
	return tw.Flush()
}
