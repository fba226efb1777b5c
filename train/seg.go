package train

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"

	"github.com/mobileone-go/mobileone/internal/kernel"
	"github.com/mobileone-go/mobileone/model"
	"github.com/mobileone-go/mobileone/tensor"
)

// DefaultSegRates are torchvision's DeepLabHead atrous rates (the
// DeepLabV3 paper's for output stride 8); PaperSegRates the paper's for
// output stride 16.
var (
	DefaultSegRates = []int{12, 24, 36}
	PaperSegRates   = []int{6, 12, 18}
)

// SegOptions configures a DeepLabV3 segmentation net on a MobileOne
// backbone (NewSegNet).
type SegOptions struct {
	NumClasses int // classes of the per-pixel classifier (including background)
	// OutputStride is the backbone's feature stride: 16 (0 means 16), 8
	// or 32 (DenseGeometry says which blocks are dilated).
	OutputStride int
	// Rates are ASPP's three atrous rates. nil means DefaultSegRates,
	// torchvision's DeepLabHead's (12, 24, 36) at every output stride, the
	// inference graph's default (arch.DeepLabRates) too: rates are not
	// stored in a state_dict, so training and inference must agree. The
	// DeepLabV3 paper uses (6, 12, 18) at output stride 16 (PaperSegRates)
	// and (12, 24, 36) at 8; on small feature maps the large rates reach
	// mostly padding (a 512×512 input at stride 16 gives 32×32).
	Rates []int
	// Channels is ASPP's and the head's width (0 means torchvision's 256).
	Channels int
	// Dropout is the probability of the Dropout after ASPP's projection:
	// 0 means torchvision's 0.5; a negative value turns it off.
	Dropout float64
	// Seed seeds the head's initial weights (NewSegNet) and the dropout
	// masks.
	Seed uint64
}

// withDefaults resolves the zero values.
func (o SegOptions) withDefaults() (SegOptions, error) {
	if o.OutputStride == 0 {
		o.OutputStride = 16
	}
	if o.OutputStride != 8 && o.OutputStride != 16 && o.OutputStride != 32 {
		return o, fmt.Errorf("train: output stride %d: want 8, 16 or 32", o.OutputStride)
	}
	if o.Rates == nil {
		o.Rates = append([]int(nil), DefaultSegRates...)
	}
	if len(o.Rates) != 3 {
		return o, fmt.Errorf("train: ASPP needs 3 atrous rates, got %v", o.Rates)
	}
	for _, r := range o.Rates {
		if r < 1 {
			return o, fmt.Errorf("train: atrous rate %d < 1", r)
		}
	}
	if o.Channels == 0 {
		o.Channels = 256
	}
	if o.Dropout == 0 {
		o.Dropout = 0.5
	}
	if o.Dropout >= 1 || o.NumClasses < 1 || o.Channels < 1 {
		return o, fmt.Errorf("train: segmentation head: %d classes, %d channels, dropout %g", o.NumClasses, o.Channels, o.Dropout)
	}
	return o, nil
}

// SegNet is DeepLabV3 on a train-time MobileOne: the backbone (Net, with
// stages dilated for the output stride) and torchvision's DeepLabHead:
//
//	ASPP: five branches on the features (Cin, h, w), each Channels wide:
//	      1×1 conv-BN-ReLU; three 3×3 conv-BN-ReLU with dilation = padding =
//	      rate; image pooling: global average pool → 1×1 conv → BN → ReLU →
//	      bilinear upsampling to h×w (a broadcast);
//	      concat → 1×1 conv-BN-ReLU (5·Channels → Channels) → Dropout(p)
//	3×3 conv-BN-ReLU (padding 1) → 1×1 conv with bias (→ NumClasses)
//	→ bilinear upsampling (align_corners=False) to the input's size
//	→ per-pixel cross-entropy, label 255 ignored, mean over the others.
//
// Its state_dict (StateDict) is torchvision's DeepLabV3's: backbone.* (the
// authors' unfused MobileOne keys under "backbone.") and classifier.*
// (DeepLabHead's: classifier.0.convs.{0..4}, classifier.0.project,
// classifier.1, .2, .4).
type SegNet struct {
	Backbone *Net
	opt      SegOptions

	branches [4]*convBNReLU // classifier.0.convs.0 (1×1) and .1–.3 (dilated 3×3)
	pool     *convBNReLU    // classifier.0.convs.4: the 1×1 conv and BN after the pooling
	project  *convBNReLU    // classifier.0.project
	drop     dropout
	conv     *convBNReLU    // classifier.1, classifier.2 (the 3×3 layer)
	clsW     *tensor.Tensor // classifier.4: (NumClasses, Channels, 1, 1)
	clsB     *tensor.Tensor // (NumClasses)
	clsGW    *tensor.Tensor
	clsGB    *tensor.Tensor
	clsOp    convOp
	params   []Param

	// DropoutStep counts the training forward passes; pass t draws
	// dropout mask t (set it to resume a run exactly).
	DropoutStep uint64

	// state of the last forward pass
	trained    bool
	hasLoss    bool // the last forward had a mask: dup holds the loss's gradient
	dropped    bool
	feat       *act
	h, w       int // input size
	pooled     act // (Cin, 1, 1, N)
	poolOut    []float32
	cat        act // (5·Channels, h, w, N)
	proj, mid  act // (Channels, h, w, N)
	low        act // (NumClasses, h, w, N)
	up         []float32
	dup, dlow  []float32
	dmid, dcat []float32
	dpoolOut   []float32
	dpooled    []float32
	dfeat      []float32
	resize     *bilinear
	loss       float64
	pixels     int
}

