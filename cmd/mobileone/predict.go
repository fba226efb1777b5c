package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/mobileone-go/mobileone"
	"github.com/mobileone-go/mobileone/format/npy"
	"github.com/mobileone-go/mobileone/imageproc"
	"github.com/mobileone-go/mobileone/internal/zoo"
	"github.com/mobileone-go/mobileone/model"
	"github.com/mobileone-go/mobileone/quant"
	"github.com/mobileone-go/mobileone/tensor"
)

const predictUsage = `usage: mobileone predict [-w CKPT] [-m s0..s4] [--top K] [--json] IMAGE...
       mobileone predict -w CKPT --npy in.npy --out logits.npy

Classifies each image and prints its top-K classes with probabilities, using the
model's ImageNet preprocessing (bilinear short-side resize to 256 for S0 or 248
for S1-S4, centre crop 224, ImageNet mean/std). With --npy, runs a raw float32
tensor (N, C, H, W) through the network and writes float32 logits (N, classes).

CKPT is an authors' fused or unfused .pth.tar, a timm-named or mobileone
.safetensors file, or a checkpoint "mobileone train" or "fuse" wrote. The variant
is recognised from the tensors unless -m is given, in which case the checkpoint
must be that variant. Files this program writes store the stem stride, the
preprocessing and the class names; a plain PyTorch state dict stores weights
only: for an ImageNet-shaped one (1000 classes, RGB) the authors' setting is
assumed and said, any other is refused until --stem-stride and --preprocess
give what it lacks. Without -w, the model built
into the binary is used: a MobileOne trained on Fashion-MNIST by this project
(10 clothing classes; "mobileone demo" shows it at work).

-m MODEL with a model of the comparison zoo ("mobileone info --list") and -w its
state dict (torchvision's key names: torch.save(model.state_dict(), f)) classifies
with that model and the preprocessing of its published weights.`

// addModelFlags registers -w/--weights and -m/--model.
func addModelFlags(fsw, fsm *string, fs interface {
	StringVar(*string, string, string, string)
}) {
	fs.StringVar(fsw, "w", "", "checkpoint `file` (.pth.tar, .pth or .safetensors)")
	fs.StringVar(fsw, "weights", "", "same as -w")
	fs.StringVar(fsm, "m", "", "variant `s0..s4`: check the checkpoint is this variant")
	fs.StringVar(fsm, "model", "", "same as -m")
}

func cmdPredict(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("predict", predictUsage, stderr)
	var ck ckptFlags
	var npyIn, npyOut string
	ck.register(fs, true)
	ck.registerPrecision(fs)
	top := fs.Int("top", 5, "number of classes to print per image")
	asJSON := fs.Bool("json", false, "print one JSON object per image")
	fs.StringVar(&npyIn, "npy", "", "run this float32 (N, C, H, W) `.npy` tensor instead of images")
	fs.StringVar(&npyOut, "out", "", "with --npy: write logits (N, classes) to this `.npy` file")
	maxMP := fs.Float64("max-megapixels", mobileone.DefaultMaxPixels/1e6, "refuse images larger than this")
	files, err := parse(fs, args)
	if err != nil {
		return err
	}
	zs, err := zooSpec(ck.variant)
	if err != nil {
		return err
	}
	if zs == nil {
		if err := ck.checkBuiltin(); err != nil {
			return err
		}
	} else if ck.stemStride != 0 || ck.preprocess != "" {
		return fmt.Errorf("--stem-stride and --preprocess are for MobileOne checkpoints; %s has its own preprocessing", zs.Name)
	}
	if *top < 1 {
		return fmt.Errorf("--top must be at least 1, got %d", *top)
	}
	if npyIn != "" {
		if npyOut == "" {
			return errors.New("--npy needs --out FILE for the logits")
		}
		if len(files) > 0 {
			return errors.New("give either --npy or image files, not both")
		}
	} else if npyOut != "" {
		return errors.New("--out is only for --npy")
	} else if len(files) == 0 {
		fs.Usage()
		return errors.New("no images given")
	}

	int8File := zs == nil && ck.weights != "" && quant.IsInt8(ck.weights)
	if err := ck.checkPrecision(int8File); err != nil {
		return err
	}
	if zs != nil && ck.precision == model.BFloat16 {
		return fmt.Errorf("--precision bf16 runs MobileOne models; for %s use bench -m %s --precision bf16", zs.Name, zs.Name)
	}
	if int8File {
		return predictInt8(ck, files, npyIn, npyOut, *top, int(*maxMP*1e6), *asJSON, stdout, stderr)
	}
	if zs != nil {
		return zooPredict(zs, ck.weights, files, npyIn, npyOut, *top, int(*maxMP*1e6), *asJSON, stdout, stderr)
	}
	var m *mobileone.Model
	if ck.weights == "" {
		if m, err = zoo.Default(); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "mobileone predict: no -w given: using the %s (10 clothing classes, grey 28x28)\n", zoo.DefaultName)
	} else if m, err = ck.load(mobileone.LoadOptions{}, npyIn == "", stderr); err != nil {
		return err
	}
	m = ck.applyPrecision(m)
	if npyIn != "" {
		return predictNpy(m, npyIn, npyOut)
	}

	maxPixels := int(*maxMP * 1e6)
	var failed int
	enc := json.NewEncoder(stdout)
	for _, f := range files {
		preds, err := classifyFile(m, f, maxPixels, *top)
		if err != nil {
			fmt.Fprintf(stderr, "mobileone predict: %s\n", oneLine(err.Error()))
			failed++
			continue
		}
		if err := printPredictions(stdout, enc, *asJSON, f, m.Config.Name, preds); err != nil {
			return err
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d images failed", failed, len(files))
	}
	return nil
}

func classifyFile(m *mobileone.Model, path string, maxPixels, top int) ([]mobileone.Prediction, error) {
	img, err := imageproc.DecodeFile(path, maxPixels)
	if err != nil {
		return nil, err
	}
	return m.Classify(img, top)
}

func predictNpy(m *mobileone.Model, in, out string) error {
	x, err := npy.ReadFile(in)
	if err != nil {
		return err
	}
	if len(x.Shape) != 4 {
		return fmt.Errorf("%s: input must have shape (N, C, H, W), got %s", in, tensor.ShapeString(x.Shape))
	}
	logits, err := m.Forward(x)
	if err != nil {
		return fmt.Errorf("%s: %w", in, err)
	}
	return npy.WriteFile(out, logits)
}

// printPredictions prints one image's top classes: a JSON object (file,
// model, top) with asJSON, else the file name and one line per class.
func printPredictions(stdout io.Writer, enc *json.Encoder, asJSON bool, file, model string, preds []mobileone.Prediction) error {
	if asJSON {
		return enc.Encode(struct {
			File  string                 `json:"file"`
			Model string                 `json:"model"`
			Top   []mobileone.Prediction `json:"top"`
		}{file, model, preds})
	}
	fmt.Fprintf(stdout, "%s\n", file)
	for i, p := range preds {
		fmt.Fprintf(stdout, "  %d. %6.2f%%  %4d  %s\n", i+1, 100*p.Prob, p.Index, p.Label)
	}
	return nil
}
