package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/mobileone-go/mobileone"
	"github.com/mobileone-go/mobileone/arch"
	"github.com/mobileone-go/mobileone/dense"
	"github.com/mobileone-go/mobileone/detect"
	"github.com/mobileone-go/mobileone/graph"
	"github.com/mobileone-go/mobileone/imageproc"
	"github.com/mobileone-go/mobileone/model"
	"github.com/mobileone-go/mobileone/tensor"
)

const detectUsage = `usage: mobileone detect -w CKPT IMAGE... [-o DIR] [--score 0.3] [--json]
                        [--size 320] [--labels FILE] [--max-detections 100]

Detects objects with SSDLite on a MobileOne backbone and writes, in DIR (default:
the current folder), <stem>_detections.png: the image with every detection
scoring at least --score drawn as a box with its class name and score. It
prints each image's detections (class, score, box x1,y1,x2,y2 in pixels of the
original image); --json prints one JSON object per image instead (file, size,
output PNG, detections with "box" [x1, y1, x2, y2] in pixels of the original
image, "label", "name", "score").

CKPT is a fused detector as "mobileone train --task detect" writes it
(safetensors or torch.save): the fused MobileOne under "backbone."
(backbone.stage0.reparam_conv.weight, ...), torchvision's SSDLite extra blocks
under backbone.extra.0..3 and SSDLiteHead under head.classification_head and
head.regression_head (torchvision's SSD state dict layout). The backbone, the
class count (background included) and the extra blocks' width are read from the
tensors' shapes; the file's metadata gives "labels" (JSON array of class names,
index 0 the background) and "size" (the side it was trained at, the default of
--size). Class names: --labels FILE (one per line, background first), else the
metadata, else "class N".

Preprocessing, as torchvision's SSDLite: the image is resized (bilinear) to
--size x --size, ignoring its aspect ratio, then ImageNet mean/std. Post-
processing as torchvision's: softmax, per class the 300 best above 0.001,
class-wise NMS at IoU 0.55, the best --max-detections; boxes are scaled back to
the original image.`