// NewSegNet builds DeepLabV3 on a train-time backbone (a model without
// classifier: Config.NumClasses 0), the head's weights initialised as
// PyTorch initialises a new DeepLabHead (convolutions U(±1/√fan_in),
// BatchNorm γ 1, β 0) from opt.Seed. The backbone's blocks get the
// geometry of opt.OutputStride.
func NewSegNet(backbone *model.Model, opt SegOptions) (*SegNet, error) {
	opt, err := opt.withDefaults()
	if err != nil {
		return nil, err
	}
	if backbone != nil && backbone.Linear != nil {
		return nil, fmt.Errorf("train: the segmentation backbone must have no classifier (NumClasses 0); %s has %d classes",
			backbone.Config.Name, backbone.Config.NumClasses)
	}
	bb, err := NewNet(backbone)
	if err != nil {
		return nil, err
	}
	if err := bb.SetOutputStride(opt.OutputStride); err != nil {
		return nil, err
	}
	cin := backbone.Config.Channels[4]
	c := opt.Channels
	s := &SegNet{Backbone: bb, opt: opt}
	s.branches[0] = newConvBNReLU("classifier.0.convs.0.0", "classifier.0.convs.0.1", cin, c, 1, 1)
	for i, r := range opt.Rates {
		p := fmt.Sprintf("classifier.0.convs.%d.", i+1)
		s.branches[i+1] = newConvBNReLU(p+"0", p+"1", cin, c, 3, r)
	}
	s.pool = newConvBNReLU("classifier.0.convs.4.1", "classifier.0.convs.4.2", cin, c, 1, 1)
	s.project = newConvBNReLU("classifier.0.project.0", "classifier.0.project.1", 5*c, c, 1, 1)
	s.conv = newConvBNReLU("classifier.1", "classifier.2", c, c, 3, 1)
	s.clsOp = convOp{Cin: c, Cout: opt.NumClasses, K: 1, S: 1}
	s.clsW, s.clsGW = tensor.New(opt.NumClasses, c, 1, 1), tensor.New(opt.NumClasses, c, 1, 1)
	s.clsB, s.clsGB = tensor.New(opt.NumClasses), tensor.New(opt.NumClasses)
	if opt.Dropout > 0 {
		s.drop = dropout{p: opt.Dropout, seed: opt.Seed}
	}
	r := rand.New(rand.NewPCG(opt.Seed, 0x5e6))
	for _, u := range s.units() {
		u.initTorch(r)
	}
	uniformInit(s.clsW.Data, c, r)
	uniformInit(s.clsB.Data, c, r)

	for _, p := range bb.Params() {
		p.Name = "backbone." + p.Name
		s.params = append(s.params, p)
	}
	for _, u := range s.units() {
		s.params = u.params(s.params)
	}
	s.params = append(s.params, Param{Name: "classifier.4.weight", W: s.clsW, G: s.clsGW},
		Param{Name: "classifier.4.bias", W: s.clsB, G: s.clsGB, NoDecay: true})
	return s, nil
}

// units lists the head's conv-BN-ReLU units in PyTorch's registration order.
func (s *SegNet) units() []*convBNReLU {
	return []*convBNReLU{s.branches[0], s.branches[1], s.branches[2], s.branches[3], s.pool, s.project, s.conv}
}

