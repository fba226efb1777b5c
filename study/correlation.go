package study

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/mobileone-go/mobileone/arch"
	"github.com/mobileone-go/mobileone/format/onnx"
	"github.com/mobileone-go/mobileone/graph"
	"github.com/mobileone-go/mobileone/internal/fsutil"
	"github.com/mobileone-go/mobileone/internal/stats"
)

// Options configure a study.
type Options struct {
	Threads []int  // thread counts, e.g. 1, 2
	H, W    int    // input size
	Batch   int    // images per run (1: latency)
	Method  Method // timing
	Models  []string
	// Peer, if set, also runs every graph in ONNX Runtime.
	Peer *ORT
	Out  string    // output folder
	Log  io.Writer // progress
	Seed uint64
	// Bootstrap resamples for the correlations' confidence intervals.
	Bootstrap int
}

// Row is one network's measurements.
type Row struct {
	Model  string         `json:"model"`
	Params int64          `json:"params"`
	MACs   int64          `json:"macs"`
	Ours   map[int]Timing `json:"ours"`           // by threads
	Peer   map[int]Timing `json:"peer,omitempty"` // ONNX Runtime, by threads
}

// Corr is a rank correlation with its confidence interval.
type Corr struct {
	Rho    float64 `json:"rho"`
	Lo, Hi float64
}

// CorrelationReport is the Table 1a study's result.
type CorrelationReport struct {
	Machine Machine `json:"machine"`
	Options struct {
		Threads []int  `json:"threads"`
		Size    [2]int `json:"size"`
		Method  Method `json:"method"`
		Peer    bool   `json:"peer"`
	} `json:"options"`
	Rows []Row `json:"rows"`
	// Correlations by engine ("ours", "onnxruntime"), threads and against
	// "macs" / "params", on the median latency.
	Correlations map[string]map[int]map[string]Corr `json:"correlations"`
}

// buildNet builds a zoo model with random weights.
func buildNet(name string, h, w int, seed uint64) (*graph.Graph, error) {
	s, err := arch.Get(name)
	if err != nil {
		return nil, err
	}
	g, err := s.Build(h, w)
	if err != nil {
		return nil, err
	}
	g.InitRandom(seed)
	return g, nil
}

// Correlation benchmarks every model of opts.Models (the whole zoo by
// default) and writes correlation.md, correlation.csv, correlation.json and
// the scatter plots into opts.Out.
func Correlation(opts Options) (*CorrelationReport, error) {
	if len(opts.Models) == 0 {
		opts.Models = arch.Names()
	}
	nets := make(map[string]func() (*graph.Graph, error))
	for _, m := range opts.Models {
		name := m
		if _, err := arch.Get(name); err != nil {
			return nil, err
		}
		nets[name] = func() (*graph.Graph, error) { return buildNet(name, opts.H, opts.W, opts.Seed) }
	}
	rows, err := measure(opts, opts.Models, nets)
	if err != nil {
		return nil, err
	}
	rep := &CorrelationReport{Machine: ThisMachine(), Rows: rows, Correlations: map[string]map[int]map[string]Corr{}}
	rep.Options.Threads, rep.Options.Size, rep.Options.Method, rep.Options.Peer = opts.Threads, [2]int{opts.H, opts.W}, opts.Method, opts.Peer != nil
	engines := []string{"ours"}
	if opts.Peer != nil {
		engines = append(engines, "onnxruntime")
	}
	for _, e := range engines {
		rep.Correlations[e] = map[int]map[string]Corr{}
		for _, t := range opts.Threads {
			var lat, macs, params []float64
			for _, r := range rows {
				tm, ok := r.Ours[t]
				if e != "ours" {
					tm, ok = r.Peer[t]
				}
				if !ok {
					continue // not exportable to ONNX
				}
				lat, macs, params = append(lat, tm.MedianMS), append(macs, float64(r.MACs)), append(params, float64(r.Params))
			}
			rep.Correlations[e][t] = map[string]Corr{}
			for what, xs := range map[string][]float64{"macs": macs, "params": params} {
				rho, err := stats.Spearman(lat, xs)
				if err != nil {
					return nil, fmt.Errorf("spearman (%s, %d threads, %s): %w", e, t, what, err)
				}
				lo, hi, err := stats.BootstrapSpearman(lat, xs, opts.Bootstrap, 0.95, opts.Seed)
				if err != nil {
					return nil, fmt.Errorf("bootstrap (%s, %d threads, %s): %w", e, t, what, err)
				}
				rep.Correlations[e][t][what] = Corr{rho, lo, hi}
			}
		}
	}
	if err := rep.write(opts.Out); err != nil {
		return nil, err
	}
	return rep, nil
}