func cmdDetect(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("detect", detectUsage, stderr)
	var weights, outDir, labelsFile string
	fs.StringVar(&weights, "w", "", "fused detector `checkpoint` (.safetensors or torch.save)")
	fs.StringVar(&outDir, "o", ".", "output `folder` for the drawn PNGs")
	score := fs.Float64("score", 0.3, "draw and print detections scoring at least `S` (0..1)")
	asJSON := fs.Bool("json", false, "print one JSON object per image")
	size := fs.Int("size", 0, "network input side `S` (0: the checkpoint's training size from its metadata, else 320)")
	fs.StringVar(&labelsFile, "labels", "", "class names, one per line, background first (`file`)")
	maxDet := fs.Int("max-detections", 100, "detections per image at most")
	maxMP := fs.Float64("max-megapixels", mobileone.DefaultMaxPixels/1e6, "refuse images larger than this")
	precision := addPrecisionFlag(fs)
	files, err := parse(fs, args)
	if err != nil {
		return err
	}
	switch {
	case weights == "":
		return errors.New("-w is required: an SSDLite-MobileOne checkpoint (see mobileone detect -h)")
	case len(files) == 0:
		fs.Usage()
		return errors.New("no images given")
	case *score < 0 || *score > 1:
		return fmt.Errorf("--score must be 0..1, got %g", *score)
	case *size != 0 && (*size < 32 || *size > 2048):
		return fmt.Errorf("--size must be 32..2048, got %d", *size)
	case *maxDet < 1:
		return fmt.Errorf("--max-detections must be positive, got %d", *maxDet)
	}
	if err := uniqueStems(files); err != nil {
		return err
	}
	prec, err := parsePrecisionFlag(*precision)
	if err != nil {
		return err
	}
	det, err := loadDetector(weights, *size, prec)
	if err != nil {
		return err
	}
	if labelsFile != "" {
		if det.Labels, err = readLabels(labelsFile, det.Classes); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return err
	}
	enc := json.NewEncoder(stdout)
	var failed int
	for _, f := range files {
		res, err := det.detectFile(f, outDir, float32(*score), *maxDet, int(*maxMP*1e6))
		if err != nil {
			fmt.Fprintf(stderr, "mobileone detect: %s\n", oneLine(err.Error()))
			failed++
			continue
		}
		if *asJSON {
			if err := enc.Encode(res); err != nil {
				return err
			}
			continue
		}
		fmt.Fprintf(stdout, "%s (%dx%d): %d objects, %s\n", f, res.Width, res.Height, len(res.Detections), res.Output)
		for _, d := range res.Detections {
			fmt.Fprintf(stdout, "  %-16s %.3f  %.1f,%.1f,%.1f,%.1f\n", d.Name, d.Score, d.Box[0], d.Box[1], d.Box[2], d.Box[3])
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d images failed", failed, len(files))
	}
	return nil
}

// detector is a loaded SSDLite-MobileOne, planned for one Size×Size image.
type detector struct {
	Config  model.Config
	Classes int // background included
	Width   float64
	Size    int
	Labels  []string // by class, index 0 the background; nil: "class N"
	plan    *graph.Plan
	anchors []detect.Box
	logits  []float32
	regs    []float32
}

// loadDetector reads a fused SSDLite-MobileOne checkpoint (detectUsage),
// builds the network at size (0: the metadata's, else 320) and loads it
// strictly by key.
func loadDetector(path string, size int, precision string) (*detector, error) {
	sd, meta, err := readStateDict(path)
	if err != nil {
		return nil, err
	}
	d, err := newDetector(sd, meta, size, precision)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return d, nil
}

const detClsKey = "head.classification_head.module_list.0.1.weight"

func newDetector(sd map[string]*tensor.Tensor, meta map[string]string, size int, precision string) (*detector, error) {
	backbone := map[string]*tensor.Tensor{}
	for k, v := range sd {
		if b, ok := strings.CutPrefix(k, "backbone."); ok && !strings.HasPrefix(b, "extra.") {
			backbone[b] = v
		}
	}
	if _, ok := sd["backbone.stage0.reparam_conv.weight"]; !ok {
		if _, ok := sd["backbone.stage0.rbr_conv.0.conv.weight"]; ok {
			return nil, errors.New("the backbone is in its train-time (unfused) form; detect runs fused checkpoints (the final.safetensors of a detection run)")
		}
		return nil, fmt.Errorf("not an SSDLite-MobileOne checkpoint: no key backbone.stage0.reparam_conv.weight (the fused MobileOne under \"backbone.\", SSDLite's extra blocks under \"backbone.extra.\" and its head under \"head.\")%s", keySample(sd))
	}
	cfg, fused, err := model.DetectConfig(backbone)
	if err != nil {
		return nil, fmt.Errorf("backbone: %w", err)
	}
	if !fused {
		return nil, errors.New("the backbone mixes fused and train-time keys")
	}
	cfg.NumClasses = 0
	cls, ok := sd[detClsKey]
	if !ok || len(cls.Shape) != 4 || cls.Shape[0]%arch.SSDLiteAnchors != 0 || cls.Shape[0] < 2*arch.SSDLiteAnchors {
		return nil, fmt.Errorf("no %s of shape (6·classes, C, 1, 1): not torchvision's SSDLiteHead with 6 anchors per location", detClsKey)
	}
	classes := cls.Shape[0] / arch.SSDLiteAnchors
	e0, ok := sd["backbone.extra.0.2.0.weight"]
	if !ok || len(e0.Shape) != 4 {
		return nil, errors.New("no backbone.extra.0.2.0.weight: not SSDLite's extra blocks")
	}
	width := float64(e0.Shape[0]) / float64(arch.SSDExtraDepths[0])
	if v, ok := meta["width"]; ok {
		if width, err = strconv.ParseFloat(v, 64); err != nil || width <= 0 {
			return nil, fmt.Errorf("metadata width %q: want a positive number", v)
		}
	}
	if size == 0 {
		size = 320
		if v, ok := meta["size"]; ok {
			if size, err = strconv.Atoi(v); err != nil || size < 32 || size > 2048 {
				return nil, fmt.Errorf("metadata size %q: want 32..2048", v)
			}
		}
	}
	d := &detector{Config: cfg, Classes: classes, Width: width, Size: size}
	if v, ok := meta["labels"]; ok {
		if err := json.Unmarshal([]byte(v), &d.Labels); err != nil {
			return nil, fmt.Errorf("metadata labels: %w", err)
		}
		if len(d.Labels) != classes {
			return nil, fmt.Errorf("metadata has %d labels for %d classes (background included)", len(d.Labels), classes)
		}
	}
	g, err := arch.SSDLiteMobileOne(cfg, classes, width, size)
	if err != nil {
		return nil, err
	}
	if err := g.Load(sd); err != nil {
		return nil, err
	}
	if d.anchors, err = detect.SSDLiteBoxes().Generate(size, size, arch.SSDLiteMapSizes(g)); err != nil {
		return nil, err
	}
	if g, err = model.PrecisionGraph(g, precision); err != nil {
		return nil, err
	}
	if d.plan, err = graph.NewPlan(g, 1); err != nil {
		return nil, err
	}
	return d, nil
}

// Detect returns the detections of an image (pixels of the image), best
// first, with torchvision's post-processing and score threshold 0.001
// unless o says otherwise.
func (d *detector) Detect(im *imageproc.Image8, o detect.PostOptions) ([]detect.Detection, error) {
	if im.Channels != 3 {
		return nil, fmt.Errorf("detect needs an RGB image, got %d channels", im.Channels)
	}
	out, err := d.plan.Run(dense.CHW(im.Resize(d.Size, d.Size), imageproc.ImageNetMean, imageproc.ImageNetStd))
	if err != nil {
		return nil, err
	}
	if d.logits, d.regs, err = arch.SSDLiteSplit(out, d.Classes, d.logits, d.regs); err != nil {
		return nil, err
	}
	dets, err := detect.Postprocess(d.logits, d.regs, d.anchors, d.Classes, d.Size, d.Size, o)
	if err != nil {
		return nil, err
	}
	detect.Rescale(dets, d.Size, d.Size, im.Height, im.Width)
	return dets, nil
}

func (d *detector) name(label int) string {
	if label < len(d.Labels) {
		return d.Labels[label]
	}
	return fmt.Sprintf("class %d", label)
}

// detResult is one image's outcome (the --json line).
type detResult struct {
	File       string      `json:"file"`
	Width      int         `json:"width"`
	Height     int         `json:"height"`
	Output     string      `json:"output"`
	Detections []detObject `json:"detections"`
}

type detObject struct {
	Box   [4]float32 `json:"box"` // x1, y1, x2, y2 pixels of the original image
	Label int        `json:"label"`
	Name  string     `json:"name"`
	Score float32    `json:"score"`
}

// detectFile detects the objects of one image file and writes the drawn
// PNG (atomically).
func (d *detector) detectFile(path, outDir string, score float32, maxDet, maxPixels int) (*detResult, error) {
	img, err := imageproc.DecodeFile(path, maxPixels)
	if err != nil {
		return nil, err
	}
	im := imageproc.ToImage8(img, false)
	dets, err := d.Detect(im, detect.PostOptions{MaxDetections: maxDet})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	var kept []detect.Detection
	for _, x := range dets {
		if x.Score >= score {
			kept = append(kept, x)
		}
	}
	stem := strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
	res := &detResult{File: path, Width: im.Width, Height: im.Height, Output: filepath.Join(outDir, stem+"_detections.png"),
		Detections: []detObject{}}
	for _, x := range kept {
		res.Detections = append(res.Detections, detObject{Box: x.Box, Label: x.Label, Name: d.name(x.Label), Score: x.Score})
	}
	if err := dense.WritePNGFile(res.Output, detect.Draw(im, kept, d.Labels)); err != nil {
		return nil, err
	}
	return res, nil
}

// detSpec is graphSpec for the detection models (ssdlite_mobileone_s0..s4):
// the class count and width from the checkpoint (if given), as detect
// reads them.
func detSpec(name, weights string) (*arch.Spec, error) {
	var classes int
	var width float64
	if weights != "" {
		sd, meta, err := readStateDict(weights)
		if err != nil {
			return nil, err
		}
		if w, ok := sd[detClsKey]; ok && len(w.Shape) > 0 {
			classes = w.Shape[0] / arch.SSDLiteAnchors
		}
		if e, ok := sd["backbone.extra.0.2.0.weight"]; ok && len(e.Shape) > 0 {
			width = float64(e.Shape[0]) / float64(arch.SSDExtraDepths[0])
		}
		if v, ok := meta["width"]; ok {
			width, _ = strconv.ParseFloat(v, 64) // a bad value: Load says what does not fit
		}
	}
	return arch.DetectionSpec(name, classes, width)
}
