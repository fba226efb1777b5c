package data

import (
	"fmt"
	"runtime"
	"testing"
	"time"
)

// BenchmarkFashionMNISTLoader measures the training loader's throughput on
// the real Fashion-MNIST training set (batch 256, shuffled, buffers
// released), with the classic 28×28 augmentation and with
// RandomResizedCrop to 32×32 (grey replicated to 3 channels), at 1 worker
// and at GOMAXPROCS workers. It reports images/s; the consumer does nothing.
//
//	go test -run '^$' -bench FashionMNISTLoader -benchtime 200x ./data
func BenchmarkFashionMNISTLoader(b *testing.B) {
	ds, err := LoadFashionMNIST(fashionDir(b), "train")
	if err != nil {
		b.Fatal(err)
	}
	rrc := Augment{Size: 32, RRC: true, Flip: true, Channels: 3,
		Mean: []float32{FashionMNISTMean}, Std: []float32{FashionMNISTStd}}.Transform()
	for _, tc := range []struct {
		name string
		tr   *Transform
	}{
		{"padcrop-flip-28", FashionMNISTTrain()},
		{"rrc-flip-32x3", rrc},
		{"randaugment-28", Augment{Size: 28, PadCrop: 4, Flip: true, RandAugmentN: 2, RandAugmentM: 9}.Transform()},
	} {
		for _, workers := range []int{1, runtime.GOMAXPROCS(0)} {
			b.Run(fmt.Sprintf("%s/workers=%d", tc.name, workers), func(b *testing.B) {
				l, err := NewLoader(ds, Options{BatchSize: 256, Shuffle: true, DropLast: true, Workers: workers,
					Transform: tc.tr, Seed: 1})
				if err != nil {
					b.Fatal(err)
				}
				benchLoader(b, l, 256)
			})
		}
	}
}

// benchLoader consumes b.N batches (over as many epochs as needed).
func benchLoader(b *testing.B, l *Loader, bs int) {
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	n := 0
	for e := 0; n < b.N; e++ {
		for batch, err := range l.Epoch(e) {
			if err != nil {
				b.Fatal(err)
			}
			batch.Release()
			if n++; n == b.N {
				break
			}
		}
	}
	b.ReportMetric(float64(n*bs)/time.Since(start).Seconds(), "images/s")
}

// BenchmarkLoaderSynthetic is the same without the dataset installed:
// 4096 in-memory 28×28 grey images.
func BenchmarkLoaderSynthetic(b *testing.B) {
	ds := memDataset(b, 4096, 1, false)
	for i, m := range ds.Images {
		ds.Images[i] = testImage(28, 28, 1)
		ds.Images[i].Pix[0] = m.Pix[0]
	}
	l, err := NewLoader(ds, Options{BatchSize: 256, Shuffle: true, DropLast: true, Transform: FashionMNISTTrain(), Seed: 1})
	if err != nil {
		b.Fatal(err)
	}
	benchLoader(b, l, 256)
}
