package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/mobileone-go/mobileone"
	"github.com/mobileone-go/mobileone/data"
	"github.com/mobileone-go/mobileone/internal/zoo"
	"github.com/mobileone-go/mobileone/train"
)

const evalUsage = `usage: mobileone eval [-w CKPT] [--data fashion-mnist | --data DIR] [--split test] [--batch 256] [--json]

Scores a model on a labelled data set: top-1 and top-5 accuracy, the mean
cross-entropy and a confusion matrix (rows: true class, columns: predicted).
The preprocessing is the model's own (stored by "mobileone train"), else
Fashion-MNIST's with --data fashion-mnist (e.g. for the train-time
model_unfused.pth.tar a run writes), else ImageNet's. --data DIR is one sub-folder of images per class (class order must
match the model's); with --data fashion-mnist, --split test (default) or train.
Without -w, the built-in Fashion-MNIST model (the default of "mobileone
predict") is scored.`

func cmdEval(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("eval", evalUsage, stderr)
	var weights, variant, dataArg, dir, split string
	addModelFlags(&weights, &variant, fs)
	fs.StringVar(&dataArg, "data", "fashion-mnist", "`fashion-mnist` or a folder of class sub-folders")
	fs.StringVar(&dir, "fashion-mnist-dir", data.FashionMNISTDir, "where the Fashion-MNIST IDX files are")
	fs.StringVar(&split, "split", "test", "Fashion-MNIST split: test or train")
	batch := fs.Int("batch", 256, "batch size")
	asJSON := fs.Bool("json", false, "print one JSON object")
	stemStride := fs.Int("stem-stride", 0, "stem stride of a PyTorch checkpoint (not visible in its weights): 1 or 2 (0: 1 with --data fashion-mnist, else 2)")
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
	if *stemStride != 0 && *stemStride != 1 && *stemStride != 2 {
		return fmt.Errorf("--stem-stride must be 1 or 2, got %d", *stemStride)
	}
	var m *mobileone.Model
	if weights == "" {
		if variant != "" || *stemStride != 0 {
			return errors.New("-m and --stem-stride need -w: the built-in model is a Fashion-MNIST model, not a zoo variant")
		}
		if m, err = zoo.Default(); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "mobileone eval: no -w given: scoring the %s\n", zoo.DefaultName)
	} else if m, err = mobileone.Load(weights, mobileone.LoadOptions{Variant: variant, StemStride: *stemStride}); err != nil {
		return err
	}
	if weights != "" && m.Preprocess == nil && dataArg == "fashion-mnist" && *stemStride == 0 && m.Config.StemStride != 1 {
		// No stored configuration (a PyTorch checkpoint): assume the
		// trainer's stride-1 stem for 28×28 inputs.
		if m, err = mobileone.Load(weights, mobileone.LoadOptions{Variant: variant, StemStride: 1}); err != nil {
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
	var tr *data.Transform
	if m.Preprocess == nil && dataArg == "fashion-mnist" {
		// A checkpoint without stored preprocessing (e.g. the train-time
		// .pth.tar that "mobileone train" writes) scored on Fashion-MNIST:
		// its own 28×28 images, normalised as the trainer does.
		ch := 3
		if m.Config.InChannels == 1 {
			ch = 0
		}
		tr = data.EvalTransform(0, 0, ch, []float32{data.FashionMNISTMean}, []float32{data.FashionMNISTStd})
		fmt.Fprintf(stderr, "note: the checkpoint stores no preprocessing; using Fashion-MNIST's (28×28, its mean and std) and stem stride %d (--stem-stride)\n", m.Config.StemStride)
	} else {
		p := m.Preprocessing()
		ch := 3
		if p.Gray {
			ch = 1
		}
		mean, std := []float32{p.Mean[0], p.Mean[1], p.Mean[2]}, []float32{p.Std[0], p.Std[1], p.Std[2]}
		tr = data.EvalTransform(p.ResizeShort, p.Crop, ch, mean, std)
	}
	res, err := train.Evaluate(m.Model, ds, tr, *batch, 0)
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
	tw := tabwriter.NewWriter(stdout, 0, 0, 1, ' ', tabwriter.AlignRight)
	short := func(s string) string {
		s = strings.SplitN(s, ",", 2)[0]
		if len(s) > 10 {
			s = s[:10]
		}
		return s
	}
	fmt.Fprint(tw, "true \\ predicted\t")
	for j := range names {
		fmt.Fprintf(tw, "%s\t", short(names[j]))
	}
	fmt.Fprintln(tw, "recall\t")
	for i, row := range res.Confusion[:len(names)] {
		fmt.Fprintf(tw, "%s\t", short(names[i]))
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