// Options returns the options with their defaults resolved.
func (s *SegNet) Options() SegOptions { return s.opt }

// Params lists the learnable tensors in PyTorch's named_parameters order
// (backbone.*, then classifier.*).
func (s *SegNet) Params() []Param { return s.params }

// ZeroGrad sets every gradient to zero.
func (s *SegNet) ZeroGrad() {
	for _, p := range s.params {
		clear(p.G.Data)
	}
}

// Forward runs the net on images x (N, C, H, W) and, if mask is not nil,
// returns the mean per-pixel cross-entropy against mask (N·H·W class
// indices, row-major per image; IgnoreIndex pixels left out) and keeps its
// gradient for Backward; otherwise it returns 0. In training mode every
// BatchNorm uses batch statistics and updates its running statistics and
// the dropout is applied; otherwise the running statistics are used and
// there is no dropout. Logits gives the output. Forward panics on an input
// of the wrong shape, a label ≥ NumClasses other than 255, and in training
// mode on a batch of one image (the image-pooling branch's BatchNorm would
// see a single value per channel, as in PyTorch). With two images that
// BatchNorm maps its two values to ±1 whatever they are: the branch
// trains, but passes no gradient back (PyTorch's as well).
func (s *SegNet) Forward(x *tensor.Tensor, mask []uint8, training bool) float64 {
	s.Backbone.checkInput(x)
	n, h, w := x.Shape[0], x.Shape[2], x.Shape[3]
	s.trained, s.h, s.w, s.loss, s.pixels, s.hasLoss = training, h, w, 0, 0, mask != nil
	f := s.Backbone.features(x, training)
	s.feat = f
	c, m := s.opt.Channels, f.M()

	// ASPP: the branches write their rows of the concatenation.
	s.cat = act{C: 5 * c, N: n, H: f.H, W: f.W, Data: grow(s.cat.Data, 5*c*m)}
	for i, u := range s.branches {
		u.forward(f, s.cat.Data[i*c*m:(i+1)*c*m], training)
	}
	s.pooled = act{C: f.C, N: n, H: 1, W: 1, Data: grow(s.pooled.Data, f.C*n)}
	globalPool(f, s.pooled.Data)
	s.poolOut = grow(s.poolOut, c*n)
	s.pool.forward(&s.pooled, s.poolOut, training)
	broadcast(s.poolOut, c, f.H*f.W, n, s.cat.Data[4*c*m:5*c*m])

	s.proj = act{C: c, N: n, H: f.H, W: f.W, Data: grow(s.proj.Data, c*m)}
	s.project.forward(&s.cat, s.proj.Data, training)
	s.dropped = training && s.drop.p > 0
	if s.dropped {
		s.drop.forward(s.proj.Data, s.DropoutStep)
		s.DropoutStep++
	}
	s.mid = act{C: c, N: n, H: f.H, W: f.W, Data: grow(s.mid.Data, c*m)}
	s.conv.forward(&s.proj, s.mid.Data, training)

	k := s.opt.NumClasses
	s.low = act{C: k, N: n, H: f.H, W: f.W, Data: grow(s.low.Data, k*m)}
	s.clsOp.forward(&s.mid, s.clsW.Data, s.low.Data, nil)
	for cl := 0; cl < k; cl++ {
		row := s.low.Data[cl*m : (cl+1)*m]
		b := s.clsB.Data[cl]
		for i := range row {
			row[i] += b
		}
	}
	if s.resize == nil || s.resize.h != f.H || s.resize.w != f.W || s.resize.oh != h || s.resize.ow != w {
		s.resize = newBilinear(f.H, f.W, h, w)
	}
	s.up = grow(s.up, k*h*w*n)
	s.resize.forward(s.low.Data, k, n, s.up)
	if mask == nil {
		return 0
	}
	s.dup = grow(s.dup, len(s.up))
	s.loss, s.pixels = pixelCrossEntropy(s.up, k, h, w, n, mask, s.dup)
	return s.loss
}

// Pixels is the number of pixels the last loss counted (not ignored).
func (s *SegNet) Pixels() int { return s.pixels }

// Logits returns the last Forward's output (N, NumClasses, H, W).
func (s *SegNet) Logits() *tensor.Tensor {
	k, n := s.opt.NumClasses, s.low.N
	out := tensor.New(n, k, s.h, s.w)
	transpose(s.up[:k*s.h*s.w*n], k*s.h*s.w, n, out.Data)
	return out
}

