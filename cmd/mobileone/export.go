package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/mobileone-go/mobileone"
	"github.com/mobileone-go/mobileone/format/onnx"
	"github.com/mobileone-go/mobileone/internal/fsutil"
	"github.com/mobileone-go/mobileone/model"
	"github.com/mobileone-go/mobileone/quant"
)

const exportUsage = `usage: mobileone export (-w CKPT [-m s0..s4] | -m s0..s4 --random-seed N) --format onnx -o model.onnx
                        [--size H[xW] | --dynamic] [--weights-out fused.safetensors]

Writes the fused (re-parameterised) network as an ONNX model (IR version 8,
opset 13) that ONNX Runtime runs: input "input" float32 (batch, C, H, W) with a
dynamic batch, output "logits" (batch, classes). A train-time checkpoint is
fused first. H and W are fixed (--size, default 224) unless --dynamic.
Without -w the weights are random (seeded by --random-seed, as "mobileone bench"
makes them); --weights-out also saves them as safetensors, for "mobileone predict".

-m MODEL exports a model of the comparison zoo ("mobileone info --list") from
its graph (opset 17, input "input", output "output"), with -w its state dict or
random weights (--random-seed), at the fixed --size.`

func cmdExport(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("export", exportUsage, stderr)
	var ck ckptFlags
	var out, format, size, weightsOut string
	ck.register(fs, false)
	fs.StringVar(&out, "o", "", "output `file` (.onnx)")
	fs.StringVar(&out, "out", "", "same as -o")
	fs.StringVar(&format, "format", "onnx", "output `format`: onnx")
	fs.StringVar(&size, "size", "224", "fixed input size `H` or HxW")
	dynamic := fs.Bool("dynamic", false, "make the input's height and width dynamic")
	seed := fs.Uint64("random-seed", 0, "without -w: random weights from this `seed`")
	fs.StringVar(&weightsOut, "weights-out", "", "also save the fused weights to this `file` (.safetensors)")
	rest, err := parse(fs, args)
	if err != nil {
		return err
	}
	weights, variant := ck.weights, ck.variant
	if len(rest) > 0 {
		return fmt.Errorf("unexpected argument %q", rest[0])
	}
	seedSet := false
	fs.Visit(func(f *flag.Flag) { seedSet = seedSet || f.Name == "random-seed" })
	if out == "" || (weights == "" && variant == "") {
		fs.Usage()
		return errors.New("need -w CHECKPOINT (or -m VARIANT --random-seed N) and -o OUTPUT")
	}
	if format != "onnx" {
		return fmt.Errorf("--format %q is not supported (want onnx)", format)
	}
	h, w, err := parseSize(size)
	if err != nil {
		return err
	}
	if weights != "" && seedSet {
		return errors.New("--random-seed makes random weights: use it without -w")
	}

	if weights != "" && quant.IsInt8(weights) {
		sizeSet := false
		fs.Visit(func(f *flag.Flag) { sizeSet = sizeSet || f.Name == "size" })
		return exportInt8(ck, out, format, h, w, sizeSet, stdout)
	}
	if zs, err := graphSpec(variant, weights); err != nil {
		return err
	} else if zs != nil {
		if *dynamic || weightsOut != "" {
			return fmt.Errorf("--dynamic and --weights-out are for MobileOne models; %s exports at a fixed --size", zs.Name)
		}
		if weights == "" && !seedSet {
			return fmt.Errorf("-m %s without -w needs --random-seed N (random weights)", zs.Name)
		}
		g, err := zooGraph(zs, weights, h, w, *seed)
		if err != nil {
			return err
		}
		if err := fsutil.WriteFileAtomic(out, func(wr io.Writer) error { return onnx.ExportGraph(wr, g, version) }); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s: %d parameters, wrote %s (ONNX IR %d, opset %d, input \"%s\" (batch, 3, %d, %d), output \"%s\")\n",
			zs.Name, g.Params(), out, onnx.IRVersion, onnx.GraphOpset, onnx.GraphInput, h, w, onnx.GraphOutput)
		return nil
	}
	var m *mobileone.Model
	if weights != "" {
		if err := ck.check(); err != nil {
			return err
		}
		if m, err = ck.load(mobileone.LoadOptions{}, false, stderr); err != nil {
			return err
		}
	} else {
		if !seedSet {
			return fmt.Errorf("-m %s without -w needs --random-seed N (random weights)", variant)
		}
		cfg, err := model.Variant(variant)
		if err != nil {
			return err
		}
		if m, err = mobileone.New(cfg, true, *seed); err != nil { // random fused weights, as bench
			return err
		}
	}
	m = m.Fuse()

	opts := onnx.Options{DynamicSize: *dynamic, Height: h, Width: w, ProducerVersion: version}
	if err := fsutil.WriteFileAtomic(out, func(wr io.Writer) error { return onnx.Export(wr, m.Model, opts) }); err != nil {
		return err
	}
	if weightsOut != "" {
		if err := m.Save(weightsOut, mobileone.SaveOptions{}); err != nil {
			return fmt.Errorf("wrote %s, but not the weights: %w", out, err)
		}
	}
	st, err := os.Stat(out)
	if err != nil {
		return err
	}
	name := m.Config.Name
	if name == "" {
		name = "custom"
	}
	src := weights
	if src == "" {
		src = fmt.Sprintf("random weights (seed %d)", *seed)
	}
	shape := fmt.Sprintf("(batch, %d, %d, %d)", m.Config.InChannels, h, w)
	if *dynamic {
		shape = fmt.Sprintf("(batch, %d, height, width)", m.Config.InChannels)
	}
	fmt.Fprintf(stdout, "%s: %s, %d parameters, wrote %s (ONNX IR %d, opset %d, input %s, %.1f MB)",
		src, name, m.Params(), out, onnx.IRVersion, onnx.Opset, shape, float64(st.Size())/1e6)
	if weightsOut != "" {
		fmt.Fprintf(stdout, " and %s", weightsOut)
	}
	fmt.Fprintln(stdout)
	return nil
}
