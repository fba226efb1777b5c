package data_test

import (
	"fmt"

	"github.com/mobileone-go/mobileone/data"
	"github.com/mobileone-go/mobileone/imageproc"
)

// A loader over an in-memory dataset: the classic Fashion-MNIST
// augmentation, batches of 4, a new shuffle each epoch.
func Example() {
	var imgs []*imageproc.Image8
	var labels []int
	for i := range 10 {
		imgs = append(imgs, imageproc.NewImage8(28, 28, 1))
		labels = append(labels, i%2)
	}
	ds, err := data.NewMemory(imgs, labels, []string{"even", "odd"})
	if err != nil {
		panic(err)
	}
	l, err := data.NewLoader(ds, data.Options{BatchSize: 4, Shuffle: true, Transform: data.FashionMNISTTrain(), Seed: 1})
	if err != nil {
		panic(err)
	}
	for b, err := range l.Epoch(0) {
		if err != nil {
			panic(err)
		}
		fmt.Println(b.Step, b.X, len(b.Labels))
		b.Release()
	}
	// Output:
	// 0 Tensor(4, 1, 28, 28) 4
	// 1 Tensor(4, 1, 28, 28) 4
	// 2 Tensor(2, 1, 28, 28) 2
}
