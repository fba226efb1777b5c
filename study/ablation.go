package study

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/mobileone-go/mobileone/arch"
	"github.com/mobileone-go/mobileone/graph"
	"github.com/mobileone-go/mobileone/internal/fsutil"
)

// AblationReport is the result of the activations or blocks study: the
// same CNN in several variants.
type AblationReport struct {
	Study   string  `json:"study"`
	Machine Machine `json:"machine"`
	Options struct {
		Threads []int  `json:"threads"`
		Size    [2]int `json:"size"`
		Method  Method `json:"method"`
		Peer    bool   `json:"peer"`
	} `json:"options"`
	Rows []Row `json:"rows"`
}

// Activations runs the paper's Table 2: the 30-layer CNN, identical but for
// its activation (arch.StudyActivations).
func Activations(opts Options) (*AblationReport, error) {
	nets := map[string]func() (*graph.Graph, error){}
	for _, a := range arch.StudyActivations {
		act := a
		nets[act] = func() (*graph.Graph, error) { return studyNet(arch.StudyActivationNet(act, opts.H, opts.W)) }
	}
	return ablation("activations", "Table 2: the 30-layer CNN with different activations", arch.StudyActivations, nets, opts)
}

// Blocks runs the paper's Table 3b: the CNN plain, with skip connections,
// with SE, with both (arch.StudyBlocks).
func Blocks(opts Options) (*AblationReport, error) {
	nets := map[string]func() (*graph.Graph, error){}
	for _, v := range arch.StudyBlocks {
		variant := v
		nets[variant] = func() (*graph.Graph, error) { return studyNet(arch.StudyBlockNet(variant, opts.H, opts.W)) }
	}
	return ablation("blocks", "Table 3b: the CNN with and without skip connections and SE", arch.StudyBlocks, nets, opts)
}

func studyNet(g *graph.Graph, err error) (*graph.Graph, error) {
	if err != nil {
		return nil, err
	}
	g.InitRandom(1)
	return g, nil
}

func ablation(name, title string, variants []string, nets map[string]func() (*graph.Graph, error), opts Options) (*AblationReport, error) {
	rows, err := measure(opts, variants, nets)
	if err != nil {
		return nil, err
	}
	rep := &AblationReport{Study: name, Machine: ThisMachine(), Rows: rows}
	rep.Options.Threads, rep.Options.Size, rep.Options.Method, rep.Options.Peer = opts.Threads, [2]int{opts.H, opts.W}, opts.Method, opts.Peer != nil
	if err := os.MkdirAll(opts.Out, 0o755); err != nil {
		return nil, err
	}
	js, err := json.MarshalIndent(rep, "", " ")
	if err != nil {
		return nil, err
	}
	if err := fsutil.WriteFileAtomic(filepath.Join(opts.Out, name+".json"), func(w io.Writer) error { _, err := w.Write(js); return err }); err != nil {
		return nil, err
	}
	if err := writeRowsCSV(filepath.Join(opts.Out, name+".csv"), rows, opts.Threads, opts.Peer != nil); err != nil {
		return nil, err
	}
	for _, t := range opts.Threads {
		if err := bars(filepath.Join(opts.Out, fmt.Sprintf("%s_t%d", name, t)), fmt.Sprintf("%s (%d thread(s))", title, t), rows, t, opts.Peer != nil); err != nil {
			return nil, err
		}
	}
	err = fsutil.WriteFileAtomic(filepath.Join(opts.Out, name+".md"), func(w io.Writer) error {
		fmt.Fprintf(w, "# %s\n\n", title)
		machineLines(w, rep.Machine, opts.Threads, opts.H, opts.W, opts.Method)
		base := rows[0]
		fmt.Fprintf(w, "| variant | params (M) | MACs (M) |")
		sep := "|---|---:|---:|"
		for _, t := range opts.Threads {
			fmt.Fprintf(w, " ours median ms, %dT | × %s |", t, base.Model)
			sep += "---:|---:|"
			if opts.Peer != nil {
				fmt.Fprintf(w, " ORT median ms, %dT | × %s |", t, base.Model)
				sep += "---:|---:|"
			}
		}
		fmt.Fprintf(w, "\n%s\n", sep)
		for _, r := range rows {
			fmt.Fprintf(w, "| %s | %.2f | %.1f |", r.Model, float64(r.Params)/1e6, float64(r.MACs)/1e6)
			for _, t := range opts.Threads {
				fmt.Fprintf(w, " %.2f | %.2f |", r.Ours[t].MedianMS, r.Ours[t].MedianMS/base.Ours[t].MedianMS)
				if opts.Peer != nil {
					pt, ok := r.Peer[t]
					bt, bok := base.Peer[t]
					if ok && bok {
						fmt.Fprintf(w, " %.2f | %.2f |", pt.MedianMS, pt.MedianMS/bt.MedianMS)
					} else {
						fmt.Fprintf(w, " — (not exportable yet) | — |")
					}
				}
			}
			fmt.Fprintln(w)
		}
		for _, t := range opts.Threads {
			fmt.Fprintf(w, "\n![%s, %d thread(s)](%s_t%d.png)\n", name, t, name, t)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return rep, nil
}
