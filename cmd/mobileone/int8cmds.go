package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"runtime"
	"time"

	"github.com/mobileone-go/mobileone"
	"github.com/mobileone-go/mobileone/data"
	"github.com/mobileone-go/mobileone/format/npy"
	"github.com/mobileone-go/mobileone/format/onnx"
	"github.com/mobileone-go/mobileone/imageproc"
	"github.com/mobileone-go/mobileone/internal/cpu"
	"github.com/mobileone-go/mobileone/internal/fsutil"
	"github.com/mobileone-go/mobileone/internal/kernel"
	"github.com/mobileone-go/mobileone/study"
	"github.com/mobileone-go/mobileone/tensor"
	"github.com/mobileone-go/mobileone/train"
)

// The int8 paths of predict, eval, bench and export: an int8 checkpoint
// (quant.IsInt8: "precision": "int8" in its metadata) runs on the graph
// engine's int8 planner.

func predictInt8(ck ckptFlags, files []string, npyIn, npyOut string, top, maxPixels int, asJSON bool, stdout, stderr io.Writer) error {
	q, err := loadInt8(ck)
	if err != nil {
		return err
	}
	if npyIn != "" {
		x, err := npy.ReadFile(npyIn)
		if err != nil {
			return err
		}
		if len(x.Shape) != 4 || x.Shape[1] != q.Config.InChannels {
			return fmt.Errorf("%s: input must have shape (N, %d, H, W), got %s", npyIn, q.Config.InChannels, tensor.ShapeString(x.Shape))
		}
		p, err := q.NewPlan(x.Shape[0], x.Shape[2], x.Shape[3])
		if err != nil {
			return err
		}
		y, err := p.Run(x.Data)
		if err != nil {
			return err
		}
		return npy.WriteFile(npyOut, &tensor.Tensor{Shape: []int{x.Shape[0], len(y) / x.Shape[0]}, Data: y})
	}
	pp := q.Preprocessing()
	p, err := q.NewPlan(1, pp.Crop, pp.Crop)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(stdout)
	failed := 0
	for _, f := range files {
		img, err := imageproc.DecodeFile(f, maxPixels)
		if err != nil {
			fmt.Fprintf(stderr, "mobileone predict: %s\n", oneLine(err.Error()))
			failed++
			continue
		}
		y, err := p.Run(imageproc.Preprocess(img, pp).Data)
		if err != nil {
			return err
		}
		if err := printPredictions(stdout, enc, asJSON, f, q.Config.Name+" int8", mobileone.TopK(y, q.ClassNames(), top)); err != nil {
			return err
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d images failed", failed, len(files))
	}
	return nil
}

func evalInt8Cmd(ck ckptFlags, dataArg, dir, split string, batch int, asJSON bool, stdout io.Writer) error {
	q, err := loadInt8(ck)
	if err != nil {
		return err
	}
	var ds data.Dataset
	if dataArg == "fashion-mnist" {
		if split != "test" && split != "train" {
			return fmt.Errorf("--split must be test or train, got %q", split)
		}
		if ds, err = data.LoadFashionMNIST(dir, split); err != nil {
			return err
		}
	} else if ds, err = data.LoadFolder(dataArg, data.FolderOptions{}); err != nil {
		return err
	}
	p := q.Preprocessing()
	tr := fashionTransform(p)
	if dataArg != "fashion-mnist" {
		ch := 3
		if p.Gray {
			ch = 1
		}
		tr = data.EvalTransform(p.ResizeShort, p.Crop, ch, []float32{p.Mean[0], p.Mean[1], p.Mean[2]}, []float32{p.Std[0], p.Std[1], p.Std[2]})
	}
	res, _, err := evalInt8(q, ds, tr, batch, nil)
	if err != nil {
		return err
	}
	names := ds.Classes()
	if asJSON {
		return json.NewEncoder(stdout).Encode(struct {
			Precision string `json:"precision"`
			*train.EvalResult
			Classes []string `json:"classes"`
		}{"int8", res, names})
	}
	fmt.Fprintf(stdout, "%s (int8, %s calibration) on %s (%d images): top-1 %.2f%%  top-5 %.2f%%  loss %.4f\n\n",
		q.Source, q.Method, dataArg, res.N, res.Top1, res.Top5, res.Loss)
	return writeConfusion(stdout, names, res.Confusion)
}

func benchInt8(ck ckptFlags, batch, h, w, threads, rounds, runs, trim int, sizeSet, asJSON bool, seed uint64, stdout io.Writer) error {
	q, err := loadInt8(ck)
	if err != nil {
		return err
	}
	if !sizeSet {
		h, w = q.Preprocessing().Crop, q.Preprocessing().Crop
	}
	kernel.SetThreads(threads)
	defer kernel.SetThreads(0)
	plan, err := q.NewPlan(batch, h, w)
	if err != nil {
		return err
	}
	x := make([]float32, batch*q.Config.InChannels*h*w)
	r := rand.New(rand.NewPCG(seed, 2))
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
	all, kept := study.ModelBench(run, study.Method{Rounds: rounds, Runs: runs, Trim: trim})
	var sum time.Duration
	for _, d := range kept {
		sum += d
	}
	name := q.Config.Name
	if name == "" {
		name = "custom"
	}
	res := benchResult{Variant: name, Checkpoint: ck.weights, Batch: batch, Height: h, Width: w, Threads: threads,
		Rounds: rounds, Runs: runs, Trim: trim, MinMS: ms(all[0]), MedianMS: ms(all[len(all)/2]), MeanMS: ms(sum) / float64(len(kept)),
		P90MS: ms(all[len(all)*9/10]), Kernels: kernel.Q8Kernels(), Layout: "int8 channels-last", CPU: study.ThisMachine().CPU,
		Features: cpu.Detected.String(), GoVersion: runtime.Version()}
	res.ImagesPerS = float64(batch) / (res.MedianMS / 1e3)
	res.GFLOPS = 2 * float64(q.Config.MACs(h, w)) * float64(batch) / (res.MinMS * 1e6)
	if asJSON {
		return json.NewEncoder(stdout).Encode(res)
	}
	fmt.Fprintf(stdout, "MobileOne %s (fused, int8), batch %d, %dx%d, %d threads\n", name, batch, h, w, threads)
	fmt.Fprintf(stdout, "kernels: %s; CPU: %s (%s)\n", res.Kernels, res.CPU, res.Features)
	fmt.Fprintf(stdout, "%d rounds x %d runs, trim %d: min %.3f ms  median %.3f ms  mean %.3f ms  p90 %.3f ms\n",
		rounds, runs, trim, res.MinMS, res.MedianMS, res.MeanMS, res.P90MS)
	fmt.Fprintf(stdout, "%.1f images/s at the median, %.1f GOP/s at the minimum\n", res.ImagesPerS, res.GFLOPS)
	return nil
}

func exportInt8(ck ckptFlags, out, format string, h, w int, sizeSet bool, stdout io.Writer) error {
	if format != "onnx" {
		return fmt.Errorf("--format %q is not supported (want onnx)", format)
	}
	q, err := loadInt8(ck)
	if err != nil {
		return err
	}
	if !sizeSet {
		h, w = q.Preprocessing().Crop, q.Preprocessing().Crop
	}
	g, err := q.Graph(h, w)
	if err != nil {
		return err
	}
	if err := fsutil.WriteFileAtomic(out, func(wr io.Writer) error { return onnx.ExportInt8(wr, g, q.Spec, version) }); err != nil {
		return err
	}
	st, err := os.Stat(out)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: int8 (%s calibration), wrote %s (ONNX QDQ, IR %d, opset %d, input %q (batch, %d, %d, %d), %.2f MB)\n",
		ck.weights, q.Method, out, onnx.IRVersion, onnx.QDQOpset, onnx.GraphInput, q.Config.InChannels, h, w, float64(st.Size())/1e6)
	return nil
}
