package kernel

import "sync"

// Channel-blocked activation layout (NCHW16c), used by the inference engine
// for every layer after the stem input.
//
// An activation of C channels and H×W pixels is stored as
//
//	x[(cb*H*W + p)*BlockC + j]  = channel cb*BlockC + j at pixel p = y*W + x,
//
// for cb < ceil(C/BlockC), p < H*W, j < BlockC: blocks of 16 channels, each a
// (H*W, 16) matrix. Channels C..roundUp(C,16)-1 of the last block are padding
// and hold zeros (every blocked op writes zeros there). One vector of 16
// floats (a ZMM register, or two YMM) holds the 16 channels of one pixel, so
// depthwise and pointwise layers both run at full vector width whatever the
// map size (7×7 maps waste nothing), and a 1×1 convolution reads its input
// directly, with no packing at run time.

// BlockC is the channel block of the blocked layout.
const BlockC = 16

// Blocks is the number of channel blocks holding c channels.
func Blocks(c int) int { return ceilDiv(c, BlockC) }

// BlockedLen is the number of floats of a blocked activation of c channels
// and hw pixels (padding channels included).
func BlockedLen(c, hw int) int { return Blocks(c) * BlockC * hw }

// ToBlocked converts one image from NCHW, src (c, hw), to the blocked
// layout, dst (BlockedLen(c, hw)); padding channels are set to zero.
func ToBlocked(c, hw int, src, dst []float32) {
	src = src[:c*hw]
	dst = dst[:BlockedLen(c, hw)]
	for cb := 0; cb < Blocks(c); cb++ {
		blk := dst[cb*hw*BlockC : (cb+1)*hw*BlockC]
		for j := 0; j < BlockC; j++ {
			ch := cb*BlockC + j
			if ch >= c {
				for p := 0; p < hw; p++ {
					blk[p*BlockC+j] = 0
				}
				continue
			}
			plane := src[ch*hw : (ch+1)*hw]
			for p, v := range plane {
				blk[p*BlockC+j] = v
			}
		}
	}
}

// FromBlocked converts one image from the blocked layout, src
// (BlockedLen(c, hw)), back to NCHW, dst (c, hw).
func FromBlocked(c, hw int, src, dst []float32) {
	src = src[:BlockedLen(c, hw)]
	dst = dst[:c*hw]
	for ch := 0; ch < c; ch++ {
		cb, j := ch/BlockC, ch%BlockC
		blk := src[cb*hw*BlockC : (cb+1)*hw*BlockC]
		plane := dst[ch*hw : (ch+1)*hw]
		for p := range plane {
			plane[p] = blk[p*BlockC+j]
		}
	}
}

// BlockedAvgPool writes the mean over the hw pixels of each of the c
// channels of the blocked activation x to out (c).
func BlockedAvgPool(c, hw int, x, out []float32) { BlockedAvgPoolLimit(c, hw, x, out, 0) }

// BlockedScaleReLU computes x = max(x·g[channel], 0) in place on a blocked
// activation of c channels and hw pixels (the squeeze-excitation gate).
func BlockedScaleReLU(c, hw int, x, g []float32) { BlockedScaleReLULimit(c, hw, x, g, 0) }

// BlockedAvgPoolLimit is BlockedAvgPool on at most limit threads (0:
// Threads()).
func BlockedAvgPoolLimit(c, hw int, x, out []float32, limit int) {
	x = x[:BlockedLen(c, hw)]
	out = out[:c]
	if hw <= 0 {
		clear(out)
		return
	}
	blockedRun(c, hw, x, out, limit, false)
}

// BlockedScaleReLULimit is BlockedScaleReLU on at most limit threads (0:
// Threads()).
func BlockedScaleReLULimit(c, hw int, x, g []float32, limit int) {
	blockedRun(c, hw, x[:BlockedLen(c, hw)], g[:c], limit, true)
}

// blockedJob runs pooling (v = out) or scaling (v = gate) over channel
// blocks, in parallel tasks of whole blocks when the map is large.
type blockedJob struct {
	c, hw, per int
	x, v       []float32
	scale      bool
	im         *gemmImpl
	fn         func(t int)
	// acc holds 16 floats per task (a local array passed to the kernel
	// through a func value would escape to the heap).
	acc []float32
}

var blockedJobs = sync.Pool{New: func() any {
	j := new(blockedJob)
	j.fn = j.task
	return j
}}

// blockedMinTask is the least work (floats) of a parallel task.
const blockedMinTask = 1 << 15

func blockedRun(c, hw int, x, v []float32, limit int, scale bool) {
	nb := Blocks(c)
	per := max(1, blockedMinTask/(hw*BlockC))
	nTasks := ceilDiv(nb, per)
	workers := workersForLimit(nTasks, nb*hw*BlockC, limit)
	j := blockedJobs.Get().(*blockedJob)
	j.c, j.hw, j.per, j.x, j.v, j.scale, j.im = c, hw, per, x, v, scale, active.Load()
	if len(j.acc) < nTasks*BlockC {
		j.acc = make([]float32, nTasks*BlockC)
	}
	if workers <= 1 {
		for t := 0; t < nTasks; t++ {
			j.task(t)
		}
	} else {
		Parallel(nTasks, workers, j.fn)
	}
	j.x, j.v, j.im = nil, nil, nil
	blockedJobs.Put(j)
}

// task handles channel blocks [t·per, (t+1)·per).
func (j *blockedJob) task(t int) {
	c, hw := j.c, j.hw
	acc := j.acc[t*BlockC : (t+1)*BlockC]
	inv := 1 / float32(max(hw, 1))
	for cb := t * j.per; cb < min(Blocks(c), (t+1)*j.per); cb++ {
		blk := j.x[cb*hw*BlockC : (cb+1)*hw*BlockC]
		n := min(c-cb*BlockC, BlockC)
		if j.scale {
			clear(acc)
			copy(acc, j.v[cb*BlockC:cb*BlockC+n])
			j.im.blockScaleReLU(blk, acc, hw)
			continue
		}
		j.im.blockSum(blk, hw, acc)
		for i, s := range acc[:n] {
			j.v[cb*BlockC+i] = s * inv
		}
	}
}

// blockSumGo is the twin of blockSumAVX512 and blockSumAVX2: out[j] =
// Σ_{p<n} x[p*16+j] for j < 16.
func blockSumGo(x []float32, n int, out []float32) {
	x = x[:n*BlockC]
	var acc [BlockC]float32
	for p := 0; p < n; p++ {
		v := (*[BlockC]float32)(x[p*BlockC : (p+1)*BlockC])
		for j := range acc {
			acc[j] += v[j]
		}
	}
	copy(out[:BlockC], acc[:])
}

// blockScaleReLUGo is the twin of blockScaleReLUAVX512 and
// blockScaleReLUAVX2: x[p*16+j] = max(x[p*16+j]·g[j], 0) for p < n, j < 16.
func blockScaleReLUGo(x, g []float32, n int) {
	x = x[:n*BlockC]
	gv := (*[BlockC]float32)(g[:BlockC])
	for p := 0; p < n; p++ {
		v := (*[BlockC]float32)(x[p*BlockC : (p+1)*BlockC])
		for j := range v {
			v[j] = max(v[j]*gv[j], 0)
		}
	}
}
