package train

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/mobileone-go/mobileone/model"
)

// relNorm is ‖got − want‖ / ‖want‖.
func relNorm(got, want []float32) float64 {
	var num, den float64
	for i, w := range want {
		d := float64(got[i] - w)
		num += d * d
		den += float64(w) * float64(w)
	}
	return math.Sqrt(num / (den + 1e-300))
}

// TestBF16ConvOps checks the dense convolutions with bfloat16 matrix
// multiplies (convOp.BF16) against float32: the output, the weight gradient
// and the input gradient agree to bfloat16 precision (operands rounded to 8
// significant bits, relative error ~2⁻⁹ each, sums in float32), and are
// not bit-identical (so the bfloat16 path ran). Without AMX the kernels'
// Go twin runs.
func TestBF16ConvOps(t *testing.T) {
	for ci, op := range []convOp{
		{Cin: 48, Cout: 64, K: 1, S: 1},      // pointwise, 16-multiples
		{Cin: 40, Cout: 24, K: 1, S: 1},      // pointwise, partial strips
		{Cin: 3, Cout: 16, K: 3, S: 2, P: 1}, // a dense stem (im2col)
		{Cin: 24, Cout: 32, K: 1, S: 2},      // strided 1×1
		{Cin: 256, Cout: 128, K: 1, S: 1},    // long k
	} {
		r := rand.New(rand.NewPCG(uint64(ci), 8))
		x := &act{C: op.Cin, N: 16, H: 12, W: 11, Data: randVec(r, op.Cin*16*12*11, 1)}
		w := randVec(r, op.Cout*op.Cin*op.K*op.K, 0.5)
		oh, ow := op.outSize(x.H, x.W)
		zn := op.Cout * x.N * oh * ow
		dz := randVec(r, zn, 1)
		run := func(bf bool) (z, dw, dx []float32) {
			o := op
			o.BF16 = bf
			var ws convWork
			z = make([]float32, zn)
			o.forward(x, w, z, &ws)
			dw = make([]float32, len(w))
			dx = make([]float32, len(x.Data))
			o.backward(x, w, dz, dw, dx, &ws)
			return
		}
		if oh*ow*x.N < bf16MinCols {
			t.Fatalf("%+v: %d columns, below bf16MinCols", op, oh*ow*x.N)
		}
		z32, dw32, dx32 := run(false)
		z16, dw16, dx16 := run(true)
		for _, c := range []struct {
			name      string
			got, want []float32
		}{{"output", z16, z32}, {"weight gradient", dw16, dw32}, {"input gradient", dx16, dx32}} {
			e := relNorm(c.got, c.want)
			if e > 4e-3 || e == 0 {
				t.Errorf("%+v: %s differs from float32 by %.3g (relative norm), want (0, 4e-3]", op, c.name, e)
			}
		}
	}
}

// TestBF16SmallStaysFloat32: a conv with fewer than bf16MinCols columns
// multiplies in float32 even with BF16 set.
func TestBF16SmallStaysFloat32(t *testing.T) {
	op := convOp{Cin: 32, Cout: 48, K: 1, S: 1}
	r := rand.New(rand.NewPCG(3, 8))
	x := &act{C: op.Cin, N: 4, H: 8, W: 8, Data: randVec(r, op.Cin*4*8*8, 1)} // 256 columns
	w := randVec(r, op.Cout*op.Cin, 0.5)
	z32, z16 := make([]float32, op.Cout*256), make([]float32, op.Cout*256)
	var ws convWork
	op.forward(x, w, z32, &ws)
	op.BF16 = true
	op.forward(x, w, z16, &ws)
	if e := relNorm(z16, z32); e != 0 {
		t.Errorf("256 columns with BF16 set: differs from float32 by %.3g", e)
	}
}

// TestBF16NetStep runs a training step of a small network with and without
// Net.SetBF16's bfloat16 matrix multiplies: the same loss to bfloat16
// precision. (Gradients are not compared: at random initialisation they
// change by tens of per cent for a 0.4 % change of the input, in float32.)
func TestBF16NetStep(t *testing.T) {
	cfg := model.Config{Name: "tiny-bf16", Channels: [5]int{16, 24, 32, 48, 64}, Blocks: [4]int{1, 2, 2, 1}, K: 1,
		NumClasses: 5, InChannels: 3, StemStride: 2}
	_, n32 := tinyNet(t, cfg, 5)
	_, n16 := tinyNet(t, cfg, 5)
	n16.setBF16(true)
	x := randInput(9, 16, 3, 24, 24)
	labels := []int{0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 0}
	l32, d32 := CrossEntropy(n32.Forward(x, true), labels, 0.1)
	n32.Backward(d32)
	l16, d16 := CrossEntropy(n16.Forward(x, true), labels, 0.1)
	n16.Backward(d16)
	if math.Abs(l32-l16) > 1e-2*math.Abs(l32) || l32 == l16 {
		t.Errorf("loss %v with bfloat16, %v in float32: want within 1 %%, not equal", l16, l32)
	}
}

