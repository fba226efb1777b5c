package train

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"

	"github.com/mobileone-go/mobileone/arch"
	"github.com/mobileone-go/mobileone/detect"
	"github.com/mobileone-go/mobileone/internal/kernel"
	"github.com/mobileone-go/mobileone/model"
	"github.com/mobileone-go/mobileone/tensor"
)

// SSDLite's BatchNorm outside the backbone: torchvision's ssdlite320 passes
// partial(nn.BatchNorm2d, eps=0.001, momentum=0.03) to its extra blocks and
// head.
const (
	ssdBNEps      = 0.001
	ssdBNMomentum = 0.03
)

// SSDOptions configures an SSDLite detector on a MobileOne backbone
// (NewSSDNet).
type SSDOptions struct {
	NumClasses int // including the background (class 0)
	// Width scales the extra blocks: max(16, int(d·Width)) for d in
	// arch.SSDExtraDepths, as torchvision's width_mult (0 means 1).
	Width float64
	// Boxes are the default boxes (zero value: detect.SSDLiteBoxes()).
	Boxes detect.DefaultBoxes
	// Loss configures detect.SSDLoss (zero: torchvision's).
	Loss detect.LossOptions
	// Seed seeds the initial weights of the extra blocks and heads.
	Seed uint64
}

func (o SSDOptions) withDefaults() (SSDOptions, error) {
	if o.Width == 0 {
		o.Width = 1
	}
	if o.Boxes.AspectRatios == nil {
		o.Boxes = detect.SSDLiteBoxes()
	}
	if len(o.Boxes.AspectRatios) != 6 {
		return o, fmt.Errorf("train: SSDLite has 6 feature maps, the default boxes have %d", len(o.Boxes.AspectRatios))
	}
	if o.NumClasses < 2 || o.Width < 0 {
		return o, fmt.Errorf("train: SSDLite with %d classes (want at least 2, background included), width %g", o.NumClasses, o.Width)
	}
	return o, nil
}

// SSDNet is SSDLite (torchvision's ssdlite320_mobilenet_v3_large layout)
// on a train-time MobileOne:
//
//	feature map 0: stage3's output (stride 16); map 1: stage4's (stride 32)
//	  (MobileOne's blocks have no inner expansion layer for torchvision's
//	  "C4 expansion" tap; stage3 → stage4 is where the stride doubles);
//	maps 2–5: four extra blocks, each 1×1 conv-BN-ReLU6 to d/2 channels,
//	  3×3 depthwise stride-2 conv-BN-ReLU6, 1×1 conv-BN-ReLU6 to d;
//	per map, the classification and regression heads: 3×3 depthwise
//	  conv-BN-ReLU6, then a 1×1 conv with bias to anchors·classes (·4);
//	logits (N, A, classes) and box codes (N, A, 4), anchors in
//	  detect.DefaultBoxes order; the loss is detect.SSDLoss.
//
// BatchNorms outside the backbone have eps 0.001 and momentum 0.03. Its
// state_dict is torchvision's SSD's with the backbone as
// tools/reference/make_det_golden.py builds it: backbone.<authors' unfused
// keys>, backbone.extra.{0..3}.{0,1,2}.{0,1}, head.classification_head.
// module_list.{0..5}.{0.0,0.1,1} and head.regression_head.module_list.….
type SSDNet struct {
	Backbone *Net
	opt      SSDOptions
	tap      int // index of stage4's first block: its input is map 0
	extras   [4][3]*convBNReLU
	clsDW    [6]*convBNReLU
	regDW    [6]*convBNReLU
	clsPW    [6]*convBias
	regPW    [6]*convBias
	params   []Param
	perLoc   []int

	// state of the last forward pass
	trained  bool
	hasLoss  bool
	n, h, w  int
	maps     [6]*act
	extraOut [4][3]act
	headMid  [2][6]act // depthwise outputs (cls, reg)
	headOut  [2][6][]float32
	anchors  []detect.Box
	anchorHW [2]int
	anchorFS [6][2]int
	logits   []float32 // (N, A, classes)
	regs     []float32 // (N, A, 4)
	dlogits  []float32
	dregs    []float32
	loss     detect.Loss
	dmaps    [6][]float32
	dtmp     [3][]float32
	dout     []float32
}