// Predict runs the net in evaluation mode on x (N, C, H, W) and returns
// the per-pixel argmax class (N·H·W, row-major per image).
func (s *SegNet) Predict(x *tensor.Tensor) []uint8 {
	s.Forward(x, nil, false)
	k, n, p := s.opt.NumClasses, s.low.N, s.h*s.w*s.low.N
	pred := make([]uint8, p)
	hw := s.h * s.w
	parFor(p/256+1, k*p, func(lo, hi int) {
		for j := lo * 256; j < min(p, hi*256); j++ {
			best, bv := 0, s.up[j]
			for cl := 1; cl < k; cl++ {
				if v := s.up[cl*p+j]; v > bv {
					best, bv = cl, v
				}
			}
			pred[(j%n)*hw+j/n] = uint8(best)
		}
	})
	return pred
}

// Backward accumulates the gradients of every parameter of the loss of the
// last Forward, which must have been in training mode with a mask.
func (s *SegNet) Backward() {
	if !s.trained || !s.hasLoss || s.feat == nil {
		panic("train: SegNet.Backward needs a preceding training-mode Forward with a mask")
	}
	f, c, k := s.feat, s.opt.Channels, s.opt.NumClasses
	n, m := f.N, f.M()
	// upsampling, classifier
	s.dlow = grow(s.dlow, k*m)
	s.resize.backward(s.dup, k, n, s.dlow)
	for cl := 0; cl < k; cl++ {
		var sum float64
		for _, v := range s.dlow[cl*m : (cl+1)*m] {
			sum += float64(v)
		}
		s.clsGB.Data[cl] += float32(sum)
	}
	s.dmid = grow(s.dmid, c*m)
	dw := make([]float32, s.clsW.Numel())
	clear(s.dmid)
	s.clsOp.backward(&s.mid, s.clsW.Data, s.dlow, dw, s.dmid, nil)
	kernel.Add(dw, s.clsGW.Data)
	// 3×3 layer, dropout, projection
	dproj := s.dlow[:0]
	dproj = growZero(dproj, c*m) // dlow is no longer needed
	s.conv.backward(s.dmid, dproj)
	if s.dropped {
		s.drop.backward(dproj)
	}
	s.dcat = growZero(s.dcat, 5*c*m)
	s.project.backward(dproj, s.dcat)
	// ASPP branches into the features' gradient
	s.dfeat = growZero(s.dfeat, len(f.Data))
	for i, u := range s.branches {
		u.backward(s.dcat[i*c*m:(i+1)*c*m], s.dfeat)
	}
	s.dpoolOut = grow(s.dpoolOut, c*n)
	broadcastBackward(s.dcat[4*c*m:5*c*m], c, f.H*f.W, n, s.dpoolOut)
	s.dpooled = growZero(s.dpooled, f.C*n)
	s.pool.backward(s.dpoolOut, s.dpooled)
	globalPoolBackward(s.dpooled, f.C, f.H*f.W, n, s.dfeat)
	s.Backbone.backwardFeatures(s.dfeat)
}

// StateDict returns the net's tensors under torchvision's DeepLabV3 key
// names (backbone.<authors' unfused MobileOne keys>, classifier.<DeepLabHead's>),
// in PyTorch's order. The tensors are the net's own (num_batches_tracked
// values are copies).
func (s *SegNet) StateDict() (keys []string, sd map[string]*tensor.Tensor) {
	sd = map[string]*tensor.Tensor{}
	add := func(k string, t *tensor.Tensor) {
		keys = append(keys, k)
		sd[k] = t
	}
	bk, bsd := s.Backbone.Model().StateDict()
	for _, k := range bk {
		add("backbone."+k, bsd[k])
	}
	for _, u := range s.units() {
		u.stateDict(add)
	}
	add("classifier.4.weight", s.clsW)
	add("classifier.4.bias", s.clsB)
	return keys, sd
}

