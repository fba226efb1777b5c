// Package study runs the paper's latency studies on the machine at hand:
// the rank correlation of latency with MACs and parameters over a zoo of
// mobile CNNs (MobileOne's Table 1a), a CNN that differs only in its
// activation (Table 2) and the same CNN with and without skip connections
// and squeeze-excitation (Table 3b). Every network runs on one engine (the
// graph planner), and optionally the same exported graphs in ONNX Runtime,
// so that a finding is one that holds on both engines.
package study

import (
	"bufio"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mobileone-go/mobileone/graph"
	"github.com/mobileone-go/mobileone/internal/cpu"
	"github.com/mobileone-go/mobileone/internal/kernel"
)

// Method is the authors' ModelBench method: per round, one warm-up run,
// then Runs timed runs, sorted, the Trim fastest and slowest dropped (for
// the trimmed mean); minimum and median over all timed runs.
type Method struct {
	Rounds, Runs, Trim int
}

// Check validates the method.
func (m Method) Check() error {
	if m.Rounds < 1 || m.Runs < 1 {
		return fmt.Errorf("rounds and runs must be at least 1")
	}
	if m.Trim < 0 || 2*m.Trim >= m.Runs {
		return fmt.Errorf("trim %d must leave runs: need 2*trim < runs (%d)", m.Trim, m.Runs)
	}
	return nil
}

// Timing is one measurement.
type Timing struct {
	MinMS    float64 `json:"min_ms"`
	MedianMS float64 `json:"median_ms"`
	MeanMS   float64 `json:"mean_ms"`
	P90MS    float64 `json:"p90_ms"`
}

// ModelBench times run with the method; it returns every timed run
// (sorted) and those kept after trimming.
func ModelBench(run func() time.Duration, m Method) (all, kept []time.Duration) {
	round := make([]time.Duration, m.Runs)
	for i := 0; i < m.Rounds; i++ {
		run() // warm-up
		for j := range round {
			round[j] = run()
		}
		slices.Sort(round)
		all = append(all, round...)
		kept = append(kept, round[m.Trim:m.Runs-m.Trim]...)
	}
	slices.Sort(all)
	return all, kept
}

// Summarize turns ModelBench's runs into a Timing.
func Summarize(all, kept []time.Duration) Timing {
	ms := func(d time.Duration) float64 { return float64(d) / 1e6 }
	var sum time.Duration
	for _, d := range kept {
		sum += d
	}
	return Timing{MinMS: ms(all[0]), MedianMS: ms(all[len(all)/2]), MeanMS: ms(sum) / float64(len(kept)), P90MS: ms(all[len(all)*9/10])}
}

// BenchGraph plans g (weights loaded or initialised) for batch images and
// times it on the given number of threads.
func BenchGraph(g *graph.Graph, batch, threads int, m Method, seed uint64) (Timing, error) {
	kernel.SetThreads(threads)
	defer kernel.SetThreads(0)
	p, err := graph.NewPlan(g, batch)
	if err != nil {
		return Timing{}, err
	}
	in := g.InputShape()
	x := make([]float32, batch*in[0]*in[1]*in[2])
	r := rand.New(rand.NewPCG(seed, 2))
	for i := range x {
		x[i] = float32(r.NormFloat64())
	}
	debug.FreeOSMemory()
	var runErr error
	all, kept := ModelBench(func() time.Duration {
		t0 := time.Now()
		if _, err := p.Run(x); err != nil {
			runErr = err
		}
		return time.Since(t0)
	}, m)
	if runErr != nil {
		return Timing{}, runErr
	}
	return Summarize(all, kept), nil
}

// ORT runs ONNX Runtime through node and the repository's
// bench/peers/ort_bench.js (the same method, its own random input).
type ORT struct {
	Node, Script string
	Env          []string
}

// FindORT locates node, onnxruntime-node (under
// ~/.cache/mobileone-peers/node_modules or $MOBILEONE_ORT_NODE_MODULES,
// where bench/peers/run.sh --install-only puts it) and script.
func FindORT(script string) (*ORT, error) {
	node, err := exec.LookPath("node")
	if err != nil {
		return nil, fmt.Errorf("--peer ort needs node (apt-get install nodejs) and onnxruntime-node (bench/peers/run.sh --install-only)")
	}
	modules := os.Getenv("MOBILEONE_ORT_NODE_MODULES")
	if modules == "" {
		home, _ := os.UserHomeDir()
		modules = home + "/.cache/mobileone-peers/node_modules"
	}
	if _, err := os.Stat(modules + "/onnxruntime-node/package.json"); err != nil {
		return nil, fmt.Errorf("--peer ort: onnxruntime-node is not installed in %s (bench/peers/run.sh --install-only installs it; MOBILEONE_ORT_NODE_MODULES points elsewhere)", modules)
	}
	if _, err := os.Stat(script); err != nil {
		return nil, fmt.Errorf("--peer ort: %s not found (run from the repository's root, or give --ort-script)", script)
	}
	return &ORT{Node: node, Script: script, Env: append(os.Environ(), "NODE_PATH="+modules)}, nil
}

// Bench times the ONNX model in ONNX Runtime.
func (o *ORT) Bench(model string, batch, threads, h, w int, m Method) (Timing, error) {
	cmd := exec.Command(o.Node, o.Script, "--model", model, "--threads", strconv.Itoa(threads), "--batch", strconv.Itoa(batch),
		"--size", fmt.Sprintf("%dx%d", h, w), "--rounds", strconv.Itoa(m.Rounds), "--runs", strconv.Itoa(m.Runs),
		"--trim", strconv.Itoa(m.Trim), "--json")
	cmd.Env = o.Env
	out, err := cmd.Output()
	if err != nil {
		msg := err.Error()
		if ee, ok := err.(*exec.ExitError); ok {
			msg = strings.TrimSpace(string(ee.Stderr))
		}
		return Timing{}, fmt.Errorf("onnxruntime on %s: %s", model, msg)
	}
	var t Timing
	if err := json.Unmarshal(out, &t); err != nil {
		return Timing{}, fmt.Errorf("onnxruntime on %s: %v in %q", model, err, out)
	}
	return t, nil
}

// Machine describes where a study ran.
type Machine struct {
	CPU      string `json:"cpu"`
	Features string `json:"cpu_features"`
	Cores    int    `json:"cores"`
	Kernels  string `json:"kernels"`
	Go       string `json:"go"`
	OS       string `json:"os"`
	Date     string `json:"date"`
}

// ThisMachine describes the machine.
func ThisMachine() Machine {
	return Machine{CPU: cpuName(), Features: cpu.Detected.String(), Cores: runtime.NumCPU(), Kernels: kernel.Kernels(),
		Go: runtime.Version(), OS: runtime.GOOS + "/" + runtime.GOARCH, Date: time.Now().UTC().Format("2006-01-02 15:04 UTC")}
}

func cpuName() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return runtime.GOARCH
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return runtime.GOARCH
}