// convBias is a 1×1 convolution with bias (the heads' last layer).
type convBias struct {
	key    string
	op     convOp
	w, gw  *tensor.Tensor // (Cout, Cin, 1, 1)
	b, gb  *tensor.Tensor // (Cout)
	x      *act
	dw     []float32
	ws     convWork
	outBuf []float32
}

func newConvBias(key string, cin, cout int) *convBias {
	return &convBias{key: key, op: convOp{Cin: cin, Cout: cout, K: 1, S: 1},
		w: tensor.New(cout, cin, 1, 1), gw: tensor.New(cout, cin, 1, 1), b: tensor.New(cout), gb: tensor.New(cout)}
}

// forward returns conv(x) + b (Cout, H, W, N), owned by c.
func (c *convBias) forward(x *act) []float32 {
	c.x = x
	m := x.M()
	c.outBuf = grow(c.outBuf, c.op.Cout*m)
	c.op.forward(x, c.w.Data, c.outBuf, &c.ws)
	for o := 0; o < c.op.Cout; o++ {
		row, bv := c.outBuf[o*m:(o+1)*m], c.b.Data[o]
		for i := range row {
			row[i] += bv
		}
	}
	return c.outBuf
}

// backward accumulates the gradients given d (Cout, M) and adds the
// input's gradient to dx.
func (c *convBias) backward(d, dx []float32) {
	m := c.x.M()
	for o := 0; o < c.op.Cout; o++ {
		var s float64
		for _, v := range d[o*m : (o+1)*m] {
			s += float64(v)
		}
		c.gb.Data[o] += float32(s)
	}
	c.dw = grow(c.dw, c.w.Numel())
	c.op.backward(c.x, c.w.Data, d, c.dw, dx, &c.ws)
	kernel.Add(c.dw, c.gw.Data)
}

// NewSSDNet builds SSDLite on a train-time backbone without classifier,
// the extra blocks' and heads' weights initialised as torchvision's
// _normal_init does (convolutions N(0, 0.03²), biases 0, BatchNorm γ 1,
// β 0) from opt.Seed.
func NewSSDNet(backbone *model.Model, opt SSDOptions) (*SSDNet, error) {
	opt, err := opt.withDefaults()
	if err != nil {
		return nil, err
	}
	if backbone == nil {
		return nil, fmt.Errorf("train: SSDLite needs a backbone")
	}
	if backbone.Linear != nil {
		return nil, fmt.Errorf("train: the detection backbone must have no classifier (NumClasses 0); %s has %d classes",
			backbone.Config.Name, backbone.Config.NumClasses)
	}
	bb, err := NewNet(backbone)
	if err != nil {
		return nil, err
	}
	s := &SSDNet{Backbone: bb, opt: opt, tap: -1, perLoc: opt.Boxes.PerLocation()}
	for i, blk := range bb.blocks {
		if strings.HasPrefix(blk.name, "stage4.") {
			s.tap = i
			break
		}
	}
	if s.tap < 2 {
		return nil, fmt.Errorf("train: SSDLite: backbone %s has no stage4 after stage3", backbone.Config.Name)
	}
	cfg := backbone.Config
	inC := []int{cfg.Channels[3], cfg.Channels[4]}
	ec := arch.SSDExtraChannels(opt.Width)
	prev := cfg.Channels[4]
	for i, d := range ec {
		p := fmt.Sprintf("backbone.extra.%d.", i)
		mid := d / 2
		s.extras[i][0] = newConvBNAct(p+"0.0", p+"0.1", convOp{Cin: prev, Cout: mid, K: 1, S: 1}, ssdBNEps, ssdBNMomentum, true)
		s.extras[i][1] = newConvBNAct(p+"1.0", p+"1.1", convOp{Cin: mid, Cout: mid, K: 3, S: 2, P: 1, DW: true}, ssdBNEps, ssdBNMomentum, true)
		s.extras[i][2] = newConvBNAct(p+"2.0", p+"2.1", convOp{Cin: mid, Cout: d, K: 1, S: 1}, ssdBNEps, ssdBNMomentum, true)
		inC = append(inC, d)
		prev = d
	}
	k := opt.NumClasses
	for i, c := range inC {
		for h, name := range []string{"classification_head", "regression_head"} {
			p := fmt.Sprintf("head.%s.module_list.%d.", name, i)
			dw := newConvBNAct(p+"0.0", p+"0.1", convOp{Cin: c, Cout: c, K: 3, S: 1, P: 1, DW: true}, ssdBNEps, ssdBNMomentum, true)
			out := s.perLoc[i] * 4
			if h == 0 {
				out = s.perLoc[i] * k
			}
			pw := newConvBias(p+"1", c, out)
			if h == 0 {
				s.clsDW[i], s.clsPW[i] = dw, pw
			} else {
				s.regDW[i], s.regPW[i] = dw, pw
			}
		}
	}
	r := rand.New(rand.NewPCG(opt.Seed, 0x55d))
	for _, u := range s.units() {
		normalInit(u.w.Data, 0.03, r)
	}
	for _, c := range s.convs() {
		normalInit(c.w.Data, 0.03, r)
	}
	for _, p := range bb.Params() {
		p.Name = "backbone." + p.Name
		s.params = append(s.params, p)
	}
	for _, e := range s.extras {
		for _, u := range e {
			s.params = u.params(s.params)
		}
	}
	for i := range 6 {
		s.params = s.clsDW[i].params(s.params)
		s.params = s.clsPW[i].paramsTo(s.params)
	}
	for i := range 6 {
		s.params = s.regDW[i].params(s.params)
		s.params = s.regPW[i].paramsTo(s.params)
	}
	return s, nil
}

