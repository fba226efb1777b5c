package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/mobileone-go/mobileone"
	"github.com/mobileone-go/mobileone/arch"
	"github.com/mobileone-go/mobileone/dense"
	"github.com/mobileone-go/mobileone/format/pth"
	"github.com/mobileone-go/mobileone/format/safetensors"
	"github.com/mobileone-go/mobileone/graph"
	"github.com/mobileone-go/mobileone/imageproc"
	"github.com/mobileone-go/mobileone/model"
	"github.com/mobileone-go/mobileone/tensor"
)

const segmentUsage = `usage: mobileone segment -w CKPT IMAGE... [-o DIR] [--json] [-m s0..s4] [--classes N]
                         [--size 512] [--fit pad|stretch] [--labels FILE]
                         [--output-stride 16|8] [--rates 12,24,36] [--alpha 0.5]

Segments each image with DeepLabV3 on a MobileOne backbone and writes, in DIR
(default: the current folder), <stem>_mask.png, the class of every pixel as an
indexed-colour PNG with the Pascal VOC palette (palette index = class), and
<stem>_overlay.png, the image with the classes' colours blended in and a legend
of the classes present. Both have the input image's size. --json prints, per
image, the files written and each class's share of the pixels.

CKPT is a fused state dict (safetensors or torch.save) with the fused MobileOne
backbone under "backbone." (the authors' keys: backbone.stage0.reparam_conv.weight,
...) and torchvision's DeepLabHead under "classifier." (classifier.0.convs.0.0.weight,
..., classifier.4.weight): torchvision's DeepLabV3 state dict layout. The
backbone's variant and the class count are read from the tensors' shapes (-m and
--classes check them). What the weights do not show comes from the file's
metadata if it has it ("labels": JSON array of class names, "output_stride",
"rates": JSON array of ASPP rates, "size": the side the model was trained at,
the default of --size), else from the flags: output stride 16 and
torchvision's rates 12,24,36 by default; they must be what the model was trained
with. Class names: --labels FILE (one per line), else the metadata, else "class N".

Preprocessing: --fit pad (default) resizes the image (PIL bilinear) so that its
long side is --size, keeping the aspect ratio, and pads the right and bottom to
--size x --size with the ImageNet mean colour (zero after normalisation);
--fit stretch resizes to --size x --size. Then ImageNet mean/std. The predicted
class map (the argmax of the logits at the network's size) has the padding
removed and is resized to the image's size with nearest neighbour.`

