package kernel

// Code below is the register-blocked GEMM micro-kernel. It is plain Go; a
// SIMD version can replace microKernel without touching the driver as long
// as it keeps the packed-panel layout documented on packA and packB.

// Micro-tile shape: the micro-kernel computes an mr×nr block of C.
const (
	mr = 4
	nr = 8
)

// microKernel computes acc[i*nr+j] = Σ_{p<kc} ap[p*mr+i]·bp[p*nr+j].
//
// The accumulators deliberately live in the caller's stack array rather than
// in local variables: the Go compiler schedules all products of an unrolled
// iteration before the additions that feed the loop-carried values, which
// with 32 scalar accumulators spills badly and runs at less than half the
// speed of this load-add-store form (store forwarding makes it cheap).
func microKernel(kc int, ap, bp []float32, acc *[mr * nr]float32) {
	*acc = [mr * nr]float32{}
	ap = ap[:kc*mr]
	bp = bp[:kc*nr]
	for len(ap) >= mr && len(bp) >= nr {
		b0 := bp[0]
		b1 := bp[1]
		b2 := bp[2]
		b3 := bp[3]
		b4 := bp[4]
		b5 := bp[5]
		b6 := bp[6]
		b7 := bp[7]
		a0 := ap[0]
		acc[0] += a0 * b0
		acc[1] += a0 * b1
		acc[2] += a0 * b2
		acc[3] += a0 * b3
		acc[4] += a0 * b4
		acc[5] += a0 * b5
		acc[6] += a0 * b6
		acc[7] += a0 * b7
		a1 := ap[1]
		acc[8] += a1 * b0
		acc[9] += a1 * b1
		acc[10] += a1 * b2
		acc[11] += a1 * b3
		acc[12] += a1 * b4
		acc[13] += a1 * b5
		acc[14] += a1 * b6
		acc[15] += a1 * b7
		a2 := ap[2]
		acc[16] += a2 * b0
		acc[17] += a2 * b1
		acc[18] += a2 * b2
		acc[19] += a2 * b3
		acc[20] += a2 * b4
		acc[21] += a2 * b5
		acc[22] += a2 * b6
		acc[23] += a2 * b7
		a3 := ap[3]
		acc[24] += a3 * b0
		acc[25] += a3 * b1
		acc[26] += a3 * b2
		acc[27] += a3 * b3
		acc[28] += a3 * b4
		acc[29] += a3 * b5
		acc[30] += a3 * b6
		acc[31] += a3 * b7
		ap = ap[mr:]
		bp = bp[nr:]
	}
}