func (c *convBias) paramsTo(ps []Param) []Param {
	return append(ps, Param{Name: c.key + ".weight", W: c.w, G: c.gw}, Param{Name: c.key + ".bias", W: c.b, G: c.gb, NoDecay: true})
}

func normalInit(w []float32, std float64, r *rand.Rand) {
	for i := range w {
		w[i] = float32(r.NormFloat64() * std)
	}
}

// units lists the conv-BN-ReLU6 units (extras, then the heads' depthwise
// layers, classification before regression).
func (s *SSDNet) units() []*convBNReLU {
	var u []*convBNReLU
	for _, e := range s.extras {
		u = append(u, e[:]...)
	}
	u = append(u, s.clsDW[:]...)
	return append(u, s.regDW[:]...)
}

func (s *SSDNet) convs() []*convBias {
	return append(append([]*convBias(nil), s.clsPW[:]...), s.regPW[:]...)
}

// Options returns the options with their defaults resolved.
func (s *SSDNet) Options() SSDOptions { return s.opt }

// Params lists the learnable tensors in PyTorch's named_parameters order.
func (s *SSDNet) Params() []Param { return s.params }

// ZeroGrad sets every gradient to zero.
func (s *SSDNet) ZeroGrad() {
	for _, p := range s.params {
		clear(p.G.Data)
	}
}

// FeatureSizes returns the six maps' sizes of the last Forward.
func (s *SSDNet) FeatureSizes() [][2]int {
	fs := make([][2]int, 6)
	for i, m := range s.maps {
		fs[i] = [2]int{m.H, m.W}
	}
	return fs
}

// Anchors returns the default boxes of the last Forward (pixels of its
// input).
func (s *SSDNet) Anchors() []detect.Box { return s.anchors }

