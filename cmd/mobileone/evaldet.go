package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/mobileone-go/mobileone/detect"
	"github.com/mobileone-go/mobileone/internal/fsutil"
)

const evalDetUsage = `usage: mobileone eval --task detect -w det.safetensors --data DIR [--split val] [--size S]
                      [--save-detections results.json] [--json]

Scores an SSDLite-MobileOne detector (fused, as "mobileone train --task detect"
writes it in RUN/model.safetensors, or any checkpoint "mobileone detect" reads)
on a detection data set with COCO's metric, computed as pycocotools' COCOeval
does: AP at IoU .50:.05:.95, AP50, AP75, AP for small, medium and large objects,
AR at 1, 10 and 100 detections, and per-class AP. DIR is a COCO-format folder
(annotations/instances_<split>.json and the images, as "mobileone data
canvases" writes it) or a Pascal VOC folder (Annotations/, ImageSets/Main/).

Each image is resized to S x S (S: --size, else the model's training size,
else 320), detected with torchvision's post-processing (score above 0.001,
300 per class before NMS, 300 per image) and its boxes scaled back to the
image. --save-detections writes them in COCO's results format (image_id,
category_id, bbox as x, y, w, h in pixels of the image, score), readable by
any COCO tool.`

func cmdEvalDetect(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("eval --task detect", evalDetUsage, stderr)
	var weights, dataDir, split, save, task string
	fs.StringVar(&weights, "w", "", "fused detector `checkpoint`")
	fs.StringVar(&task, "task", "detect", "`detect`")
	fs.StringVar(&dataDir, "data", "", "detection data set `folder` (COCO or VOC layout)")
	fs.StringVar(&split, "split", "val", "split to score")
	fs.StringVar(&save, "save-detections", "", "write the detections in COCO's results format to this `file`")
	size := fs.Int("size", 0, "network input side `S` (0: the model's training size, else 320)")
	asJSON := fs.Bool("json", false, "print one JSON object (COCO's summary and per-class AP)")
	precision := addPrecisionFlag(fs)
	rest, err := parse(fs, args)
	if err != nil {
		return err
	}
	switch {
	case len(rest) > 0:
		return fmt.Errorf("unexpected argument %q", rest[0])
	case task != "detect":
		return fmt.Errorf("--task %q: want detect", task)
	case weights == "":
		return errors.New("-w is required: an SSDLite-MobileOne checkpoint (e.g. RUN/model.safetensors)")
	case dataDir == "":
		return errors.New("--data DIR is required: a detection data set (COCO or VOC layout)")
	case *size != 0 && (*size < 32 || *size > 2048):
		return fmt.Errorf("--size must be 32..2048, got %d", *size)
	}
	prec, err := parsePrecisionFlag(*precision)
	if err != nil {
		return err
	}
	det, err := loadDetector(weights, *size, prec)
	if err != nil {
		return err
	}
	ds, err := detect.OpenSplit(dataDir, split)
	if err != nil {
		return err
	}
	for _, w := range ds.Warnings {
		fmt.Fprintf(stderr, "mobileone eval: warning: %s\n", w)
	}
	if len(ds.Classes) != det.Classes {
		return fmt.Errorf("%s has %d classes with the background (%s), the model %d", dataDir, len(ds.Classes), shortList(ds.Classes), det.Classes)
	}
	results, rep, err := evalDetector(det, ds)
	if err != nil {
		return err
	}
	if save != "" {
		if err := fsutil.WriteFileAtomic(save, func(w io.Writer) error { return detect.WriteResults(w, results) }); err != nil {
			return err
		}
	}
	if *asJSON {
		return json.NewEncoder(stdout).Encode(struct {
			Size int `json:"size"`
			*detect.Report
		}{det.Size, rep})
	}
	fmt.Fprintf(stdout, "%s on %s (%s, %d images at %dx%d, %d detections)\n\n", weights, dataDir, split, ds.Len(), det.Size, det.Size, len(results))
	for _, l := range rep.Lines() {
		fmt.Fprintln(stdout, l)
	}
	fmt.Fprintln(stdout)
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "category\tAP\tAP50")
	for _, c := range rep.PerClass {
		fmt.Fprintf(tw, "%d %s\t%.3f\t%.3f\n", c.CategoryID, c.Name, c.AP, c.AP50)
	}
	tw.Flush()
	if save != "" {
		fmt.Fprintf(stdout, "\nwrote %d detections to %s\n", len(results), save)
	}
	return nil
}

// evalDetector detects every image of ds with the fused detector and
// scores the detections with COCO's metric.
func evalDetector(det *detector, ds *detect.Dataset) ([]detect.Result, *detect.Report, error) {
	results := []detect.Result{}
	for i := range ds.Len() {
		img, s, err := ds.Get(i)
		if err != nil {
			return nil, nil, err
		}
		dets, err := det.Detect(img, detect.PostOptions{})
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", s.Path, err)
		}
		r, err := detect.ToResults(s.ID, dets, ds.CategoryIDs)
		if err != nil {
			return nil, nil, err
		}
		results = append(results, r...)
	}
	imgs, cats, gts := ds.GroundTruth()
	rep, err := detect.Evaluate(imgs, cats, gts, results, ds.Names())
	if err != nil {
		return nil, nil, err
	}
	return results, rep, nil
}
