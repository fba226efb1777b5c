// Package dense holds the data side of dense prediction (semantic
// segmentation, and the instance masks detection reuses): per-pixel class
// maps, the Pascal VOC colour palette, readers of segmentation datasets,
// augmentations applied to an image and its mask together, PNG output of
// class maps and overlays, and the segmentation metrics.
//
// A class map (Mask) holds one uint8 class index per pixel, row-major
// (H×W); Ignore (255) marks pixels that count for neither the loss nor
// the metrics, as in Pascal VOC.
//
//	ds, _ := dense.Open("canvases", "train", dense.Options{})    // VOC layout or images/ + masks/
//	img, m, _ := ds.Get(0)                                      // *imageproc.Image8, *dense.Mask
//	aug := dense.Augment{ScaleMin: 0.5, ScaleMax: 2, Crop: 256, Flip: 0.5}
//	img, m = aug.Apply(img, m, data.NewRNG(data.SampleSeed(seed, epoch, i)))  // image and mask together
//	x := dense.CHW(img, mean, std)                               // float32 (C, H, W); m.Pix: (H, W)
//	x, y, c, h, w, _ := dense.Batch(ds, idx, dense.BatchOptions{Augment: aug, Mean: mean, Std: std, Seed: seed, Epoch: e})
//	                                                             // x: (N, C, H, W), y: (N, H, W), in parallel
//
//	cm := dense.NewConfusion(len(ds.Classes()))
//	cm.Add(pred, m.Pix)                                          // pred: []uint8 (H×W); Ignore pixels skipped
//	cm.MeanIoU()                                                 // over classes in targets or predictions
//
//	dense.WriteMaskPNG(w, m)                                     // indexed colour, VOC palette
//	dense.Overlay(img, m, ds.Classes(), 0.5)                     // image + colours + legend
//	dense.Shares(m, ds.Classes())                                // per-class pixel shares
//
// The canvases data set (a real one that needs no download) is made by the
// sub-package canvas; Open reads it like any VOC-layout folder.
//
// Mask files are read from palette PNGs (the palette index is the class,
// whatever the palette's colours), 8-bit grey PNGs (the grey value is the
// class) or RGB PNGs whose colours are all VOC palette colours.
package dense
