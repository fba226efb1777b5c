package main

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/mobileone-go/mobileone/study"
)

const studyUsage = `usage: mobileone study correlation|activations|blocks [--threads 1,2] [--size 224]
                       [-o DIR] [--peer ort] [--models a,b,...] [--rounds 5 --runs 10 --trim 2]

The paper's latency studies, measured on this machine, every network on the
same engine (the graph planner, random weights):

  correlation   every model of the comparison zoo ("mobileone info --list"):
                a table of parameters, MACs and min/median latency per thread
                count, the Spearman rank correlation of latency with MACs and
                with parameters (95 % bootstrap interval), and scatter plots
                (log axes, labelled points; PNG and SVG). MobileOne, Table 1a.
  activations   the 30-layer CNN identical but for its activation: ReLU, GELU,
                SE-ReLU, Hard-Swish, Dynamic Shift-Max, DynamicReLU-A and -B;
                table (with each variant's MACs) and bar plot. Table 2.
  blocks        the same CNN plain, with skip connections, with SE, with both.
                Table 3b.

--peer ort runs the same exported graphs in ONNX Runtime (node and
onnxruntime-node, as bench/peers/run.sh --install-only installs them) and
reports both engines side by side: a finding must hold on both to be one.
Results go to DIR (default study-NAME/): NAME.md, NAME.csv, NAME.json and the
plots; progress is printed as each network finishes.`

func cmdStudy(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "-help") {
			fmt.Fprintln(stdout, studyUsage)
			return nil
		}
		fmt.Fprintln(stderr, studyUsage)
		return errors.New("name a study: correlation, activations or blocks")
	}
	which := args[0]
	switch which {
	case "correlation", "activations", "blocks":
	default:
		return fmt.Errorf("unknown study %q (want correlation, activations or blocks)", which)
	}
	fs := newFlags("study "+which, studyUsage, stderr)
	threads := fs.String("threads", "1,2", "thread `counts`, comma-separated")
	size := fs.String("size", "224", "input size `H` or HxW")
	out := fs.String("o", "", "output `folder` (default study-NAME)")
	peer := fs.String("peer", "", "also run the exported graphs in `ort` (ONNX Runtime)")
	ortScript := fs.String("ort-script", "bench/peers/ort_bench.js", "ONNX Runtime's benchmark `script` (with --peer ort)")
	models := fs.String("models", "", "correlation: only these zoo `models`, comma-separated")
	rounds := fs.Int("rounds", 5, "rounds")
	runs := fs.Int("runs", 10, "timed runs per round")
	trim := fs.Int("trim", 2, "fastest and slowest runs dropped per round")
	bootstrap := fs.Int("bootstrap", 2000, "bootstrap resamples for the correlations' intervals")
	rest, err := parse(fs, args[1:])
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return fmt.Errorf("unexpected argument %q", rest[0])
	}
	h, w, err := parseSize(*size)
	if err != nil {
		return err
	}
	opts := study.Options{H: h, W: w, Batch: 1, Method: study.Method{Rounds: *rounds, Runs: *runs, Trim: *trim},
		Out: *out, Log: stderr, Seed: 1, Bootstrap: *bootstrap}
	if err := opts.Method.Check(); err != nil {
		return err
	}
	if *bootstrap < 100 {
		return fmt.Errorf("--bootstrap %d: want at least 100 resamples", *bootstrap)
	}
	for _, s := range strings.Split(*threads, ",") {
		t, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || t < 1 || t > 1024 {
			return fmt.Errorf("--threads %q: want thread counts such as 1,2", *threads)
		}
		opts.Threads = append(opts.Threads, t)
	}
	if opts.Out == "" {
		opts.Out = "study-" + which
	}
	switch *peer {
	case "":
	case "ort":
		if opts.Peer, err = study.FindORT(*ortScript); err != nil {
			return err
		}
	default:
		return fmt.Errorf("--peer %q: the one peer is ort", *peer)
	}
	if *models != "" {
		if which != "correlation" {
			return errors.New("--models is for the correlation study")
		}
		opts.Models = strings.Split(*models, ",")
		if len(opts.Models) < 3 {
			return errors.New("--models: a rank correlation needs at least 3 models")
		}
	}
	m := study.ThisMachine()
	fmt.Fprintf(stderr, "study %s on %s (%d cores, %s), threads %v, %d×%d, %s\n", which, m.CPU, m.Cores, m.Features, opts.Threads, h, w, m.Go)
	switch which {
	case "correlation":
		rep, err := study.Correlation(opts)
		if err != nil {
			return err
		}
		for _, e := range []string{"ours", "onnxruntime"} {
			for _, t := range opts.Threads {
				if c, ok := rep.Correlations[e][t]; ok {
					fmt.Fprintf(stdout, "%-12s %d thread(s): Spearman ρ(latency, MACs) = %.2f [%.2f, %.2f]   ρ(latency, params) = %.2f [%.2f, %.2f]\n",
						e, t, c["macs"].Rho, c["macs"].Lo, c["macs"].Hi, c["params"].Rho, c["params"].Lo, c["params"].Hi)
				}
			}
		}
	case "activations":
		if _, err := study.Activations(opts); err != nil {
			return err
		}
	case "blocks":
		if _, err := study.Blocks(opts); err != nil {
			return err
		}
	}
	fmt.Fprintf(stdout, "wrote %s/%s.md (table), .csv, .json and the plots\n", opts.Out, which)
	return nil
}
