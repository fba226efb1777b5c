package dense

import (
	"fmt"
	"runtime"
	"sync"

	"github.com/mobileone-go/mobileone/data"
)

// BatchOptions configure Batch.
type BatchOptions struct {
	Augment   Augment    // applied to every sample (the zero value: none)
	Mean, Std [3]float32 // normalisation of CHW
	Seed      uint64     // sample idx of epoch e is augmented with data.SampleSeed(Seed, e, idx)
	Epoch     int
	Workers   int // goroutines reading samples; 0: GOMAXPROCS
}

// Batch reads, augments and normalises the samples idx of ds into one
// batch: x (N, C, H, W) float32 and y (N, H, W) class indices, N =
// len(idx). Sample idx[k]'s augmentation depends only on (Seed, Epoch,
// idx[k]), so a batch is the same whatever the number of workers. Every
// sample must come out the same size (set Augment.Crop for images of
// different sizes); the error otherwise names the sample.
func Batch(ds Dataset, idx []int, o BatchOptions) (x []float32, y []uint8, c, h, w int, err error) {
	if len(idx) == 0 {
		return nil, nil, 0, 0, 0, fmt.Errorf("dense: empty batch")
	}
	if err := o.Augment.Validate(); err != nil {
		return nil, nil, 0, 0, 0, err
	}
	if o.Std == ([3]float32{}) {
		o.Std = [3]float32{1, 1, 1}
	}
	type sample struct {
		x   []float32
		y   *Mask
		c   int
		err error
	}
	out := make([]sample, len(idx))
	workers := o.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	workers = min(workers, len(idx))
	var wg sync.WaitGroup
	for wk := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := wk; k < len(idx); k += workers {
				img, m, err := ds.Get(idx[k])
				if err != nil {
					out[k].err = err
					return
				}
				img, m = o.Augment.Apply(img, m, data.NewRNG(data.SampleSeed(o.Seed, o.Epoch, idx[k])))
				out[k] = sample{x: CHW(img, o.Mean, o.Std), y: m, c: img.Channels}
			}
		}()
	}
	wg.Wait()
	for k := range out {
		if out[k].err != nil {
			return nil, nil, 0, 0, 0, out[k].err
		}
	}
	c, h, w = out[0].c, out[0].y.Height, out[0].y.Width
	x = make([]float32, 0, len(idx)*c*h*w)
	y = make([]uint8, 0, len(idx)*h*w)
	for k, s := range out {
		if s.c != c || s.y.Height != h || s.y.Width != w {
			return nil, nil, 0, 0, 0, fmt.Errorf("dense: sample %d (%s) is (%d, %d, %d) (C, H, W) after augmentation, sample %d (%s) (%d, %d, %d): set a crop size",
				idx[k], ds.Name(idx[k]), s.c, s.y.Height, s.y.Width, idx[0], ds.Name(idx[0]), c, h, w)
		}
		x = append(x, s.x...)
		y = append(y, s.y.Pix...)
	}
	return x, y, c, h, w, nil
}
