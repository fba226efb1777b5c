package data

import (
	"fmt"
	"strings"

	"github.com/mobileone-go/mobileone/imageproc"
	"github.com/mobileone-go/mobileone/tensor"
)

// Op is one image-to-image step of a Transform. Apply must not modify m
// (it may be the dataset's own memory); it returns m itself or a new image.
// All randomness comes from r, the sample's own generator.
type Op interface {
	Apply(m *imageproc.Image8, r *RNG) *imageproc.Image8
	String() string
}

// Transform turns a dataset image into a float32 (C, H, W) tensor: the Ops
// in order on the 8-bit image, then ToTensor (x/255) and Normalize
// ((x - Mean[c]) / Std[c]). Do not modify a Transform while a Loader uses
// it; give the loader a new one (Loader.SetTransform).
type Transform struct {
	Ops []Op
	// Channels of the output: 0 keeps the image's (1 grey, 3 RGB); 1
	// converts RGB to grey first (PIL's convert('L')); 3 replicates grey
	// into three channels at the end.
	Channels int
	// Mean and Std per output channel (length 1 broadcasts to every
	// channel); both empty means ToTensor only.
	Mean, Std []float32
}

// String lists the steps, e.g. "RandomCrop(28, pad 4) HorizontalFlip(0.5) Normalize(...)".
func (t *Transform) String() string {
	if t == nil {
		return "ToTensor"
	}
	var parts []string
	if t.Channels == 1 {
		parts = append(parts, "Grey")
	}
	for _, op := range t.Ops {
		parts = append(parts, op.String())
	}
	if t.Channels == 3 {
		parts = append(parts, "RGB")
	}
	parts = append(parts, "ToTensor")
	if len(t.Mean) > 0 {
		parts = append(parts, fmt.Sprintf("Normalize(%v, %v)", t.Mean, t.Std))
	}
	return strings.Join(parts, " ")
}

// Image runs the RGB-to-grey conversion (Channels 1) and the Ops; grey to
// RGB (Channels 3) happens in the tensor conversion.
func (t *Transform) Image(m *imageproc.Image8, r *RNG) *imageproc.Image8 {
	if t == nil {
		return m
	}
	if t.Channels == 1 && m.Channels == 3 {
		m = toGrey(m)
	}
	for _, op := range t.Ops {
		m = op.Apply(m, r)
	}
	return m
}

// Tensor applies the whole transform to one image: x: (C, H, W).
func (t *Transform) Tensor(m *imageproc.Image8, r *RNG) (*tensor.Tensor, error) {
	c, err := t.compile()
	if err != nil {
		return nil, err
	}
	m = t.Image(m, r)
	nc := c.outChannels(m)
	x := tensor.New(nc, m.Height, m.Width)
	c.write(m, x.Data)
	return x, nil
}

// compiled is a validated Transform with its normalisation table.
type compiled struct {
	t        *Transform
	channels int
	lut      [3][256]float32
}

func (t *Transform) compile() (*compiled, error) {
	c := &compiled{t: t}
	var mean, std []float32
	if t != nil {
		if t.Channels != 0 && t.Channels != 1 && t.Channels != 3 {
			return nil, fmt.Errorf("data: transform Channels %d, want 0, 1 or 3", t.Channels)
		}
		c.channels = t.Channels
		mean, std = t.Mean, t.Std
		for i, op := range t.Ops {
			if op == nil {
				return nil, fmt.Errorf("data: transform op %d is nil", i)
			}
			if v, ok := op.(interface{ validate() error }); ok {
				if err := v.validate(); err != nil {
					return nil, fmt.Errorf("data: %s: %w", op, err)
				}
			}
		}
	}
	if len(mean) != len(std) || (len(mean) != 0 && len(mean) != 1 && len(mean) != 3) {
		return nil, fmt.Errorf("data: Normalize needs Mean and Std of the same length 1 or 3, have %d and %d", len(mean), len(std))
	}
	for ch := 0; ch < 3; ch++ {
		mu, sd := float32(0), float32(1)
		if len(mean) > 0 {
			mu, sd = mean[min(ch, len(mean)-1)], std[min(ch, len(std)-1)]
			if sd == 0 || sd != sd {
				return nil, fmt.Errorf("data: Normalize Std %v", std)
			}
		}
		for v := 0; v < 256; v++ {
			// Same operations in the same order as torchvision:
			// ToTensor (v/255) then Normalize ((x-mean)/std).
			x := float32(v) / 255
			if len(mean) > 0 {
				x = (x - mu) / sd
			}
			c.lut[ch][v] = x
		}
	}
	return c, nil
}

func (c *compiled) outChannels(m *imageproc.Image8) int {
	if c.channels == 3 {
		return 3
	}
	return m.Channels
}

// write converts m to (C, H, W) floats in dst (len C*H*W).
func (c *compiled) write(m *imageproc.Image8, dst []float32) {
	plane := m.Width * m.Height
	nc := c.outChannels(m)
	if m.Channels == 1 {
		src := m.Pix[:plane]
		for ch := 0; ch < nc; ch++ {
			lut := &c.lut[ch]
			d := dst[ch*plane : (ch+1)*plane]
			for i, v := range src {
				d[i] = lut[v]
			}
		}
		return
	}
	l0, l1, l2 := &c.lut[0], &c.lut[1], &c.lut[2]
	d0, d1, d2 := dst[:plane], dst[plane:2*plane], dst[2*plane:3*plane]
	src := m.Pix[:3*plane]
	for i := range d0 {
		p := src[3*i : 3*i+3 : 3*i+3]
		d0[i], d1[i], d2[i] = l0[p[0]], l1[p[1]], l2[p[2]]
	}
}