// Forward runs the net on images x (N, C, H, W). With targets (one per
// image, boxes in pixels of x) it returns SSD's loss and keeps its
// gradient for Backward; with nil targets it returns a zero Loss. In
// training mode every BatchNorm uses batch statistics and updates its
// running ones. Logits and Regressions give the outputs. An input of the
// wrong shape or too small for six maps, or a bad target, is an error.
// Training mode needs more than one value per BatchNorm channel on the
// smallest map (batch ≥ 2 when it is 1×1).
func (s *SSDNet) Forward(x *tensor.Tensor, targets []detect.Target, training bool) (detect.Loss, error) {
	if x == nil || len(x.Shape) != 4 || x.Shape[1] != s.Backbone.m.Config.InChannels || x.Numel() == 0 {
		return detect.Loss{}, fmt.Errorf("train: SSDLite input must be (N, %d, H, W), got %v", s.Backbone.m.Config.InChannels, x)
	}
	if targets != nil && len(targets) != x.Shape[0] {
		return detect.Loss{}, fmt.Errorf("train: %d targets for %d images", len(targets), x.Shape[0])
	}
	n, h, w := x.Shape[0], x.Shape[2], x.Shape[3]
	if training && n < 2 {
		return detect.Loss{}, fmt.Errorf("train: SSDLite training needs at least 2 images per batch (BatchNorm on 1×1 maps)")
	}
	s.trained, s.hasLoss, s.n, s.h, s.w = training, targets != nil, n, h, w
	s.Backbone.checkInput(x)
	f4 := s.Backbone.features(x, training)
	s.maps[0], s.maps[1] = s.Backbone.blocks[s.tap].x, f4
	prev := f4
	for i := range s.extras {
		for j, u := range s.extras[i] {
			oh, ow := u.op.outSize(prev.H, prev.W)
			o := &s.extraOut[i][j]
			*o = act{C: u.op.Cout, N: n, H: oh, W: ow, Data: grow(o.Data, u.op.Cout*oh*ow*n)}
			u.forward(prev, o.Data, training)
			prev = o
		}
		s.maps[i+2] = prev
	}
	fs := s.FeatureSizes()
	if s.anchors == nil || s.anchorHW != [2]int{h, w} || [6][2]int(fs) != s.anchorFS {
		a, err := s.opt.Boxes.Generate(h, w, fs)
		if err != nil {
			return detect.Loss{}, fmt.Errorf("train: %w", err)
		}
		s.anchors, s.anchorHW, s.anchorFS = a, [2]int{h, w}, [6][2]int(fs)
	}
	k, na := s.opt.NumClasses, len(s.anchors)
	s.logits = grow(s.logits, n*na*k)
	s.regs = grow(s.regs, n*na*4)
	off := 0
	for i, m := range s.maps {
		for hd, pair := range [2]struct {
			dw *convBNReLU
			pw *convBias
		}{{s.clsDW[i], s.clsPW[i]}, {s.regDW[i], s.regPW[i]}} {
			mid := &s.headMid[hd][i]
			*mid = act{C: m.C, N: n, H: m.H, W: m.W, Data: grow(mid.Data, m.C*m.M())}
			pair.dw.forward(m, mid.Data, training)
			out := pair.pw.forward(mid)
			s.headOut[hd][i] = out
			if hd == 0 {
				gatherHead(out, m.H*m.W, n, s.perLoc[i], k, off, na, s.logits)
			} else {
				gatherHead(out, m.H*m.W, n, s.perLoc[i], 4, off, na, s.regs)
			}
		}
		off += m.H * m.W * s.perLoc[i]
	}
	if targets == nil {
		return detect.Loss{}, nil
	}
	s.dlogits = grow(s.dlogits, len(s.logits))
	s.dregs = grow(s.dregs, len(s.regs))
	loss, err := detect.SSDLoss(s.anchors, targets, s.logits, s.regs, k, s.opt.Loss, s.dlogits, s.dregs)
	if err != nil {
		s.hasLoss = false
		return loss, fmt.Errorf("train: %w", err)
	}
	s.loss = loss
	return loss, nil
}

