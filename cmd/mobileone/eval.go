package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"unicode/utf8"

	"github.com/mobileone-go/mobileone"
	"github.com/mobileone-go/mobileone/data"
	"github.com/mobileone-go/mobileone/internal/zoo"
	"github.com/mobileone-go/mobileone/model"
	"github.com/mobileone-go/mobileone/quant"
	"github.com/mobileone-go/mobileone/train"
)

const evalUsage = `usage: mobileone eval [-w CKPT] [--data fashion-mnist | --data DIR] [--split test] [--batch 256] [--json]
       mobileone eval --task segment -w seg.safetensors --data DIR   (see mobileone eval --task segment -h)
       mobileone eval --task detect -w det.safetensors --data DIR    (see mobileone eval --task detect -h)

Scores a model on a labelled data set: top-1 and top-5 accuracy, the mean
cross-entropy and a confusion matrix (rows: true class with its number and full
name; columns: predicted class, by number). The preprocessing is the one the
checkpoint stores (files written by mobileone do); for a plain PyTorch state
dict, Fashion-MNIST's with --data fashion-mnist, ImageNet's for an ImageNet-
shaped model (said on stderr), else --preprocess must give it. --data DIR is one
sub-folder of images per class (class order must match the model's); with
--data fashion-mnist, --split test (default) or train.
Without -w, the built-in Fashion-MNIST model (the default of "mobileone
predict") is scored.`

func cmdEval(args []string, stdout, stderr io.Writer) error {
	switch task, _ := flagValue(args, "task"); task {
	case "segment":
		return cmdEvalSegment(args, stdout, stderr)
	case "detect":
		return cmdEvalDetect(args, stdout, stderr)
	case "", "classify":
		args = withoutFlag(args, "task")
	default:
		return fmt.Errorf("--task %q: want classify (the default), segment or detect", task)
	}
	fs := newFlags("eval", evalUsage, stderr)
	var ck ckptFlags
	var dataArg, dir, split string
	ck.register(fs, true)
	ck.registerPrecision(fs)
	fs.StringVar(&dataArg, "data", "fashion-mnist", "`fashion-mnist` or a folder of class sub-folders")
	fs.StringVar(&dir, "fashion-mnist-dir", data.FashionMNISTDir, "where the Fashion-MNIST IDX files are")
	fs.StringVar(&split, "split", "test", "Fashion-MNIST split: test or train")
	batch := fs.Int("batch", 256, "batch size")
	asJSON := fs.Bool("json", false, "print one JSON object")
	rest, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(rest) > 0 {
		return fmt.Errorf("unexpected argument %q", rest[0])
	}
	if *batch < 1 {
		return fmt.Errorf("--batch must be at least 1")
	}
	if err := ck.checkBuiltin(); err != nil {
		return err
	}
	int8File := ck.weights != "" && quant.IsInt8(ck.weights)
	if err := ck.checkPrecision(int8File); err != nil {
		return err
	}
	if int8File {
		return evalInt8Cmd(ck, dataArg, dir, split, *batch, *asJSON, stdout)
	}
	var m *mobileone.Model
	if ck.weights == "" {
		if m, err = zoo.Default(); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "mobileone eval: no -w given: scoring the %s\n", zoo.DefaultName)
	} else {
		if dataArg == "fashion-mnist" && (ck.stemStride == 0 || ck.preprocess == "") {
			// Scored on Fashion-MNIST, a checkpoint that stores no settings
			// (e.g. a plain PyTorch state dict) gets the trainer's: a
			// stride-1 stem for its 28×28 images and its preprocessing.
			probe, err := mobileone.Load(ck.weights, mobileone.LoadOptions{Variant: ck.variant, StemStride: ck.stemStride})
			if err != nil {
				return err
			}
			var said []string
			if probe.Assumed.StemStride {
				ck.stemStride = 1
				said = append(said, "stem stride 1")
			}
			if probe.Assumed.Preprocess && ck.preprocess == "" {
				ck.preprocess = "fashion-mnist"
				said = append(said, "Fashion-MNIST's preprocessing (28×28, its mean and std)")
			}
			if len(said) > 0 {
				fmt.Fprintf(stderr, "note: %s does not store its settings: assumed the trainer's for --data fashion-mnist: %s; --stem-stride and --preprocess override\n",
					ck.weights, strings.Join(said, ", "))
			}
		}
		if m, err = ck.load(mobileone.LoadOptions{}, true, stderr); err != nil {
			return err
		}
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
	p := m.Preprocessing()
	ch := 3
	if p.Gray {
		ch = 1
	}
	mean, std := []float32{p.Mean[0], p.Mean[1], p.Mean[2]}, []float32{p.Std[0], p.Std[1], p.Std[2]}
	resize := p.ResizeShort
	if dataArg == "fashion-mnist" && resize == 28 && p.Crop == 28 {
		resize = 0 // the images are 28×28 already
	}
	tr := data.EvalTransform(resize, p.Crop, ch, mean, std)
	m = ck.applyPrecision(m)
	res, err := train.EvaluatePlan(m.Model, ds, tr, *batch, 0, model.PlanOptions{Precision: m.Precision})
	if err != nil {
		return err
	}
	names := ds.Classes()
	if *asJSON {
		return json.NewEncoder(stdout).Encode(struct {
			*train.EvalResult
			Classes []string `json:"classes"`
		}{res, names})
	}
	fmt.Fprintf(stdout, "%s on %s (%d images): top-1 %.2f%%  top-5 %.2f%%  loss %.4f\n\n", m.Source, dataArg, res.N, res.Top1, res.Top5, res.Loss)
	return writeConfusion(stdout, names, res.Confusion)
}

// writeConfusion prints a confusion matrix whose columns are class numbers
// and whose rows carry the number and the full class name, so long or
// similar names (T-shirt/top, Shirt) stay distinguishable.
func writeConfusion(w io.Writer, names []string, conf [][]int) error {
	tw := tabwriter.NewWriter(w, 0, 0, 1, ' ', tabwriter.AlignRight)
	label := func(i int) string { return fmt.Sprintf("%d %s", i, names[i]) }
	width := len("true \\ predicted")
	for i := range names {
		width = max(width, utf8.RuneCountInString(label(i)))
	}
	left := func(s string) string { return s + strings.Repeat(" ", width-utf8.RuneCountInString(s)) }
	fmt.Fprintf(tw, "%s\t", left("true \\ predicted"))
	for j := range names {
		fmt.Fprintf(tw, "%d\t", j)
	}
	fmt.Fprintln(tw, "recall\t")
	for i, row := range conf[:len(names)] {
		fmt.Fprintf(tw, "%s\t", left(label(i)))
		total := 0
		for j := range names {
			fmt.Fprintf(tw, "%d\t", row[j])
			total += row[j]
		}
		rec := 0.0
		if total > 0 {
			rec = 100 * float64(row[i]) / float64(total)
		}
		fmt.Fprintf(tw, "%.1f%%\t\n", rec)
	}
	return tw.Flush()
}
