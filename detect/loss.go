package detect

import (
	"fmt"
	"math"
	"slices"
)

// Target is the ground truth of one image: boxes in pixels of the network
// input and their labels in 1..classes-1 (0 is the background).
type Target struct {
	Boxes  []Box
	Labels []int
}

// LossOptions configure SSDLoss. Zero fields take torchvision's SSD values.
type LossOptions struct {
	IoUThreshold float32  // matching threshold [0.5]
	NegPosRatio  float64  // hard negatives per positive [3]
	Coder        BoxCoder // [SSDCoder]
}

func (o LossOptions) withDefaults() LossOptions {
	if o.IoUThreshold == 0 {
		o.IoUThreshold = 0.5
	}
	if o.NegPosRatio == 0 {
		o.NegPosRatio = 3
	}
	if o.Coder == (BoxCoder{}) {
		o.Coder = SSDCoder
	}
	return o
}

// Loss is SSD's loss over a batch.
type Loss struct {
	Box, Class float64 // smooth-L1 box regression and classification losses, each over max(1, Positives)
	Positives  int     // anchors matched to a ground truth, whole batch
}

// Total returns Box + Class, the value SSDLoss's gradients are of.
func (l Loss) Total() float64 { return l.Box + l.Class }

// SSDLoss computes torchvision's SSD.compute_loss for a batch of N images
// whose default boxes are anchors (A of them, the same for every image):
//
//   - each image's anchors are matched to its targets with Match (IoU
//     threshold 0.5, every ground truth claiming its best anchor);
//   - box loss: smooth-L1 (beta 1), summed over the matched anchors, between
//     the predicted codes and the encoded matched ground truths;
//   - class loss: cross-entropy summed over the matched anchors (target: the
//     ground truth's label) and the NegPosRatio×positives anchors of the
//     image with the highest background cross-entropy (hard negative mining;
//     an image without boxes contributes no negatives);
//   - both divided by max(1, positives in the batch).
//
// logits: (N, A, classes), regs: (N, A, 4), row-major. gradLogits and
// gradRegs, when not nil, receive d(Box + Class)/d logits and /d regs (same
// shapes; overwritten). Ties in the hard-negative ranking are broken by
// anchor index (torch's sort leaves them unspecified).
func SSDLoss(anchors []Box, targets []Target, logits, regs []float32, classes int, o LossOptions, gradLogits, gradRegs []float32) (Loss, error) {
	o = o.withDefaults()
	n, a := len(targets), len(anchors)
	if classes < 2 {
		return Loss{}, fmt.Errorf("detect: %d classes, want at least 2 (background and one)", classes)
	}
	if len(logits) != n*a*classes || len(regs) != n*a*4 {
		return Loss{}, fmt.Errorf("detect: logits %d and regressions %d values for %d images × %d anchors × %d classes",
			len(logits), len(regs), n, a, classes)
	}
	if (gradLogits != nil && len(gradLogits) != len(logits)) || (gradRegs != nil && len(gradRegs) != len(regs)) {
		return Loss{}, fmt.Errorf("detect: gradient buffers of %d and %d values, want %d and %d", len(gradLogits), len(gradRegs), len(logits), len(regs))
	}
	for i, t := range targets {
		if len(t.Boxes) != len(t.Labels) {
			return Loss{}, fmt.Errorf("detect: image %d: %d boxes and %d labels", i, len(t.Boxes), len(t.Labels))
		}
		for j, b := range t.Boxes {
			if !b.Valid() {
				return Loss{}, fmt.Errorf("detect: image %d: box %d %v has no area", i, j, b)
			}
			if l := t.Labels[j]; l < 1 || l >= classes {
				return Loss{}, fmt.Errorf("detect: image %d: box %d label %d outside 1..%d", i, j, l, classes-1)
			}
		}
	}
	matches := make([][]int, n)
	pos := 0
	for i, t := range targets {
		if len(t.Boxes) == 0 {
			matches[i] = make([]int, a)
			for k := range matches[i] {
				matches[i][k] = -1
			}
			continue
		}
		matches[i] = Match(IoUMatrix(t.Boxes, anchors), a, o.IoUThreshold)
		for _, m := range matches[i] {
			if m >= 0 {
				pos++
			}
		}
	}
	norm := 1 / float64(max(1, pos))
	var boxSum, clsSum float64
	ce := make([]float64, a)
	weight := make([]float64, a)
	var scratch []float64
	for i, t := range targets {
		m := matches[i]
		// cross-entropy of every anchor against its class target (0 unmatched)
		npos := 0
		for k := range a {
			z := logits[(i*a+k)*classes : (i*a+k+1)*classes]
			tgt := 0
			if m[k] >= 0 {
				tgt = t.Labels[m[k]]
				npos++
			}
			mx := math.Inf(-1)
			for _, v := range z {
				mx = max(mx, float64(v))
			}
			s := 0.0
			for _, v := range z {
				s += math.Exp(float64(v) - mx)
			}
			ce[k] = mx + math.Log(s) - float64(z[tgt])
			weight[k] = 0
			if m[k] >= 0 {
				weight[k] = 1
			}
		}
		// hard negatives: rank by loss, positives last (at -inf), ties by
		// index; the anchors of rank < ratio × positives count once more
		selectHard(ce, m, int(math.Ceil(o.NegPosRatio*float64(npos))), weight, &scratch)
		for k := range a {
			if weight[k] == 0 {
				if gradLogits != nil {
					clear(gradLogits[(i*a+k)*classes : (i*a+k+1)*classes])
				}
				continue
			}
			clsSum += weight[k] * ce[k]
			if gradLogits != nil {
				z := logits[(i*a+k)*classes : (i*a+k+1)*classes]
				g := gradLogits[(i*a+k)*classes : (i*a+k+1)*classes]
				mx := math.Inf(-1)
				for _, v := range z {
					mx = max(mx, float64(v))
				}
				s := 0.0
				for _, v := range z {
					s += math.Exp(float64(v) - mx)
				}
				tgt := 0
				if m[k] >= 0 {
					tgt = t.Labels[m[k]]
				}
				for c, v := range z {
					p := math.Exp(float64(v)-mx) / s
					if c == tgt {
						p--
					}
					g[c] = float32(weight[k] * norm * p)
				}
			}
		}
		// box regression on the matched anchors
		for k := range a {
			r := regs[(i*a+k)*4 : (i*a+k+1)*4]
			var g []float32
			if gradRegs != nil {
				g = gradRegs[(i*a+k)*4 : (i*a+k+1)*4]
				clear(g)
			}
			if m[k] < 0 {
				continue
			}
			enc := o.Coder.Encode(t.Boxes[m[k]], anchors[k])
			for c := range 4 {
				d := float64(r[c]) - float64(enc[c])
				if math.Abs(d) < 1 {
					boxSum += 0.5 * d * d
				} else {
					boxSum += math.Abs(d) - 0.5
				}
				if g != nil {
					g[c] = float32(max(-1, min(1, d)) * norm)
				}
			}
		}
	}
	return Loss{Box: boxSum * norm, Class: clsSum * norm, Positives: pos}, nil
}

// selectHard adds 1 to weight[k] for the n anchors of highest loss among
// the negatives (m[k] < 0), ties to the lower index; when n exceeds the
// negatives, the first positives by index make up the rest (they rank at
// -inf in torch's sort; which ones among them is unspecified there).
func selectHard(ce []float64, m []int, n int, weight []float64, scratch *[]float64) {
	if n <= 0 {
		return
	}
	neg := (*scratch)[:0]
	for k, v := range ce {
		if m[k] < 0 {
			neg = append(neg, v)
		}
	}
	*scratch = neg
	if n >= len(neg) {
		left := n - len(neg)
		for k := range ce {
			if m[k] < 0 {
				weight[k]++
			} else if left > 0 {
				weight[k]++
				left--
			}
		}
		return
	}
	slices.Sort(neg)
	cut := neg[len(neg)-n] // the n-th highest loss
	above := 0
	for _, v := range neg[len(neg)-n:] {
		if v > cut {
			above++
		}
	}
	ties := n - above // anchors at the cut, by index
	for k, v := range ce {
		if m[k] >= 0 {
			continue
		}
		if v > cut {
			weight[k]++
		} else if v == cut && ties > 0 {
			weight[k]++
			ties--
		}
	}
}