// gatherHead copies a head's output z (anchors·d, HW, N) in the trainer's
// layout into out (N, A, d) at anchor offset off: anchor off + p·anchors + a
// of image b is channel a·d + j at pixel p (torchvision's view(N, -1, d)
// after permute(0, 2, 3, 1)).
func gatherHead(z []float32, hw, n, anchors, d, off, total int, out []float32) {
	for c := 0; c < anchors*d; c++ {
		a, j := c/d, c%d
		row := z[c*hw*n : (c+1)*hw*n]
		for p := 0; p < hw; p++ {
			for b := 0; b < n; b++ {
				out[(b*total+off+p*anchors+a)*d+j] = row[p*n+b]
			}
		}
	}
}

// scatterHead is gatherHead's adjoint: it writes dz from dout.
func scatterHead(dout []float32, hw, n, anchors, d, off, total int, dz []float32) {
	for c := 0; c < anchors*d; c++ {
		a, j := c/d, c%d
		row := dz[c*hw*n : (c+1)*hw*n]
		for p := 0; p < hw; p++ {
			for b := 0; b < n; b++ {
				row[p*n+b] = dout[(b*total+off+p*anchors+a)*d+j]
			}
		}
	}
}

// Logits returns the last Forward's class logits (N, A, classes), owned by
// the net.
func (s *SSDNet) Logits() []float32 { return s.logits }

// Regressions returns the last Forward's box codes (N, A, 4), owned by the
// net.
func (s *SSDNet) Regressions() []float32 { return s.regs }

// Backward accumulates the gradients of every parameter of the loss of the
// last Forward, which must have been in training mode with targets.
func (s *SSDNet) Backward() error {
	if !s.trained || !s.hasLoss {
		return fmt.Errorf("train: SSDNet.Backward needs a preceding training-mode Forward with targets")
	}
	n, k, na := s.n, s.opt.NumClasses, len(s.anchors)
	off := 0
	for i, m := range s.maps {
		s.dmaps[i] = growZero(s.dmaps[i], len(m.Data))
		for hd := range 2 {
			dw, pw, d, g := s.clsDW[i], s.clsPW[i], k, s.dlogits
			if hd == 1 {
				dw, pw, d, g = s.regDW[i], s.regPW[i], 4, s.dregs
			}
			s.dout = grow(s.dout, pw.op.Cout*m.M())
			scatterHead(g, m.H*m.W, n, s.perLoc[i], d, off, na, s.dout)
			mid := &s.headMid[hd][i]
			s.dtmp[0] = growZero(s.dtmp[0], len(mid.Data))
			pw.backward(s.dout, s.dtmp[0])
			dw.backward(s.dtmp[0], s.dmaps[i])
		}
		off += m.H * m.W * s.perLoc[i]
	}
	// extras, last to first: map i+2's gradient flows into map i+1's
	for i := 3; i >= 0; i-- {
		d := s.dmaps[i+2]
		for j := 2; j >= 0; j-- {
			u := s.extras[i][j]
			var dx []float32
			if j > 0 {
				dx = growZero(s.dtmp[j], len(s.extraOut[i][j-1].Data))
				s.dtmp[j] = dx
			} else {
				dx = s.dmaps[i+1]
			}
			u.backward(d, dx)
			d = dx
		}
	}
	s.Backbone.backwardFeaturesTap(s.dmaps[1], s.tap, s.dmaps[0])
	return nil
}

// StateDict returns the net's tensors under torchvision's SSD key names,
// in PyTorch's order (the tensors are the net's own; num_batches_tracked
// values are copies).
func (s *SSDNet) StateDict() (keys []string, sd map[string]*tensor.Tensor) {
	sd = map[string]*tensor.Tensor{}
	add := func(k string, t *tensor.Tensor) {
		keys = append(keys, k)
		sd[k] = t
	}
	bk, bsd := s.Backbone.Model().StateDict()
	for _, k := range bk {
		add("backbone."+k, bsd[k])
	}
	for _, e := range s.extras {
		for _, u := range e {
			u.stateDict(add)
		}
	}
	for _, h := range [2]struct {
		dw [6]*convBNReLU
		pw [6]*convBias
	}{{s.clsDW, s.clsPW}, {s.regDW, s.regPW}} {
		for i := range 6 {
			h.dw[i].stateDict(add)
			add(h.pw[i].key+".weight", h.pw[i].w)
			add(h.pw[i].key+".bias", h.pw[i].b)
		}
	}
	return keys, sd
}