func cmdSegment(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("segment", segmentUsage, stderr)
	var weights, variant, outDir, labelsFile, fit, rateList string
	addModelFlags(&weights, &variant, fs)
	fs.StringVar(&outDir, "o", ".", "output `folder` for the masks and overlays")
	asJSON := fs.Bool("json", false, "print one JSON object per image (files, per-class pixel shares)")
	classes := fs.Int("classes", 0, "check that the checkpoint has `N` classes")
	size := fs.Int("size", 0, "network input side `S` (S x S; 0: the checkpoint's training size from its metadata, else 512)")
	fs.StringVar(&fit, "fit", "pad", "how an image becomes S x S: `pad` (keep the aspect ratio, pad) or stretch")
	fs.StringVar(&labelsFile, "labels", "", "class names, one per line (`file`)")
	outputStride := fs.Int("output-stride", 0, "backbone output stride `16 or 8` if the checkpoint does not store it (default 16)")
	fs.StringVar(&rateList, "rates", "", "ASPP atrous rates, comma-separated, if the checkpoint does not store them (default 12,24,36)")
	alpha := fs.Float64("alpha", 0.5, "overlay opacity of the class colours, 0..1")
	maxMP := fs.Float64("max-megapixels", mobileone.DefaultMaxPixels/1e6, "refuse images larger than this")
	precision := addPrecisionFlag(fs)
	files, err := parse(fs, args)
	if err != nil {
		return err
	}
	switch {
	case weights == "":
		return errors.New("-w is required: a DeepLabV3-MobileOne checkpoint (see mobileone segment -h)")
	case len(files) == 0:
		fs.Usage()
		return errors.New("no images given")
	case *size != 0 && (*size < 32 || *size > 4096):
		return fmt.Errorf("--size must be 32..4096, got %d", *size)
	case fit != "pad" && fit != "stretch":
		return fmt.Errorf("--fit must be pad or stretch, got %q", fit)
	case *alpha < 0 || *alpha > 1:
		return fmt.Errorf("--alpha must be 0..1, got %g", *alpha)
	case *classes < 0:
		return fmt.Errorf("--classes must be positive, got %d", *classes)
	}
	var rates []int
	if rateList != "" {
		if rates, err = parseRates(rateList); err != nil {
			return err
		}
	}
	if err := uniqueStems(files); err != nil {
		return err
	}
	prec, err := parsePrecisionFlag(*precision)
	if err != nil {
		return err
	}
	seg, err := loadSegmenter(weights, segOptions{Variant: variant, Classes: *classes, OutputStride: *outputStride, Rates: rates, Size: *size, Precision: prec})
	if err != nil {
		return err
	}
	if labelsFile != "" {
		if seg.Labels, err = readLabels(labelsFile, seg.Classes); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return err
	}
	enc := json.NewEncoder(stdout)
	var failed int
	for _, f := range files {
		res, err := seg.segmentFile(f, outDir, fit == "stretch", int(*maxMP*1e6), *alpha)
		if err != nil {
			fmt.Fprintf(stderr, "mobileone segment: %s\n", oneLine(err.Error()))
			failed++
			continue
		}
		if *asJSON {
			if err := enc.Encode(res); err != nil {
				return err
			}
			continue
		}
		fmt.Fprintf(stdout, "%s (%dx%d): %s, %s\n", f, res.Width, res.Height, res.Mask, res.Overlay)
		for _, s := range res.Shares {
			fmt.Fprintf(stdout, "  %6.2f%%  %3d  %s\n", 100*s.Share, s.Class, s.Name)
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d images failed", failed, len(files))
	}
	return nil
}

// segOptions settle what a checkpoint's weights do not show.
type segOptions struct {
	Variant      string // s0..s4: the backbone must be it
	Classes      int    // if > 0: the checkpoint must have as many
	OutputStride int    // 0: the metadata's, else 16
	Rates        []int  // nil: the metadata's, else arch.DeepLabRates
	Size         int    // the network's input side
	Precision    string // model.Float32 ("") or model.BFloat16
}

// segmenter is a loaded DeepLabV3-MobileOne, planned for one Size×Size image.
type segmenter struct {
	Config       model.Config
	Classes      int
	OutputStride int
	Rates        []int
	Labels       []string
	Size         int
	plan         *graph.Plan
}

// loadSegmenter reads a DeepLabV3-MobileOne checkpoint (see segmentUsage),
// builds the network for o.Size and loads it strictly by key.
func loadSegmenter(path string, o segOptions) (*segmenter, error) {
	sd, meta, err := readStateDict(path)
	if err != nil {
		return nil, err
	}
	s, err := newSegmenter(sd, meta, o)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}

func newSegmenter(sd map[string]*tensor.Tensor, meta map[string]string, o segOptions) (*segmenter, error) {
	backbone := map[string]*tensor.Tensor{}
	for k, v := range sd {
		if b, ok := strings.CutPrefix(k, "backbone."); ok {
			backbone[b] = v
		}
	}
	if _, ok := sd["backbone.stage0.reparam_conv.weight"]; !ok {
		if _, ok := sd["backbone.stage0.rbr_conv.0.conv.weight"]; ok {
			return nil, errors.New("the backbone is in its train-time (unfused) form; segment runs fused checkpoints (re-parameterise the backbone's blocks first)")
		}
		return nil, fmt.Errorf("not a DeepLabV3-MobileOne checkpoint: no key backbone.stage0.reparam_conv.weight (the fused MobileOne under \"backbone.\", torchvision's DeepLabHead under \"classifier.\")%s", keySample(sd))
	}
	cfg, fused, err := model.DetectConfig(backbone)
	if err != nil {
		return nil, fmt.Errorf("backbone: %w", err)
	}
	if !fused {
		return nil, errors.New("the backbone mixes fused and train-time keys")
	}
	cfg.NumClasses = 0
	if o.Variant != "" {
		want, err := model.Variant(o.Variant)
		if err != nil {
			return nil, fmt.Errorf("-m: %w", err)
		}
		want.K, want.NumClasses = cfg.K, 0
		if !want.SameArchitecture(cfg) {
			return nil, fmt.Errorf("-m %s: the checkpoint's backbone is %s (%s)", o.Variant, orCustom(cfg.Name), cfg.Describe())
		}
	}
	cls, ok := sd["classifier.4.weight"]
	if !ok || len(cls.Shape) != 4 || cls.Shape[0] < 1 {
		if o.Classes == 0 {
			return nil, errors.New("no classifier.4.weight (classes, 256, 1, 1) to read the class count from: give --classes N")
		}
		return nil, errors.New("no classifier.4.weight of shape (classes, 256, 1, 1): not torchvision's DeepLabHead")
	}
	classes := cls.Shape[0]
	if classes >= dense.Ignore {
		return nil, fmt.Errorf("the classifier has %d classes; masks hold class indices 0..%d", classes, dense.Ignore-1)
	}
	if o.Classes > 0 && o.Classes != classes {
		return nil, fmt.Errorf("--classes %d, but the checkpoint's classifier has %d", o.Classes, classes)
	}
	if o.Size == 0 {
		o.Size = 512
		if v, ok := meta["size"]; ok {
			if o.Size, err = strconv.Atoi(v); err != nil || o.Size < 32 || o.Size > 4096 {
				return nil, fmt.Errorf("metadata size %q: want 32..4096", v)
			}
		}
	}
	s := &segmenter{Config: cfg, Classes: classes, OutputStride: o.OutputStride, Rates: o.Rates, Size: o.Size}
	if v, ok := meta["output_stride"]; ok && s.OutputStride == 0 {
		if s.OutputStride, err = strconv.Atoi(v); err != nil {
			return nil, fmt.Errorf("metadata output_stride %q: %w", v, err)
		}
	}
	if s.OutputStride == 0 {
		s.OutputStride = 16
	}
	if v, ok := meta["rates"]; ok && s.Rates == nil {
		if err := json.Unmarshal([]byte(v), &s.Rates); err != nil {
			return nil, fmt.Errorf("metadata rates %q: %w", v, err)
		}
	}
	if s.Rates == nil {
		s.Rates = arch.DeepLabRates
	}
	if v, ok := meta["labels"]; ok {
		if err := json.Unmarshal([]byte(v), &s.Labels); err != nil {
			return nil, fmt.Errorf("metadata labels: %w", err)
		}
		if len(s.Labels) != classes {
			return nil, fmt.Errorf("metadata has %d labels for %d classes", len(s.Labels), classes)
		}
	}
	g, err := arch.DeepLabV3MobileOne(cfg, classes, s.OutputStride, s.Rates, o.Size, o.Size)
	if err != nil {
		return nil, err
	}
	if err := g.Load(sd); err != nil {
		return nil, err
	}
	if g, err = model.PrecisionGraph(g, o.Precision); err != nil {
		return nil, err
	}
	if s.plan, err = graph.NewPlan(g, 1); err != nil {
		return nil, err
	}
	return s, nil
}

func orCustom(name string) string {
	if name == "" {
		return "a custom configuration"
	}
	return name
}

// segResult is one image's outcome (the --json line).
type segResult struct {
	File    string        `json:"file"`
	Width   int           `json:"width"`
	Height  int           `json:"height"`
	Mask    string        `json:"mask"`
	Overlay string        `json:"overlay"`
	Shares  []dense.Share `json:"shares"`
}

// segmentFile segments one image file and writes its mask and overlay,
// both or neither.
func (s *segmenter) segmentFile(path, outDir string, stretch bool, maxPixels int, alpha float64) (*segResult, error) {
	img, err := imageproc.DecodeFile(path, maxPixels)
	if err != nil {
		return nil, err
	}
	im := imageproc.ToImage8(img, false)
	m, err := s.Segment(im, stretch)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	stem := strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
	res := &segResult{File: path, Width: im.Width, Height: im.Height,
		Mask: filepath.Join(outDir, stem+"_mask.png"), Overlay: filepath.Join(outDir, stem+"_overlay.png"),
		Shares: dense.Shares(m, s.Labels)}
	if err := dense.WriteMaskFile(res.Mask, m); err != nil {
		return nil, err
	}
	if err := dense.WritePNGFile(res.Overlay, dense.Overlay(im, m, s.Labels, alpha)); err != nil {
		os.Remove(res.Mask)
		return nil, err
	}
	return res, nil
}

// Segment returns the class map of an RGB image at its own size.
func (s *segmenter) Segment(im *imageproc.Image8, stretch bool) (*dense.Mask, error) {
	if im.Channels != 3 {
		return nil, fmt.Errorf("segment needs an RGB image, got %d channels", im.Channels)
	}
	S := s.Size
	var x *imageproc.Image8
	w, h := S, S // the image's part of the network input
	if stretch {
		x = im.Resize(S, S)
	} else {
		x, w, h = dense.FitPad(im, S, meanFill)
	}
	logits, err := s.plan.Run(dense.CHW(x, imageproc.ImageNetMean, imageproc.ImageNetStd))
	if err != nil {
		return nil, err
	}
	m := dense.NewMask(w, h)
	plane := S * S
	for y := 0; y < h; y++ {
		for xx := 0; xx < w; xx++ {
			p := y*S + xx
			best, bv := 0, logits[p]
			for c := 1; c < s.Classes; c++ {
				if v := logits[c*plane+p]; v > bv {
					best, bv = c, v
				}
			}
			m.Pix[y*w+xx] = uint8(best)
		}
	}
	return m.ResizeNearest(im.Width, im.Height), nil
}

// meanFill is the ImageNet mean colour, zero after normalisation.
var meanFill = [3]uint8{124, 116, 104}

// readStateDict reads a safetensors or torch.save file with its string
// metadata (nil if none).
func readStateDict(path string) (map[string]*tensor.Tensor, map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, nil, err
	}
	head := make([]byte, 4)
	n, _ := f.ReadAt(head, 0)
	if n == 4 && string(head) == "PK\x03\x04" {
		sd, meta, err := pth.LoadWithMetadata(f, st.Size())
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", path, err)
		}
		return stripModulePrefix(sd), meta, nil
	}
	sf, err := safetensors.Read(f, st.Size())
	if err != nil {
		return nil, nil, fmt.Errorf("%s: not a torch.save or safetensors file (%w)", path, err)
	}
	return stripModulePrefix(sf.Tensors), sf.Metadata, nil
}