// measure times every network (built lazily, one at a time, so the zoo's
// weights never sit in memory together) on every thread count, and in
// ONNX Runtime with opts.Peer.
func measure(opts Options, names []string, nets map[string]func() (*graph.Graph, error)) ([]Row, error) {
	var rows []Row
	var onnxDir string
	if opts.Peer != nil {
		// The exported graphs are large (the zoo's take half a gigabyte)
		// and are made again from the architectures: a temporary folder.
		var err error
		if onnxDir, err = os.MkdirTemp("", "mobileone-study-onnx-"); err != nil {
			return nil, err
		}
		defer os.RemoveAll(onnxDir)
	}
	for i, name := range names {
		g, err := nets[name]()
		if err != nil {
			return nil, err
		}
		row := Row{Model: name, Params: g.Params(), MACs: g.MACs(), Ours: map[int]Timing{}, Peer: map[int]Timing{}}
		var model string
		if opts.Peer != nil {
			model = filepath.Join(onnxDir, name+".onnx")
			if err := fsutil.WriteFileAtomic(model, func(w io.Writer) error { return onnx.ExportGraph(w, g, "study") }); err != nil {
				if opts.Log != nil {
					fmt.Fprintf(opts.Log, "%s: not run in ONNX Runtime: %v\n", name, err)
				}
				model = ""
			}
		}
		for _, t := range opts.Threads {
			tm, err := BenchGraph(g, opts.Batch, t, opts.Method, opts.Seed)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", name, err)
			}
			row.Ours[t] = tm
			line := fmt.Sprintf("[%d/%d] %-20s %d thread(s): ours %8.2f ms", i+1, len(names), name, t, tm.MedianMS)
			if model != "" {
				pt, err := opts.Peer.Bench(model, opts.Batch, t, opts.H, opts.W, opts.Method)
				if err != nil {
					return nil, err
				}
				row.Peer[t] = pt
				line += fmt.Sprintf("   onnxruntime %8.2f ms", pt.MedianMS)
			}
			if opts.Log != nil {
				fmt.Fprintln(opts.Log, line+" (median)")
			}
		}
		if model != "" {
			os.Remove(model)
		}
		rows = append(rows, row)
	}
	return rows, nil
}

func (rep *CorrelationReport) write(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	js, err := json.MarshalIndent(rep, "", " ")
	if err != nil {
		return err
	}
	if err := fsutil.WriteFileAtomic(filepath.Join(dir, "correlation.json"), func(w io.Writer) error { _, err := w.Write(js); return err }); err != nil {
		return err
	}
	if err := writeRowsCSV(filepath.Join(dir, "correlation.csv"), rep.Rows, rep.Options.Threads, rep.Options.Peer); err != nil {
		return err
	}
	if err := fsutil.WriteFileAtomic(filepath.Join(dir, "correlation.md"), rep.markdown); err != nil {
		return err
	}
	return rep.plots(dir)
}

