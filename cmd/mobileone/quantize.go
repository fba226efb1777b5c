package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/mobileone-go/mobileone"
	"github.com/mobileone-go/mobileone/data"
	"github.com/mobileone-go/mobileone/imageproc"
	"github.com/mobileone-go/mobileone/internal/zoo"
	"github.com/mobileone-go/mobileone/quant"
	"github.com/mobileone-go/mobileone/train"
)

const quantizeUsage = `usage: mobileone quantize [-w CKPT] --calib DATA -o model.int8.safetensors [--images 512]
                          [--method percentile|minmax|entropy] [--percentile 99.99] [--float-first] [--no-weight-clip] [--no-constant-fold]
                          [--report-images 32] [--json] [--eval fashion-mnist]

Post-training static quantisation to int8 (docs/quantization.md): per-output-
channel symmetric int8 weights, per-tensor uint8 activations whose ranges are
calibrated on --images images of DATA, int32 biases; global pooling and the
classifier stay float. The stem's input (the normalised image, which is
negative in places) gets a zero point; --float-first keeps the stem in float
instead. Prints a per-layer quantisation error report (SQNR, on
--report-images of the calibration images; --json prints it as JSON).

DATA: "fashion-mnist" (its training split, images spread evenly over it), or
a folder of images, flat or with class sub-folders or a canvases folder
("mobileone data canvases"; folders named masks are skipped).
-w takes any checkpoint "predict" takes; without -w the built-in Fashion-MNIST
model is quantised. --eval fashion-mnist then scores the float and the int8
model on the Fashion-MNIST test set: top-1 of each and their agreement.

predict, eval and bench run the written file (recognised by its metadata).`

func cmdQuantize(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("quantize", quantizeUsage, stderr)
	var ck ckptFlags
	ck.register(fs, true)
	calib := fs.String("calib", "", "calibration `data`: fashion-mnist or a folder of images")
	out := fs.String("o", "", "output `file` (.safetensors)")
	images := fs.Int("images", 512, "calibration images")
	method := fs.String("method", quant.Percentile, "activation range: percentile, minmax or entropy")
	pct := fs.Float64("percentile", 99.99, "percentile for --method percentile")
	floatFirst := fs.Bool("float-first", false, "keep the first convolution in float")
	wbits := fs.Int("weight-bits", 8, "weight bits: 8, or 7 (experimental: measures what an exact VPMADDUBSW kernel would cost)")
	noFold := fs.Bool("no-constant-fold", false, "keep weights on input channels that are constant over calibration (see docs/quantization.md)")
	noClip := fs.Bool("no-weight-clip", false, "weight scales from max|W| instead of the error-minimising clipped scale")
	reportN := fs.Int("report-images", 32, "images for the per-layer SQNR report (0: no report)")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	evalData := fs.String("eval", "", "score float and int8 on `fashion-mnist`'s test set after quantising")
	fmDir := fs.String("fashion-mnist-dir", data.FashionMNISTDir, "where the Fashion-MNIST IDX files are")
	rest, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return fmt.Errorf("unexpected argument %q", rest[0])
	}
	switch {
	case *calib == "":
		return errors.New("--calib DATA is required (fashion-mnist or a folder of images)")
	case *out == "":
		return errors.New("-o FILE is required")
	case *images < 1:
		return fmt.Errorf("--images must be at least 1, got %d", *images)
	case *method != quant.MinMax && *method != quant.Percentile && *method != quant.Entropy:
		return fmt.Errorf("--method must be minmax, percentile or entropy, got %q", *method)
	case *evalData != "" && *evalData != "fashion-mnist":
		return fmt.Errorf("--eval supports fashion-mnist only, got %q", *evalData)
	}
	if err := ck.checkBuiltin(); err != nil {
		return err
	}
	var m *mobileone.Model
	if ck.weights == "" {
		if m, err = zoo.Default(); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "mobileone quantize: no -w given: quantising the %s\n", zoo.DefaultName)
	} else {
		if quant.IsInt8(ck.weights) {
			return fmt.Errorf("%s is already an int8 model", ck.weights)
		}
		if m, err = ck.load(mobileone.LoadOptions{}, true, stderr); err != nil {
			return err
		}
	}
	imgs, err := calibImages(*calib, *fmDir, *images, m.Preprocessing())
	if err != nil {
		return err
	}
	fmt.Fprintf(stderr, "calibrating on %d images of %s...\n", imgs.Len(), *calib)
	cal, err := quant.Calibrate(m, imgs)
	if err != nil {
		return err
	}
	q, err := cal.Quantize(quant.Options{Method: *method, Percentile: *pct, FloatFirst: *floatFirst, NoWeightClip: *noClip, NoConstantFold: *noFold, WeightBits: *wbits})
	if err != nil {
		return err
	}
	if *reportN > 0 {
		rep, err := cal.Report(q, *reportN)
		if err != nil {
			return err
		}
		if *asJSON {
			if err := json.NewEncoder(stdout).Encode(rep); err != nil {
				return err
			}
		} else if err := rep.Write(stdout); err != nil {
			return err
		}
	}
	if err := q.Save(*out); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "wrote %s\n", *out)
	if *evalData != "" {
		return compareOnFashionMNIST(m, q, *fmDir, stdout)
	}
	return nil
}