func keySample(sd map[string]*tensor.Tensor) string {
	if len(sd) == 0 {
		return "; the file holds no tensors"
	}
	keys := make([]string, 0, len(sd))
	for k := range sd {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if len(keys) > 3 {
		keys = keys[:3]
	}
	return "; it has " + strings.Join(keys, ", ") + ", …"
}

// parseRates reads "12,24,36".
func parseRates(s string) ([]int, error) {
	var rates []int
	for _, f := range strings.Split(s, ",") {
		r, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || r < 1 || r > 1024 {
			return nil, fmt.Errorf("bad --rates %q: want positive integers separated by commas", s)
		}
		rates = append(rates, r)
	}
	return rates, nil
}

// readLabels reads one class name per line; there must be n.
func readLabels(path string, n int) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var names []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" {
			names = append(names, l)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(names) != n {
		return nil, fmt.Errorf("%s: %d class names for %d classes", path, len(names), n)
	}
	return names, nil
}

// uniqueStems refuses inputs whose outputs would overwrite each other.
func uniqueStems(files []string) error {
	seen := map[string]string{}
	for _, f := range files {
		stem := strings.TrimSuffix(filepath.Base(f), filepath.Ext(f))
		if prev, ok := seen[stem]; ok {
			return fmt.Errorf("%s and %s would both write %s_mask.png: segment them into different -o folders", prev, f, stem)
		}
		seen[stem] = f
	}
	return nil
}

// graphSpec is zooSpec that also knows the segmentation models
// (deeplabv3_mobileone_s0..s4), for the commands that run any graph
// (bench, export, info): their class count, output stride and rates come
// from the checkpoint weights (if given) as for segment.
func graphSpec(name, weights string) (*arch.Spec, error) {
	if strings.HasPrefix(name, "ssdlite_") {
		return detSpec(name, weights)
	}
	if !strings.HasPrefix(name, "deeplabv3_") {
		return zooSpec(name)
	}
	var classes, outputStride int
	var rates []int
	if weights != "" {
		sd, meta, err := readStateDict(weights)
		if err != nil {
			return nil, err
		}
		if w, ok := sd["classifier.4.weight"]; ok && len(w.Shape) > 0 {
			classes = w.Shape[0]
		}
		if v, ok := meta["output_stride"]; ok {
			outputStride, _ = strconv.Atoi(v)
		}
		if v, ok := meta["rates"]; ok {
			json.Unmarshal([]byte(v), &rates) // a bad value: the defaults, and Load or the rates' check says what is wrong
		}
	}
	return arch.SegmentationSpec(name, classes, outputStride, rates)
}
