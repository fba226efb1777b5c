package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"text/tabwriter"

	"github.com/mobileone-go/mobileone/dense"
)

const evalSegUsage = `usage: mobileone eval --task segment -w seg.safetensors --data DIR [--split val] [--size S]
                      [--save-masks DIR] [--json]

Scores a DeepLabV3-MobileOne segmentation model (fused, as "mobileone train
--task segment" writes it in RUN/model.safetensors, or any checkpoint
"mobileone segment" reads) on a segmentation dataset (VOC layout or
images/ + masks/, as for training) with the inference graph: mIoU (over the
classes present in the targets or the predictions), per-class IoU and
accuracy, pixel accuracy and the confusion matrix (rows: true class,
columns: predicted class; pixels of value 255 are not counted).

Each image is resized so that its long side is S (aspect kept), padded to
S x S with the mean colour, segmented, and the class map (padding removed,
resized back with nearest neighbour) compared with the image's own mask:
the trainer's validation and "mobileone segment --fit pad". S is --size,
else the model's stored training size, else 512.

--save-masks DIR writes each predicted class map as DIR/<image stem>.png,
an indexed-colour PNG with the VOC palette (palette index = class), at the
image's size.`

func cmdEvalSegment(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("eval --task segment", evalSegUsage, stderr)
	var weights, variant, dataDir, split, saveDir, task string
	addModelFlags(&weights, &variant, fs)
	fs.StringVar(&task, "task", "segment", "`segment` (classify: see mobileone eval -h)")
	fs.StringVar(&dataDir, "data", "", "segmentation dataset `folder`")
	fs.StringVar(&split, "split", "val", "split to score (VOC list name or <split>/ folder)")
	fs.StringVar(&saveDir, "save-masks", "", "write the predicted masks as palette PNGs in this `folder`")
	size := fs.Int("size", 0, "network input side `S` (0: the model's training size, else 512)")
	asJSON := fs.Bool("json", false, "print one JSON object (dense.Report: mean_iou, pixel_accuracy, classes, confusion_matrix)")
	outputStride := fs.Int("output-stride", 0, "backbone output stride `16 or 8` if the checkpoint does not store it")
	rateList := fs.String("rates", "", "ASPP atrous rates if the checkpoint does not store them")
	precision := addPrecisionFlag(fs)
	rest, err := parse(fs, args)
	if err != nil {
		return err
	}
	switch {
	case len(rest) > 0:
		return fmt.Errorf("unexpected argument %q", rest[0])
	case task != "segment":
		return fmt.Errorf("--task %q: want segment or classify", task)
	case weights == "":
		return errors.New("-w is required: a DeepLabV3-MobileOne checkpoint (e.g. RUN/model.safetensors)")
	case dataDir == "":
		return errors.New("--data DIR is required: a segmentation dataset (VOC layout or images/ + masks/)")
	case *size != 0 && (*size < 32 || *size > 4096):
		return fmt.Errorf("--size must be 32..4096, got %d", *size)
	case *outputStride != 0 && *outputStride != 8 && *outputStride != 16:
		return fmt.Errorf("--output-stride %d: want 16 or 8", *outputStride)
	}
	var rates []int
	if *rateList != "" {
		if rates, err = parseRates(*rateList); err != nil {
			return err
		}
	}
	prec, err := parsePrecisionFlag(*precision)
	if err != nil {
		return err
	}
	seg, err := loadSegmenter(weights, segOptions{Variant: variant, OutputStride: *outputStride, Rates: rates, Size: *size, Precision: prec})
	if err != nil {
		return err
	}
	*size = seg.Size // the metadata's if --size was not given
	ds, err := dense.Open(dataDir, split, dense.Options{})
	if err != nil {
		return err
	}
	if n := len(ds.Classes()); n != seg.Classes {
		return fmt.Errorf("%s has %d classes (%s), the model %d", dataDir, n, shortList(ds.Classes()), seg.Classes)
	}
	var keep func(i int, m *dense.Mask) error
	if saveDir != "" {
		if err := os.MkdirAll(saveDir, 0o755); err != nil {
			return err
		}
		keep = func(i int, m *dense.Mask) error {
			return dense.WriteMaskFile(filepath.Join(saveDir, ds.Name(i)+".png"), m)
		}
	}
	cm, err := evalSegmenter(seg, ds, keep)
	if err != nil {
		return err
	}
	rep := cm.Report(ds.Classes())
	if *asJSON {
		return json.NewEncoder(stdout).Encode(struct {
			Images int `json:"images"`
			Size   int `json:"size"`
			dense.Report
		}{ds.Len(), *size, rep})
	}
	pct := func(v *float64) string {
		if v == nil {
			return "-"
		}
		return fmt.Sprintf("%.2f%%", 100**v)
	}
	fmt.Fprintf(stdout, "%s on %s (%s, %d images at %dx%d): mIoU %s  pixel accuracy %s  mean class accuracy %s\n\n",
		weights, dataDir, split, ds.Len(), *size, *size, pct(rep.MeanIoU), pct(rep.PixelAccuracy), pct(rep.MeanAccuracy))
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "class\tIoU\taccuracy\ttarget pixels\tpredicted pixels")
	for _, c := range rep.Classes {
		fmt.Fprintf(tw, "%d %s\t%s\t%s\t%d\t%d\n", c.Class, c.Name, pct(c.IoU), pct(c.Accuracy), c.Target, c.Pred)
	}
	tw.Flush()
	fmt.Fprintln(stdout)
	conf := make([][]int, len(rep.Matrix))
	for i, row := range rep.Matrix {
		for _, v := range row {
			conf[i] = append(conf[i], int(v))
		}
	}
	if err := writeConfusion(stdout, ds.Classes(), conf); err != nil {
		return err
	}
	if saveDir != "" {
		fmt.Fprintf(stdout, "\nwrote %d masks to %s\n", ds.Len(), saveDir)
	}
	return nil
}

// evalSegmenter segments every image of ds with the fused model (pad fit,
// as the trainer validates) and counts the class maps against the masks;
// keep, if not nil, gets each predicted map.
func evalSegmenter(seg *segmenter, ds dense.Dataset, keep func(i int, m *dense.Mask) error) (*dense.Confusion, error) {
	if n := len(ds.Classes()); n != seg.Classes {
		return nil, fmt.Errorf("the data has %d classes, the model %d", n, seg.Classes)
	}
	cm := dense.NewConfusion(seg.Classes)
	for i := 0; i < ds.Len(); i++ {
		img, m, err := ds.Get(i)
		if err != nil {
			return nil, err
		}
		pred, err := seg.Segment(img, false)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", ds.Name(i), err)
		}
		if err := cm.Add(pred.Pix, m.Pix); err != nil {
			return nil, fmt.Errorf("%s: %w", ds.Name(i), err)
		}
		if keep != nil {
			if err := keep(i, pred); err != nil {
				return nil, err
			}
		}
	}
	return cm, nil
}