// LoadStateDict copies sd (StateDict's key names) into the net. A missing
// key (other than num_batches_tracked), an unexpected key or a shape that
// differs is an error naming the key; nothing is copied then.
func (s *SegNet) LoadStateDict(sd map[string]*tensor.Tensor) error {
	bsd := map[string]*tensor.Tensor{}
	keys, own := s.StateDict()
	var unexpected []string
	for k, t := range sd {
		if b, ok := strings.CutPrefix(k, "backbone."); ok {
			bsd[b] = t
		} else if _, ok := own[k]; !ok {
			unexpected = append(unexpected, k)
		}
	}
	if len(unexpected) > 0 {
		sort.Strings(unexpected)
		return fmt.Errorf("train: segmentation state dict has unexpected key %q%s", unexpected[0], more(len(unexpected)-1))
	}
	for _, k := range keys {
		t, ok := sd[k]
		if !ok {
			if strings.HasSuffix(k, ".num_batches_tracked") {
				continue
			}
			return fmt.Errorf("train: segmentation state dict is missing key %q", k)
		}
		if want := own[k]; len(t.Data) != want.Numel() || (want.Numel() != 1 && !tensor.SameShape(t.Shape, want.Shape)) {
			return fmt.Errorf("train: key %q has shape %s, the net expects %s", k, tensor.ShapeString(t.Shape), tensor.ShapeString(want.Shape))
		}
	}
	if err := s.Backbone.Model().LoadStateDict(bsd); err != nil {
		return fmt.Errorf("train: backbone (keys under backbone.): %w", err)
	}
	for _, k := range keys {
		t, ok := sd[k]
		if !ok || strings.HasPrefix(k, "backbone.") {
			continue
		}
		if p, ok := strings.CutSuffix(k, ".num_batches_tracked"); ok {
			for _, u := range s.units() {
				if u.bnKey == p {
					u.bn.bn.NumBatchesTracked = t.Data[0]
				}
			}
			continue
		}
		copy(own[k].Data, t.Data)
	}
	return nil
}

func more(n int) string {
	if n <= 0 {
		return ""
	}
	return fmt.Sprintf(" (and %d more)", n)
}

// FusedStateDict returns the net's inference weights under the keys of
// the inference graph (arch.DeepLabV3MobileOne): backbone.<the authors'
// fused keys> (stage0.reparam_conv.{weight,bias}, stageN.j.reparam_conv.*,
// stageN.j.se.*), every block re-parameterised with its BatchNorm running
// statistics as for classification (the geometry does not enter the
// weights: a dilated block fuses as an undilated one, its 1×1 and identity
// branches at the centre tap), and classifier.* as StateDict has them
// (torchvision's DeepLabHead keys, conv weights and BatchNorm tensors: the
// graph folds each conv-BN pair when it loads them, as for any
// torchvision model). The tensors are copies.
func (s *SegNet) FusedStateDict() (keys []string, sd map[string]*tensor.Tensor) {
	sd = map[string]*tensor.Tensor{}
	fk, fsd := s.Backbone.Model().Fuse().StateDict()
	for _, k := range fk {
		keys = append(keys, "backbone."+k)
		sd["backbone."+k] = fsd[k]
	}
	hk, hsd := s.StateDict()
	for _, k := range hk {
		if strings.HasPrefix(k, "classifier.") {
			keys = append(keys, k)
			sd[k] = hsd[k].Clone()
		}
	}
	return keys, sd
}

// SetBF16 makes the dense convolutions' matrix multiplies of the backbone
// (Net.SetBF16) and of the head (ASPP's branches, the projection, the 3×3
// layer and the classifier) run in bfloat16 with float32 sums where they
// have enough columns (bf16MinCols); it fails where the CPU has no
// bfloat16 unit.
func (s *SegNet) SetBF16(on bool) error {
	if err := s.Backbone.SetBF16(on); err != nil {
		return err
	}
	s.setHeadBF16(on)
	return nil
}

func (s *SegNet) setHeadBF16(on bool) {
	for _, u := range s.units() {
		u.op.BF16 = on
	}
	s.clsOp.BF16 = on
}

// LoadBackbone copies a classification checkpoint's backbone weights
// (train-time, the authors' unfused keys or another naming model.CanonicalKeys
// knows, optionally with a module. prefix) into the backbone, leaving
// out its classifier (linear.*): the ImageNet initialisation of
// DeepLabV3. Other missing or unexpected keys are errors naming the key.
func (s *SegNet) LoadBackbone(sd map[string]*tensor.Tensor) error {
	c, _, err := model.CanonicalKeys(sd)
	if err != nil {
		return fmt.Errorf("train: backbone checkpoint: %w", err)
	}
	delete(c, "linear.weight")
	delete(c, "linear.bias")
	if err := s.Backbone.Model().LoadStateDict(c); err != nil {
		return fmt.Errorf("train: backbone checkpoint: %w", err)
	}
	return nil
}
