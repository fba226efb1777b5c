package main

import (
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/mobileone-go/mobileone"
	"github.com/mobileone-go/mobileone/data"
	"github.com/mobileone-go/mobileone/imageproc"
	"github.com/mobileone-go/mobileone/model"
)

// ckptFlags are the flags that say how to read a checkpoint: the file, the
// variant it must be, and the settings a plain PyTorch state dict does not
// store (the stem stride and the preprocessing).
type ckptFlags struct {
	weights, variant string
	stemStride       int
	preprocess       string
	precision        string // --precision (registerPrecision), "" if not registered or not given
}

// precisionHelp is --precision's help.
const precisionHelp = "arithmetic of a float model: `float32` (the default) or bf16 (bfloat16 weights and inputs of every " +
	"convolution and linear layer, float32 sums, as bfloat16 hardware computes; this build's kernels are float32 ones, " +
	"so bf16 shows bfloat16's accuracy at float32's speed or a little below); refused for an int8 file, which runs in int8"

// addPrecisionFlag adds --precision to a command without ckptFlags
// (segment, detect, their eval); parsePrecisionFlag reads it.
func addPrecisionFlag(fs *flag.FlagSet) *string { return fs.String("precision", "", precisionHelp) }

// parsePrecisionFlag normalises --precision ("" is float32).
func parsePrecisionFlag(s string) (string, error) {
	p, err := model.ParsePrecision(s)
	if err != nil {
		return "", fmt.Errorf("--precision: %w", err)
	}
	return p, nil
}

// registerPrecision adds --precision.
func (c *ckptFlags) registerPrecision(fs *flag.FlagSet) {
	fs.StringVar(&c.precision, "precision", "", precisionHelp)
}

// checkPrecision validates --precision (normalised) and refuses it for an
// int8 checkpoint, which has its own arithmetic.
func (c *ckptFlags) checkPrecision(int8File bool) error {
	if c.precision == "" {
		return nil
	}
	p, err := parsePrecisionFlag(c.precision)
	if err != nil {
		return err
	}
	if int8File && p != model.Float32 {
		return fmt.Errorf("--precision %s: %s is an int8 model (quantised by mobileone quantize), which runs in int8; --precision applies to float models", c.precision, c.weights)
	}
	c.precision = p
	return nil
}

// applyPrecision sets m's precision from --precision, fusing m first if a
// precision other than float32 needs the fused graph.
func (c *ckptFlags) applyPrecision(m *mobileone.Model) *mobileone.Model {
	if c.precision == "" || c.precision == model.Float32 {
		return m
	}
	if !m.IsFused() {
		m = m.Fuse()
	}
	m.Precision = c.precision
	return m
}

// register adds -w, -m, --stem-stride and, when withPrep is set, --preprocess.
func (c *ckptFlags) register(fs *flag.FlagSet, withPrep bool) {
	addModelFlags(&c.weights, &c.variant, fs)
	fs.IntVar(&c.stemStride, "stem-stride", 0, "stem stride `1 or 2` of a checkpoint that does not store it (a plain PyTorch state dict); files written by mobileone store it")
	if withPrep {
		fs.StringVar(&c.preprocess, "preprocess", "", "preprocessing of a checkpoint that does not store it: `imagenet` (resize 256 or 248, crop 224, ImageNet mean/std) or fashion-mnist (grey 28×28, its mean/std)")
	}
}

// check validates the flags' values.
func (c *ckptFlags) check() error {
	if c.stemStride != 0 && c.stemStride != 1 && c.stemStride != 2 {
		return fmt.Errorf("--stem-stride must be 1 or 2, got %d", c.stemStride)
	}
	switch c.preprocess {
	case "", "imagenet", "fashion-mnist":
	default:
		return fmt.Errorf("--preprocess must be imagenet or fashion-mnist, got %q", c.preprocess)
	}
	if c.weights == "" && (c.stemStride != 0 || c.preprocess != "") {
		return fmt.Errorf("--stem-stride and --preprocess are for a checkpoint given with -w")
	}
	return nil
}

// checkBuiltin is check for commands whose default without -w is the
// built-in model, which is no zoo variant.
func (c *ckptFlags) checkBuiltin() error {
	if c.weights == "" && c.variant != "" {
		return fmt.Errorf("-m needs -w: the built-in model is a Fashion-MNIST model, not a zoo variant")
	}
	return c.check()
}

// load reads the checkpoint and settles what it does not store. needPrep
// says whether the command preprocesses images (predict on image files): a
// checkpoint without stored preprocessing then needs it from --preprocess
// unless it is an ImageNet-shaped model, whose authors' setting is assumed
// and said. A non-ImageNet plain state dict is refused until --stem-stride
// (and, with needPrep, --preprocess) settles what it lacks: guessing ImageNet's
// settings for it gives confident wrong answers.
func (c *ckptFlags) load(opts mobileone.LoadOptions, needPrep bool, stderr io.Writer) (*mobileone.Model, error) {
	opts.Variant, opts.StemStride = c.variant, c.stemStride
	m, err := mobileone.Load(c.weights, opts)
	if err != nil {
		return nil, err
	}
	if c.preprocess != "" {
		p := presetPreprocessing(c.preprocess, m)
		m.Preprocess = &p
		m.Assumed.Preprocess = false
	}
	a := m.Assumed
	if !m.ImageNetShaped() {
		var missing []string
		if a.StemStride {
			missing = append(missing, "--stem-stride 1|2")
		}
		if needPrep && a.Preprocess {
			missing = append(missing, "--preprocess imagenet|fashion-mnist")
		}
		if len(missing) > 0 {
			return nil, fmt.Errorf("%s stores weights only (a plain PyTorch state dict) of a %d-class, %d-channel model, not an ImageNet one: "+
				"its %s cannot be told from the file; give %s (checkpoints written by mobileone, such as a run's model_unfused.pth.tar, store them)",
				c.weights, m.Config.NumClasses, m.Config.InChannels, missingWhat(a.StemStride, needPrep && a.Preprocess), strings.Join(missing, " and "))
		}
	}
	var said []string
	if a.StemStride {
		said = append(said, "stem stride 2")
	}
	if needPrep && a.Preprocess {
		p := m.Preprocessing()
		said = append(said, fmt.Sprintf("ImageNet preprocessing (resize %d, centre crop %d, ImageNet mean/std)", p.ResizeShort, p.Crop))
	}
	if needPrep && a.Labels && m.Config.NumClasses == 1000 {
		said = append(said, "ImageNet class names")
	}
	if len(said) > 0 {
		fmt.Fprintf(stderr, "note: %s does not store its settings (a plain PyTorch state dict): assumed the authors' ImageNet setting: %s; --stem-stride and --preprocess override\n",
			c.weights, strings.Join(said, ", "))
	}
	return m, nil
}

func missingWhat(stride, prep bool) string {
	switch {
	case stride && prep:
		return "stem stride and preprocessing"
	case stride:
		return "stem stride"
	}
	return "preprocessing"
}

// presetPreprocessing returns a --preprocess preset for m.
func presetPreprocessing(name string, m *mobileone.Model) imageproc.Params {
	if name == "fashion-mnist" {
		p := imageproc.Params{ResizeShort: 28, Crop: 28, Gray: m.Config.InChannels == 1}
		for i := range p.Mean {
			p.Mean[i], p.Std[i] = data.FashionMNISTMean, data.FashionMNISTStd
		}
		return p
	}
	saved := m.Preprocess
	m.Preprocess = nil
	p := m.Preprocessing() // ImageNet's, from the configuration
	m.Preprocess = saved
	return p
}