// TestBF16FoldedBlock runs the folded form of k = 3 1×1 blocks (with and
// without a skip BatchNorm) forward and backward with float32 and with
// bfloat16 products (folded.go, convOp.gemms): the output, the input
// gradient, every parameter gradient and the running statistics agree to
// bfloat16 precision, and the output and input gradient are not
// bit-identical (so the bfloat16 path ran).
func TestBF16FoldedBlock(t *testing.T) {
	old := foldFactor
	foldFactor = 1e9
	defer func() { foldFactor = old }()
	cfg := model.Config{Name: "tiny-folded-bf16", Channels: [5]int{16, 32, 48, 64, 64}, Blocks: [4]int{1, 2, 2, 1}, K: 3,
		NumClasses: 5, InChannels: 3, StemStride: 2}
	type result struct {
		y, gx []float32
		grads map[string][]float32
		stats [][]float32
	}
	run := func(idx int, bf bool) result {
		_, net := tinyNet(t, cfg, 4)
		b := net.blocks[idx]
		b.op.BF16 = bf
		r := rand.New(rand.NewPCG(uint64(idx), 5))
		x := &act{C: b.op.Cin, N: 8, H: 8, W: 8, Data: randVec(r, b.op.Cin*512, 1)}
		for i, v := range x.Data {
			x.Data[i] = float32(math.Abs(float64(v))) // a ReLU output: mean far from 0
		}
		d := randVec(r, b.outC*512, 1)
		// BatchNorm biases that keep every output above 0: the ReLU mask,
		// which rounding would flip at outputs near 0 (each flip moves a
		// whole gradient value), is then the same in both runs.
		for _, br := range b.branches {
			for i := range br.bn.bn.Bias.Data {
				br.bn.bn.Bias.Data[i] = 10
			}
		}
		out := b.forward(x, true)
		if !b.folded {
			t.Fatalf("block %s: not folded", b.name)
		}
		res := result{y: append([]float32(nil), out.Data...), grads: map[string][]float32{}}
		net.ZeroGrad()
		res.gx = append([]float32(nil), b.backward(d)...)
		for _, p := range net.Params() {
			res.grads[p.Name] = append([]float32(nil), p.G.Data...)
		}
		for _, br := range b.branches {
			res.stats = append(res.stats, br.bn.bn.RunningMean.Data, br.bn.bn.RunningVar.Data)
		}
		return res
	}
	_, net := tinyNet(t, cfg, 4)
	var tested, withSkip int
	for idx, b := range net.blocks {
		if !b.foldable() || b.first {
			continue
		}
		tested++
		if b.skip != nil {
			withSkip++
		}
		f32, bf := run(idx, false), run(idx, true)
		for _, c := range []struct {
			name      string
			got, want []float32
		}{{"output", bf.y, f32.y}, {"input gradient", bf.gx, f32.gx}} {
			if e := relNorm(c.got, c.want); e > 4e-3 || e == 0 {
				t.Errorf("block %s: %s differs from float32 by %.3g (relative norm), want (0, 4e-3]", b.name, c.name, e)
			}
		}
		for name, want := range f32.grads {
			if e := relNorm(bf.grads[name], want); e > 8e-3 {
				t.Errorf("block %s: gradient of %s differs from float32 by %.3g (relative norm)", b.name, name, e)
			}
		}
		for i := range f32.stats {
			if e := relNorm(bf.stats[i], f32.stats[i]); e > 1e-4 {
				t.Errorf("block %s: running statistics %d differ from float32 by %.3g (relative norm)", b.name, i, e)
			}
		}
	}
	if tested < 3 || withSkip == 0 {
		t.Fatalf("%d foldable blocks, %d with a skip BatchNorm: want ≥ 3 and ≥ 1", tested, withSkip)
	}
}