func writeRowsCSV(path string, rows []Row, threads []int, peer bool) error {
	return fsutil.WriteFileAtomic(path, func(w io.Writer) error {
		cw := csv.NewWriter(w)
		head := []string{"model", "params", "macs"}
		for _, t := range threads {
			head = append(head, fmt.Sprintf("ours_min_ms_t%d", t), fmt.Sprintf("ours_median_ms_t%d", t))
			if peer {
				head = append(head, fmt.Sprintf("ort_min_ms_t%d", t), fmt.Sprintf("ort_median_ms_t%d", t))
			}
		}
		cw.Write(head)
		f := func(v float64) string { return strconv.FormatFloat(v, 'f', 3, 64) }
		for _, r := range rows {
			rec := []string{r.Model, strconv.FormatInt(r.Params, 10), strconv.FormatInt(r.MACs, 10)}
			for _, t := range threads {
				rec = append(rec, f(r.Ours[t].MinMS), f(r.Ours[t].MedianMS))
				if peer {
					rec = append(rec, f(r.Peer[t].MinMS), f(r.Peer[t].MedianMS))
				}
			}
			cw.Write(rec)
		}
		cw.Flush()
		return cw.Error()
	})
}

func machineLines(w io.Writer, m Machine, threads []int, h, wd int, meth Method) {
	fmt.Fprintf(w, "- CPU: %s, %d cores (%s); kernels: %s\n", m.CPU, m.Cores, m.Features, m.Kernels)
	fmt.Fprintf(w, "- %s, %s; %s\n", m.Go, m.OS, m.Date)
	fmt.Fprintf(w, "- input %d×%d, batch 1, threads %v; ModelBench method: %d rounds × %d runs, trim %d per round\n\n",
		h, wd, threads, meth.Rounds, meth.Runs, meth.Trim)
}

func (rep *CorrelationReport) markdown(w io.Writer) error {
	o := rep.Options
	fmt.Fprintf(w, "# Latency vs MACs and parameters (MobileOne's Table 1a, on this machine)\n\n")
	machineLines(w, rep.Machine, o.Threads, o.Size[0], o.Size[1], o.Method)
	fmt.Fprintf(w, "Spearman rank correlation of the median latency with MACs and with parameters (95 %% bootstrap interval):\n\n")
	fmt.Fprintf(w, "| engine | threads | ρ (latency, MACs) | ρ (latency, params) |\n|---|---:|---|---|\n")
	for _, e := range []string{"ours", "onnxruntime"} {
		for _, t := range o.Threads {
			c, ok := rep.Correlations[e][t]
			if !ok {
				continue
			}
			fmt.Fprintf(w, "| %s | %d | %.2f [%.2f, %.2f] | %.2f [%.2f, %.2f] |\n", e, t,
				c["macs"].Rho, c["macs"].Lo, c["macs"].Hi, c["params"].Rho, c["params"].Lo, c["params"].Hi)
		}
	}
	fmt.Fprintf(w, "\n| model | params (M) | MACs (M) |")
	sep := "|---|---:|---:|"
	for _, t := range o.Threads {
		fmt.Fprintf(w, " ours min / median ms, %dT |", t)
		sep += "---:|"
		if o.Peer {
			fmt.Fprintf(w, " ORT min / median ms, %dT |", t)
			sep += "---:|"
		}
	}
	fmt.Fprintf(w, "\n%s\n", sep)
	for _, r := range rep.Rows {
		fmt.Fprintf(w, "| %s | %.2f | %.1f |", r.Model, float64(r.Params)/1e6, float64(r.MACs)/1e6)
		for _, t := range o.Threads {
			fmt.Fprintf(w, " %.2f / %.2f |", r.Ours[t].MinMS, r.Ours[t].MedianMS)
			if pt, ok := r.Peer[t]; ok {
				fmt.Fprintf(w, " %.2f / %.2f |", pt.MinMS, pt.MedianMS)
			} else if o.Peer {
				fmt.Fprintf(w, " — |")
			}
		}
		fmt.Fprintln(w)
	}
	var plots []string
	for _, t := range o.Threads {
		plots = append(plots, fmt.Sprintf("![latency vs MACs, %d thread(s)](latency_vs_macs_t%d.png) ![latency vs params, %d thread(s)](latency_vs_params_t%d.png)", t, t, t, t))
	}
	fmt.Fprintf(w, "\n%s\n", strings.Join(plots, "\n"))
	return nil
}