// calibImages loads n calibration images preprocessed with p.
func calibImages(src, fmDir string, n int, p imageproc.Params) (quant.Images, error) {
	ch := 3
	if p.Gray {
		ch = 1
	}
	mean, std := []float32{p.Mean[0], p.Mean[1], p.Mean[2]}, []float32{p.Std[0], p.Std[1], p.Std[2]}
	if src == "fashion-mnist" {
		ds, err := data.LoadFashionMNIST(fmDir, "train")
		if err != nil {
			return nil, err
		}
		resize := p.ResizeShort
		if resize == 28 && p.Crop == 28 {
			resize = 0
		}
		n = min(n, ds.Len())
		idx := make([]int, n)
		for i := range idx {
			idx[i] = i * ds.Len() / n
		}
		return &datasetImages{ds: ds, idx: idx, tr: data.EvalTransform(resize, p.Crop, ch, mean, std)}, nil
	}
	var files []string
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if path != src && (strings.HasPrefix(name, ".") || strings.EqualFold(name, "masks")) {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasPrefix(name, ".") && slices.Contains(data.ImageExtensions, strings.ToLower(filepath.Ext(name))) {
			files = append(files, path)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("--calib: %w", err)
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("--calib %s: no images found (want fashion-mnist or a folder of .jpg/.png/... files)", src)
	}
	sort.Strings(files)
	if len(files) > n {
		picked := make([]string, n)
		for i := range picked {
			picked[i] = files[i*len(files)/n]
		}
		files = picked
	}
	return &fileImages{files: files, p: p}, nil
}

type datasetImages struct {
	ds  data.Dataset
	idx []int
	tr  *data.Transform
}

func (d *datasetImages) Len() int { return len(d.idx) }
func (d *datasetImages) Image(i int) ([]float32, error) {
	img, _, err := d.ds.Get(d.idx[i])
	if err != nil {
		return nil, err
	}
	x, err := d.tr.Tensor(img, nil)
	if err != nil {
		return nil, err
	}
	return x.Data, nil
}

type fileImages struct {
	files []string
	p     imageproc.Params
}

func (f *fileImages) Len() int { return len(f.files) }
func (f *fileImages) Image(i int) ([]float32, error) {
	img, err := imageproc.DecodeFile(f.files[i], mobileone.DefaultMaxPixels)
	if err != nil {
		return nil, fmt.Errorf("--calib: %w", err)
	}
	return imageproc.Preprocess(img, f.p).Data, nil
}

// compareOnFashionMNIST scores the float and the int8 model on the
// Fashion-MNIST test set: top-1 of each and their agreement.
func compareOnFashionMNIST(m *mobileone.Model, q *quant.Model, dir string, stdout io.Writer) error {
	ds, err := data.LoadFashionMNIST(dir, "test")
	if err != nil {
		return err
	}
	tr := fashionTransform(m.Preprocessing())
	fres, err := train.Evaluate(m.Model, ds, tr, 256, 0)
	if err != nil {
		return err
	}
	qres, agree, err := evalInt8(q, ds, tr, 256, fres.Predictions)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "Fashion-MNIST test (%d images): float32 top-1 %.2f%%, int8 (%s) top-1 %.2f%% (%+.2f), agreement with float32 %.2f%%\n",
		fres.N, fres.Top1, q.Method, qres.Top1, qres.Top1-fres.Top1, agree)
	return nil
}

func fashionTransform(p imageproc.Params) *data.Transform {
	ch := 3
	if p.Gray {
		ch = 1
	}
	resize := p.ResizeShort
	if resize == 28 && p.Crop == 28 {
		resize = 0
	}
	return data.EvalTransform(resize, p.Crop, ch, []float32{p.Mean[0], p.Mean[1], p.Mean[2]}, []float32{p.Std[0], p.Std[1], p.Std[2]})
}

// evalInt8 scores an int8 model; with ref (another model's top-1 per
// image) it also gives the agreement with it in percent.
func evalInt8(q *quant.Model, ds data.Dataset, tr *data.Transform, batch int, ref []int) (*train.EvalResult, float64, error) {
	plans := map[[2]int]*int8Runner{}
	res, err := train.EvaluateForward(ds, tr, batch, 0, q.Config.NumClasses, func(x []float32, n, h, w int) ([]float32, error) {
		r := plans[[2]int{n, h}]
		if r == nil {
			pl, err := q.NewPlan(n, h, w)
			if err != nil {
				return nil, err
			}
			r = &int8Runner{pl.Run}
			plans[[2]int{n, h}] = r
		}
		return r.run(x)
	})
	if err != nil {
		return nil, 0, err
	}
	agree := 0.0
	if ref != nil && len(ref) == len(res.Predictions) {
		same := 0
		for i, v := range res.Predictions {
			if ref[i] == v {
				same++
			}
		}
		agree = 100 * float64(same) / float64(len(ref))
	}
	return res, agree, nil
}

type int8Runner struct {
	run func([]float32) ([]float32, error)
}

// loadInt8 reads an int8 checkpoint, refusing flags that do not apply.
func loadInt8(ck ckptFlags) (*quant.Model, error) {
	if ck.stemStride != 0 || ck.preprocess != "" || ck.variant != "" {
		return nil, fmt.Errorf("%s is an int8 model, which stores its settings: -m, --stem-stride and --preprocess do not apply", ck.weights)
	}
	return quant.Load(ck.weights)
}