// LoadStateDict copies sd (StateDict's key names) into the net. A missing
// key (other than num_batches_tracked), an unexpected key or a shape that
// differs is an error naming the key; nothing is copied then.
func (s *SSDNet) LoadStateDict(sd map[string]*tensor.Tensor) error {
	bsd := map[string]*tensor.Tensor{}
	keys, own := s.StateDict()
	var unexpected []string
	for k, t := range sd {
		if b, ok := strings.CutPrefix(k, "backbone."); ok && !strings.HasPrefix(b, "extra.") {
			bsd[b] = t
		} else if _, ok := own[k]; !ok {
			unexpected = append(unexpected, k)
		}
	}
	if len(unexpected) > 0 {
		sort.Strings(unexpected)
		return fmt.Errorf("train: detection state dict has unexpected key %q%s", unexpected[0], more(len(unexpected)-1))
	}
	for _, k := range keys {
		t, ok := sd[k]
		if !ok {
			if strings.HasSuffix(k, ".num_batches_tracked") {
				continue
			}
			return fmt.Errorf("train: detection state dict is missing key %q", k)
		}
		if want := own[k]; len(t.Data) != want.Numel() || (want.Numel() != 1 && !tensor.SameShape(t.Shape, want.Shape)) {
			return fmt.Errorf("train: key %q has shape %s, the net expects %s", k, tensor.ShapeString(t.Shape), tensor.ShapeString(want.Shape))
		}
	}
	if err := s.Backbone.Model().LoadStateDict(bsd); err != nil {
		return fmt.Errorf("train: backbone (keys under backbone.): %w", err)
	}
	nbt := map[string]*convBNReLU{}
	for _, u := range s.units() {
		nbt[u.bnKey+".num_batches_tracked"] = u
	}
	for _, k := range keys {
		t, ok := sd[k]
		if !ok || (strings.HasPrefix(k, "backbone.") && !strings.HasPrefix(k, "backbone.extra.")) {
			continue
		}
		if u, ok := nbt[k]; ok {
			u.bn.bn.NumBatchesTracked = t.Data[0]
			continue
		}
		copy(own[k].Data, t.Data)
	}
	return nil
}

// FusedStateDict returns the detector for inference (arch.SSDLiteMobileOne's
// keys): the backbone re-parameterised (backbone.<authors' fused keys>),
// the extra blocks and heads as they are (their BatchNorms are folded when
// the graph loads them). The tensors are copies.
func (s *SSDNet) FusedStateDict() (keys []string, sd map[string]*tensor.Tensor) {
	sd = map[string]*tensor.Tensor{}
	fk, fsd := s.Backbone.Model().Fuse().StateDict()
	for _, k := range fk {
		keys = append(keys, "backbone."+k)
		sd["backbone."+k] = fsd[k]
	}
	hk, hsd := s.StateDict()
	for _, k := range hk {
		if strings.HasPrefix(k, "backbone.extra.") || strings.HasPrefix(k, "head.") {
			keys = append(keys, k)
			sd[k] = hsd[k].Clone()
		}
	}
	return keys, sd
}

// SetBF16 makes the backbone's dense matrix multiplies run in bfloat16
// (Net.SetBF16) and the extra blocks' and heads' 1×1 convolutions too; it
// fails where the CPU has no bfloat16 unit.
func (s *SSDNet) SetBF16(on bool) error {
	if err := s.Backbone.SetBF16(on); err != nil {
		return err
	}
	for _, e := range s.extras {
		e[0].op.BF16, e[2].op.BF16 = on, on
	}
	for _, c := range s.convs() {
		c.op.BF16 = on
	}
	return nil
}

// LoadBackbone copies a classification checkpoint's backbone weights into
// the backbone, leaving out its classifier (SegNet.LoadBackbone's rules).
func (s *SSDNet) LoadBackbone(sd map[string]*tensor.Tensor) error {
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