// toGrey is PIL's convert('L') of an RGB image (luma 299/587/114 in 16-bit
// fixed point), as imageproc.ToImage8(img, true) computes it.
func toGrey(m *imageproc.Image8) *imageproc.Image8 {
	n := m.Width * m.Height
	out := imageproc.NewImage8(m.Width, m.Height, 1)
	for i := 0; i < n; i++ {
		p := m.Pix[3*i : 3*i+3 : 3*i+3]
		out.Pix[i] = uint8((uint32(p[0])*19595 + uint32(p[1])*38470 + uint32(p[2])*7471 + 0x8000) >> 16)
	}
	return out
}

// Augment describes a training transform; each augmentation is switched on
// by its field. The order is timm's: RandomResizedCrop or pad + RandomCrop,
// horizontal flip, RandAugment, random erasing, then ToTensor + Normalize.
type Augment struct {
	// Size is the output side (square). With RRC it is required; with
	// PadCrop 0 means the input size (Size must then be set for datasets
	// of mixed sizes).
	Size int
	// RRC enables RandomResizedCrop to Size×Size with Scale and Ratio
	// (zero values: torchvision's (0.08, 1) and (3/4, 4/3)).
	RRC          bool
	Scale, Ratio [2]float64
	// PadCrop > 0 zero-pads every side by PadCrop pixels and crops a
	// random Size×Size window (the CIFAR / Fashion-MNIST augmentation).
	PadCrop int
	// Resize > 0 first resizes the short side to Resize (bilinear), before
	// PadCrop (if any): Fashion-MNIST trained at a size other than its 28.
	Resize int
	// Flip mirrors left-right with probability 0.5.
	Flip bool
	// RandAugmentN > 0 enables RandAugment with N ops of magnitude
	// RandAugmentM (0..30, torchvision's default 9).
	RandAugmentN, RandAugmentM int
	// Erase > 0 applies RandomErasing with this probability, last.
	Erase float64
	// Channels, Mean, Std: as in Transform.
	Channels  int
	Mean, Std []float32
}

// Transform builds the transform.
func (a Augment) Transform() *Transform {
	t := &Transform{Channels: a.Channels, Mean: a.Mean, Std: a.Std}
	switch {
	case a.RRC:
		t.Ops = append(t.Ops, RandomResizedCrop{Width: a.Size, Height: a.Size, Scale: a.Scale, Ratio: a.Ratio})
	case a.PadCrop > 0 || a.Resize > 0:
		if a.Resize > 0 {
			t.Ops = append(t.Ops, Resize{Short: a.Resize})
		}
		if a.PadCrop > 0 {
			t.Ops = append(t.Ops, RandomCrop{Width: a.Size, Height: a.Size, Padding: a.PadCrop})
		}
	}
	if a.Flip {
		t.Ops = append(t.Ops, HorizontalFlip{P: 0.5})
	}
	if a.RandAugmentN > 0 {
		t.Ops = append(t.Ops, RandAugment{N: a.RandAugmentN, M: a.RandAugmentM})
	}
	if a.Erase > 0 {
		t.Ops = append(t.Ops, RandomErasing{P: a.Erase})
	}
	return t
}

// EvalTransform is torchvision's evaluation pipeline: Resize(resizeShort)
// (0 skips it), CenterCrop(crop) (0 skips it), ToTensor, Normalize.
func EvalTransform(resizeShort, crop, channels int, mean, std []float32) *Transform {
	t := &Transform{Channels: channels, Mean: mean, Std: std}
	if resizeShort > 0 {
		t.Ops = append(t.Ops, Resize{Short: resizeShort})
	}
	if crop > 0 {
		t.Ops = append(t.Ops, CenterCrop{Width: crop, Height: crop})
	}
	return t
}

// FashionMNISTTrain is the classic 28×28 augmentation: pad 4, random crop
// 28, horizontal flip, normalise with the training-set mean/std.
func FashionMNISTTrain() *Transform {
	return Augment{Size: 28, PadCrop: 4, Flip: true,
		Mean: []float32{FashionMNISTMean}, Std: []float32{FashionMNISTStd}}.Transform()
}

// FashionMNISTEval is the matching evaluation transform (identity at 28×28,
// then normalise).
func FashionMNISTEval() *Transform {
	return &Transform{Mean: []float32{FashionMNISTMean}, Std: []float32{FashionMNISTStd}}
}

// ImageNetTrain is the MobileOne recipe's training transform at size×size:
// RandomResizedCrop + flip (S0/S1), plus RandAugment(2, 9) when randAugment
// is set (S2-S4), ImageNet mean/std.
func ImageNetTrain(size int, randAugment bool) *Transform {
	a := Augment{Size: size, RRC: true, Flip: true, Mean: imageNetMean(), Std: imageNetStd()}
	if randAugment {
		a.RandAugmentN, a.RandAugmentM = 2, 9
	}
	return a.Transform()
}

// ImageNetEval is the evaluation transform: Resize(resizeShort),
// CenterCrop(crop), ImageNet mean/std (MobileOne: 256/224 for S0, 248/224
// for S1-S4).
func ImageNetEval(resizeShort, crop int) *Transform {
	return EvalTransform(resizeShort, crop, 0, imageNetMean(), imageNetStd())
}

func imageNetMean() []float32 { m := imageproc.ImageNetMean; return m[:] }
func imageNetStd() []float32  { s := imageproc.ImageNetStd; return s[:] }
