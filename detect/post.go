package detect

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"sort"
)

// NMS is torchvision.ops.nms: boxes visited by decreasing score (stable:
// index order on ties), each kept box suppressing the later ones whose IoU
// with it is above iouThresh. It returns the kept indexes by decreasing
// score.
func NMS(boxes []Box, scores []float32, iouThresh float32) []int {
	order := sortedByScore(scores, nil)
	return nmsOrdered(boxes, order, iouThresh)
}

func sortedByScore(scores []float32, idx []int) []int {
	if idx == nil {
		idx = make([]int, len(scores))
		for i := range idx {
			idx[i] = i
		}
	}
	// by decreasing score, ties by index: the order of a stable sort, with the speed of pdqsort
	slices.SortFunc(idx, func(p, q int) int {
		if c := cmp.Compare(scores[q], scores[p]); c != 0 {
			return c
		}
		return cmp.Compare(p, q)
	})
	return idx
}

// nmsOrdered runs the suppression of torchvision's CPU kernel over boxes
// visited in order.
func nmsOrdered(boxes []Box, order []int, thr float32) []int {
	sup := make([]bool, len(boxes))
	areas := make([]float32, len(boxes))
	for _, i := range order {
		areas[i] = boxes[i].Area()
	}
	var keep []int
	for oi, i := range order {
		if sup[i] {
			continue
		}
		keep = append(keep, i)
		b := boxes[i]
		ia := areas[i]
		for _, j := range order[oi+1:] {
			if sup[j] {
				continue
			}
			c := boxes[j]
			w := max(0, min(b[2], c[2])-max(b[0], c[0]))
			h := max(0, min(b[3], c[3])-max(b[1], c[1]))
			inter := float32(w * h)
			if inter/(ia+areas[j]-inter) > thr {
				sup[j] = true
			}
		}
	}
	return keep
}

// BatchedNMS is torchvision.ops.batched_nms: NMS within each category
// (idxs), never across. As torchvision, up to 1000 boxes are shifted by
// category × (max coordinate + 1) in float32 and suppressed together (the
// "coordinate trick"), more are suppressed category by category and the
// kept ones sorted by decreasing score (stable here, unspecified in torch).
func BatchedNMS(boxes []Box, scores []float32, idxs []int, iouThresh float32) []int {
	if len(boxes) == 0 {
		return nil
	}
	if len(boxes)*4 > 4000 {
		byCat := map[int][]int{}
		var cats []int
		for i, c := range idxs {
			if _, ok := byCat[c]; !ok {
				cats = append(cats, c)
			}
			byCat[c] = append(byCat[c], i)
		}
		sort.Ints(cats)
		var keep []int
		for _, c := range cats {
			keep = append(keep, nmsOrdered(boxes, sortedByScore(scores, byCat[c]), iouThresh)...)
		}
		sort.Ints(keep)
		return sortedByScore(scores, keep)
	}
	mc := float32(math.Inf(-1))
	for _, b := range boxes {
		mc = max(mc, b[0], b[1], b[2], b[3])
	}
	shifted := make([]Box, len(boxes))
	for i, b := range boxes {
		off := float32(idxs[i]) * (mc + 1)
		shifted[i] = Box{b[0] + off, b[1] + off, b[2] + off, b[3] + off}
	}
	return NMS(shifted, scores, iouThresh)
}

// Detection is one detected object.
type Detection struct {
	Box   Box     // pixels (of the network input, or of the original image after Rescale)
	Score float32 // softmax probability of Label
	Label int     // 1..classes-1
}

// PostOptions configure Postprocess. Zero fields take the values of
// torchvision's ssdlite320_mobilenet_v3_large given in brackets.
type PostOptions struct {
	ScoreThresh   float32  // candidates need a score above this [0.001]; negative: no threshold
	TopK          int      // candidates per class, best first [300]
	NMSThresh     float32  // class-wise NMS IoU threshold [0.55]
	MaxDetections int      // detections per image [300]
	Coder         BoxCoder // [SSDCoder]
}

func (o PostOptions) withDefaults() PostOptions {
	if o.ScoreThresh == 0 {
		o.ScoreThresh = 0.001
	}
	if o.TopK == 0 {
		o.TopK = 300
	}
	if o.NMSThresh == 0 {
		o.NMSThresh = 0.55
	}
	if o.MaxDetections == 0 {
		o.MaxDetections = 300
	}
	if o.Coder == (BoxCoder{}) {
		o.Coder = SSDCoder
	}
	return o
}

// Postprocess turns one image's head outputs into detections as
// torchvision's SSD.postprocess_detections: softmax over the classes,
// boxes decoded from the anchors and clipped to the imgH×imgW input; per
// class 1..classes-1, the anchors scoring above ScoreThresh, the TopK best
// (ties by anchor index); class-wise NMS (BatchedNMS) over all of them; the
// MaxDetections best. logits: (A, classes), regs: (A, 4).
func Postprocess(logits, regs []float32, anchors []Box, classes, imgH, imgW int, o PostOptions) ([]Detection, error) {
	o = o.withDefaults()
	a := len(anchors)
	if classes < 2 || len(logits) != a*classes || len(regs) != a*4 {
		return nil, fmt.Errorf("detect: logits %d and regressions %d values for %d anchors × %d classes", len(logits), len(regs), a, classes)
	}
	scores := make([]float32, len(logits))
	for k := range a {
		z := logits[k*classes : (k+1)*classes]
		mx := math.Inf(-1)
		for _, v := range z {
			mx = max(mx, float64(v))
		}
		s := 0.0
		for _, v := range z {
			s += math.Exp(float64(v) - mx)
		}
		for c, v := range z {
			scores[k*classes+c] = float32(math.Exp(float64(v)-mx) / s)
		}
	}
	boxes := make([]Box, a)
	for k := range a {
		boxes[k] = o.Coder.Decode([4]float32(regs[k*4:k*4+4]), anchors[k]).Clip(float32(imgW), float32(imgH))
	}
	var cb []Box
	var cs []float32
	var cl []int
	for c := 1; c < classes; c++ {
		var idx []int
		cls := make([]float32, a)
		for k := range a {
			cls[k] = scores[k*classes+c]
			if cls[k] > o.ScoreThresh {
				idx = append(idx, k)
			}
		}
		idx = sortedByScore(cls, idx)
		if len(idx) > o.TopK {
			idx = idx[:o.TopK]
		}
		for _, k := range idx {
			cb, cs, cl = append(cb, boxes[k]), append(cs, cls[k]), append(cl, c)
		}
	}
	keep := BatchedNMS(cb, cs, cl, o.NMSThresh)
	if len(keep) > o.MaxDetections {
		keep = keep[:o.MaxDetections]
	}
	out := make([]Detection, len(keep))
	for i, k := range keep {
		out[i] = Detection{Box: cb[k], Score: cs[k], Label: cl[k]}
	}
	return out, nil
}

// Rescale maps detections from a fromH×fromW network input to a toH×toW
// original image in place, as torchvision's transform.resize_boxes (x
// times toW/fromW, y times toH/fromH, in float32).
func Rescale(dets []Detection, fromH, fromW, toH, toW int) {
	rh, rw := float32(toH)/float32(fromH), float32(toW)/float32(fromW)
	for i := range dets {
		b := &dets[i].Box
		b[0], b[1], b[2], b[3] = b[0]*rw, b[1]*rh, b[2]*rw, b[3]*rh
	}
}
