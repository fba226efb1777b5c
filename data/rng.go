package data

import (
	"math"
	"math/bits"
	"math/rand/v2"
)

// RNG is the random source handed to every Op: a PCG-DXSM generator with
// version-stable helpers (math/rand/v2's PCG output is specified; its Rand
// helpers are not promised to stay the same, so we do not use them).
type RNG struct {
	pcg rand.PCG
}

// NewRNG returns a generator seeded with (a, b).
func NewRNG(a, b uint64) *RNG {
	r := &RNG{}
	r.pcg.Seed(a, b)
	return r
}

// Seed reseeds the generator.
func (r *RNG) Seed(a, b uint64) { r.pcg.Seed(a, b) }

// Uint64 returns 64 random bits.
func (r *RNG) Uint64() uint64 { return r.pcg.Uint64() }

// Intn returns a uniform integer in [0, n) (Lemire's unbiased method). It
// panics if n <= 0.
func (r *RNG) Intn(n int) int {
	if n <= 0 {
		panic("data: Intn of a non-positive bound")
	}
	un := uint64(n)
	hi, lo := bits.Mul64(r.pcg.Uint64(), un)
	if lo < un {
		thresh := -un % un
		for lo < thresh {
			hi, lo = bits.Mul64(r.pcg.Uint64(), un)
		}
	}
	return int(hi)
}

// Float64 returns a uniform float in [0, 1) with 53 random bits.
func (r *RNG) Float64() float64 { return float64(r.pcg.Uint64()>>11) * 0x1p-53 }

// Uniform returns a uniform float in [a, b).
func (r *RNG) Uniform(a, b float64) float64 { return a + (b-a)*r.Float64() }

// Bernoulli returns true with probability p.
func (r *RNG) Bernoulli(p float64) bool { return r.Float64() < p }

// Shuffle permutes s in place (Fisher-Yates).
func (r *RNG) Shuffle(s []int) {
	for i := len(s) - 1; i > 0; i-- {
		j := r.Intn(i + 1)
		s[i], s[j] = s[j], s[i]
	}
}

// splitmix64 is a strong 64-bit mixer (Steele et al.), used to derive
// independent seeds from (seed, epoch, index) tuples.
func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// Seed domains keep the shuffle stream and the per-sample streams apart.
const (
	domainShuffle = 0x53485546464c45 // "SHUFFLE"
	domainSample  = 0x53414d504c45   // "SAMPLE"
	domainDraw    = 0x44524157       // "DRAW"
)

// mix derives a seed from a domain and a tuple of values.
func mix(domain uint64, vals ...uint64) uint64 {
	h := splitmix64(domain)
	for _, v := range vals {
		h = splitmix64(h ^ v)
	}
	return h
}

// SampleDraw returns a uniform number in [0, 1) for sample idx in epoch e,
// from a stream of its own (apart from the shuffle and the augmentation):
// for per-sample decisions made outside the loader, such as which samples a
// trainer leaves out of an epoch.
func SampleDraw(seed uint64, epoch, idx int) float64 {
	return float64(mix(domainDraw, seed, uint64(epoch), uint64(idx))>>11) * 0x1p-53
}

// SampleSeed returns the two PCG seed words of sample idx in epoch e: the
// augmentation of a sample depends on these only.
func SampleSeed(seed uint64, epoch, idx int) (uint64, uint64) {
	a := mix(domainSample, seed, uint64(epoch), uint64(idx))
	return a, splitmix64(a ^ math.MaxUint32)
}
