package detect

import (
	"fmt"
	"math"
)

// Box is an axis-aligned box (x1, y1, x2, y2) in pixels, x2 > x1 and y2 > y1
// for a valid box, as torchvision's detection models use them. Arithmetic
// on boxes is float32, as torchvision runs it, so results match bit for bit
// where the operations are the same (products are converted explicitly to
// float32 so that no platform fuses them into multiply-adds).
type Box [4]float32

// Width returns x2 - x1.
func (b Box) Width() float32 { return b[2] - b[0] }

// Height returns y2 - y1.
func (b Box) Height() float32 { return b[3] - b[1] }

// Area returns (x2 - x1) * (y2 - y1) (torchvision's box_area; negative or
// zero for degenerate boxes).
func (b Box) Area() float32 { return float32((b[2] - b[0]) * (b[3] - b[1])) }

// XYWH returns the box as COCO's [x, y, w, h].
func (b Box) XYWH() [4]float64 {
	return [4]float64{float64(b[0]), float64(b[1]), float64(b[2] - b[0]), float64(b[3] - b[1])}
}

// FromXYWH converts COCO's [x, y, w, h] to a Box.
func FromXYWH(x, y, w, h float64) Box {
	return Box{float32(x), float32(y), float32(x + w), float32(y + h)}
}

// Valid reports whether the box has finite coordinates and positive width
// and height (what torchvision's SSD demands of training targets).
func (b Box) Valid() bool {
	for _, v := range b {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return false
		}
	}
	return b[2] > b[0] && b[3] > b[1]
}

func (b Box) String() string { return fmt.Sprintf("[%g %g %g %g]", b[0], b[1], b[2], b[3]) }

// Clip clamps the coordinates to the image: x to [0, w], y to [0, h]
// (torchvision's clip_boxes_to_image).
func (b Box) Clip(w, h float32) Box {
	c := func(v, hi float32) float32 { return min(max(v, 0), hi) }
	return Box{c(b[0], w), c(b[1], h), c(b[2], w), c(b[3], h)}
}

// IoU returns the intersection over union of a and b as torchvision's
// box_iou computes it (float32; 0/0 = NaN for two empty boxes, as there).
func IoU(a, b Box) float32 {
	lt0, lt1 := max(a[0], b[0]), max(a[1], b[1])
	rb0, rb1 := min(a[2], b[2]), min(a[3], b[3])
	inter := float32(max(rb0-lt0, 0) * max(rb1-lt1, 0))
	return inter / (a.Area() + b.Area() - inter)
}

// IoUMatrix returns box_iou(a, b): m[i][j] = IoU(a[i], b[j]); (len(a), len(b)).
func IoUMatrix(a, b []Box) [][]float32 {
	m := make([][]float32, len(a))
	flat := make([]float32, len(a)*len(b))
	for i := range a {
		m[i] = flat[i*len(b) : (i+1)*len(b)]
		for j := range b {
			m[i][j] = IoU(a[i], b[j])
		}
	}
	return m
}

// BoxCoder encodes boxes relative to reference (default) boxes and decodes
// them back, as torchvision's det_utils.BoxCoder:
//
//	dx = wx (gx - ax) / aw, dy = wy (gy - ay) / ah, dw = ww log(gw / aw), dh = wh log(gh / ah)
//
// with centres (x, y) and sizes (w, h). Decoding clamps dw/ww and dh/wh to
// at most Clip before the exponential.
type BoxCoder struct {
	Weights [4]float32 // (wx, wy, ww, wh)
	Clip    float32    // bbox_xform_clip
}

// SSDCoder is the coder of torchvision's SSD and SSDLite: weights
// (10, 10, 5, 5), clip log(1000/16).
var SSDCoder = BoxCoder{Weights: [4]float32{10, 10, 5, 5}, Clip: float32(math.Log(1000.0 / 16))}

// Encode returns the regression target of box gt relative to anchor
// (encode_single(gt, anchor)).
func (c BoxCoder) Encode(gt, anchor Box) [4]float32 {
	aw, ah := anchor[2]-anchor[0], anchor[3]-anchor[1]
	ax, ay := anchor[0]+float32(0.5*aw), anchor[1]+float32(0.5*ah)
	gw, gh := gt[2]-gt[0], gt[3]-gt[1]
	gx, gy := gt[0]+float32(0.5*gw), gt[1]+float32(0.5*gh)
	return [4]float32{
		c.Weights[0] * (gx - ax) / aw,
		c.Weights[1] * (gy - ay) / ah,
		c.Weights[2] * float32(math.Log(float64(gw/aw))),
		c.Weights[3] * float32(math.Log(float64(gh/ah))),
	}
}

// Decode returns the box that code describes relative to anchor
// (decode_single(code, anchor)).
func (c BoxCoder) Decode(code [4]float32, anchor Box) Box {
	w, h := anchor[2]-anchor[0], anchor[3]-anchor[1]
	cx, cy := anchor[0]+float32(0.5*w), anchor[1]+float32(0.5*h)
	dx, dy := code[0]/c.Weights[0], code[1]/c.Weights[1]
	dw, dh := min(code[2]/c.Weights[2], c.Clip), min(code[3]/c.Weights[3], c.Clip)
	px, py := float32(dx*w)+cx, float32(dy*h)+cy
	pw, ph := float32(math.Exp(float64(dw)))*w, float32(math.Exp(float64(dh)))*h
	hw, hh := float32(0.5*pw), float32(0.5*ph)
	return Box{px - hw, py - hh, px + hw, py + hh}
}
