package detect

import (
	"fmt"
	"math"
)

// DefaultBoxes generates SSD's default boxes (anchors) as torchvision's
// DefaultBoxGenerator. For feature map k of F maps, the scale is
// s_k = MinRatio + (MaxRatio - MinRatio) k / (F - 1), with s_F = 1; every
// location gets the boxes (s_k, s_k), (s'_k, s'_k) with s'_k = sqrt(s_k s_{k+1}),
// and (s_k sqrt(r), s_k / sqrt(r)), (s_k / sqrt(r), s_k sqrt(r)) for each
// aspect ratio r of map k, in that order, centred at ((j + 0.5) / W_k,
// (i + 0.5) / H_k) of the image (no Steps) or ((j + 0.5) step_k / imgW, ...)
// (Steps), sizes clamped to [0, 1] when Clip is set.
type DefaultBoxes struct {
	AspectRatios       [][]int // per feature map
	MinRatio, MaxRatio float64
	Scales             []float64 // optional: len(AspectRatios)+1 scales instead of MinRatio/MaxRatio
	Steps              []int     // optional: one per feature map
	Clip               bool
}

// SSDLiteBoxes is the generator of torchvision's ssdlite320_mobilenet_v3_large:
// aspect ratios [2, 3] on six maps, min_ratio 0.2, max_ratio 0.95, no steps, clip.
func SSDLiteBoxes() DefaultBoxes {
	ar := make([][]int, 6)
	for i := range ar {
		ar[i] = []int{2, 3}
	}
	return DefaultBoxes{AspectRatios: ar, MinRatio: 0.2, MaxRatio: 0.95, Clip: true}
}

// PerLocation returns the number of boxes at each location of each map
// (2 + 2 len(AspectRatios[k])): the heads' anchors per location.
func (d DefaultBoxes) PerLocation() []int {
	n := make([]int, len(d.AspectRatios))
	for k, r := range d.AspectRatios {
		n[k] = 2 + 2*len(r)
	}
	return n
}

// scales returns the F+1 scales.
func (d DefaultBoxes) scales() []float64 {
	if d.Scales != nil {
		return d.Scales
	}
	f := len(d.AspectRatios)
	if f == 1 {
		return []float64{d.MinRatio, d.MaxRatio}
	}
	s := make([]float64, 0, f+1)
	for k := range f {
		s = append(s, d.MinRatio+(d.MaxRatio-d.MinRatio)*float64(k)/(float64(f)-1.0))
	}
	return append(s, 1.0)
}

// Generate returns the default boxes in pixels (x1, y1, x2, y2) for an
// image of imgH×imgW and feature maps of the sizes given ([H, W] each), in
// the order of the heads' outputs: map by map, row-major locations, boxes
// of a location together.
func (d DefaultBoxes) Generate(imgH, imgW int, feats [][2]int) ([]Box, error) {
	f := len(d.AspectRatios)
	if len(feats) != f {
		return nil, fmt.Errorf("detect: %d feature maps for %d aspect-ratio lists", len(feats), f)
	}
	if d.Steps != nil && len(d.Steps) != f {
		return nil, fmt.Errorf("detect: %d steps for %d feature maps", len(d.Steps), f)
	}
	sc := d.scales()
	if len(sc) < f+1 {
		return nil, fmt.Errorf("detect: %d scales for %d feature maps, want %d", len(sc), f, f+1)
	}
	if imgH <= 0 || imgW <= 0 {
		return nil, fmt.Errorf("detect: image size %dx%d", imgW, imgH)
	}
	var out []Box
	for k, fk := range feats {
		if fk[0] <= 0 || fk[1] <= 0 {
			return nil, fmt.Errorf("detect: feature map %d size %dx%d", k, fk[1], fk[0])
		}
		// width-height pairs in float64, then float32 as torch.as_tensor does
		sp := math.Sqrt(sc[k] * sc[k+1])
		wh := [][2]float64{{sc[k], sc[k]}, {sp, sp}}
		for _, ar := range d.AspectRatios[k] {
			q := math.Sqrt(float64(ar))
			wh = append(wh, [2]float64{sc[k] * q, sc[k] / q}, [2]float64{sc[k] / q, sc[k] * q})
		}
		pairs := make([][2]float32, len(wh))
		for i, p := range wh {
			pairs[i] = [2]float32{float32(p[0]), float32(p[1])}
			if d.Clip {
				pairs[i] = [2]float32{min(max(pairs[i][0], 0), 1), min(max(pairs[i][1], 0), 1)}
			}
		}
		var xf, yf float32
		if d.Steps != nil {
			xf, yf = float32(float64(imgW)/float64(d.Steps[k])), float32(float64(imgH)/float64(d.Steps[k]))
		} else {
			yf, xf = float32(fk[0]), float32(fk[1])
		}
		W, H := float32(imgW), float32(imgH)
		for i := range fk[0] {
			cy := (float32(i) + 0.5) / yf
			for j := range fk[1] {
				cx := (float32(j) + 0.5) / xf
				for _, p := range pairs {
					hw, hh := float32(0.5*p[0]), float32(0.5*p[1])
					out = append(out, Box{(cx - hw) * W, (cy - hh) * H, (cx + hw) * W, (cy + hh) * H})
				}
			}
		}
	}
	return out, nil
}

// Match assigns default boxes to ground-truth boxes as torchvision's
// SSDMatcher(threshold): every anchor takes the ground truth of highest
// IoU (the first on ties) if that IoU is at least threshold, else -1; then
// every ground truth g, in order, claims its best anchor (the first on
// ties), overriding the above (a later ground truth wins an anchor two
// want). iou is box_iou(gt, anchors): (G, A), from valid boxes (no NaN).
// With no ground truth every anchor is -1.
func Match(iou [][]float32, nAnchors int, threshold float32) []int {
	m := make([]int, nAnchors)
	for a := range m {
		m[a] = -1
		best := float32(math.Inf(-1))
		for g := range iou {
			if v := iou[g][a]; v > best { // torch's max: the first maximum

				best, m[a] = v, g
			}
		}
		if !(best >= threshold) {
			m[a] = -1
		}
	}
	for g, row := range iou {
		bi, best := 0, float32(math.Inf(-1))
		for a, v := range row {
			if v > best {
				bi, best = a, v
			}
		}
		if len(row) > 0 {
			m[bi] = g
		}
	}
	return m
}
