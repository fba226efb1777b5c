// Package data feeds training: datasets of compact 8-bit images
// (imageproc.Image8, grey or RGB), augmentations that work on those images,
// and a parallel, deterministic batch loader that turns them into float32
// (N, C, H, W) tensors.
//
// The pieces:
//
//	ds, _ := data.LoadFashionMNIST("/usr/share/datasets/fashion-mnist", "train")
//	ds, _ := data.LoadFolder("imagenet/train", data.FolderOptions{})   // one sub-folder per class
//	tr := data.FashionMNISTTrain()                                     // pad 4 + random crop 28, flip, normalise
//	tr := data.Augment{Size: 224, RRC: true, Flip: true, RandAugmentN: 2, RandAugmentM: 9}.Transform()
//	l, _ := data.NewLoader(ds, data.Options{BatchSize: 256, Shuffle: true, Transform: tr, Seed: 1})
//	for b, err := range l.Epoch(e) {   // b.X: (N, C, H, W), b.Labels: (N)
//		...
//		b.Release()                    // optional: lets the loader reuse the buffers
//	}
//
// Determinism: the shuffle order of an epoch depends only on (Seed, epoch)
// and every sample's augmentation only on (Seed, epoch, dataset index), so
// a run gives the same batches whatever the number of workers or the
// scheduling, and a resumed run (Epoch(e) or EpochFrom(e, step)) sees the
// same order and the same augmentations. The random number generator is
// PCG-DXSM (math/rand/v2's PCG, whose output is specified) driven by our own
// integer and float helpers, so the streams do not change with the Go
// version.
package data
