// Package detect holds the parts of SSD/SSDLite object detection that need
// no network: boxes, default boxes and matching, the training loss,
// post-processing, COCO's metric, data readers and box-aware
// augmentations. It knows no kernels: head outputs come in as flat float32
// slices whose shapes the comments give, e.g. logits: (N, A, classes).
//
// Everything that torchvision 0.14 also computes matches it on the same
// inputs (golden files written by tools/reference/det_ref.py with
// torchvision's own code):
//
//   - Box (x1, y1, x2, y2 pixels, float32 as torchvision), IoU and
//     IoUMatrix (ops.box_iou);
//   - BoxCoder (det_utils.BoxCoder; SSDCoder: weights (10, 10, 5, 5),
//     bbox_xform_clip log(1000/16));
//   - DefaultBoxes (anchor_utils.DefaultBoxGenerator; SSDLiteBoxes is
//     ssdlite320_mobilenet_v3_large's: aspect ratios [2, 3] on six maps,
//     min_ratio 0.2, max_ratio 0.95, clip);
//   - Match (det_utils.SSDMatcher: IoU ≥ 0.5, every ground truth claims its
//     best default box);
//   - SSDLoss (SSD.compute_loss: smooth-L1 on positives, cross-entropy with
//     hard negative mining at 3:1, over the number of positives) with its
//     gradients with respect to the logits and box regressions;
//   - Postprocess (SSD.postprocess_detections: softmax, score threshold,
//     top-k per class, decoding, clipping, class-wise NMS, detections per
//     image), NMS and BatchedNMS (ops.nms, ops.batched_nms, both of its code
//     paths), Rescale (transform.resize_boxes);
//   - the photometric adjustments of PhotometricDistort.
//
// Where torch leaves an order unspecified (ties in sort and topk outside
// NMS), ties go to the lower index.
//
// Evaluate is COCO's detection metric following pycocotools' COCOeval
// (which cannot be installed here, so it is checked on hand-made cases of
// known AP): AP at IoU .50:.05:.95, AP50, AP75, AP and AR for small, medium
// and large objects, AR at 1, 10 and 100 detections, per-class AP, crowd
// regions, 101-point interpolated precision. Its Report marshals to JSON;
// Report.Lines prints COCO's summary. Results are COCO's results format
// (ToResults, WriteResults, ReadResults).
//
// Data: Open(dir) finds the train and val splits of a COCO-format folder
// (annotations/instances_{train,val}.json, as `mobileone data canvases`
// writes it) or a Pascal VOC folder (Annotations/*.xml,
// ImageSets/Main/{train,val}.txt); ReadCOCO and ReadVOC read one file or
// split. Categories become contiguous labels 1..C (0 is the background);
// images without boxes are kept; COCO's iscrowd and VOC's difficult are
// kept on the objects, left out of training targets (Sample.Target) and
// scored as crowd regions and ignored objects by Evaluate. Bad input is an
// error naming the file and the item; boxes of zero area are left out with
// a warning (Dataset.Warnings), boxes partly outside their image clipped.
//
// Augmentations (torchvision's detection reference recipes, seeded by a
// data.RNG): IoUCrop (RandomIoUCrop), ZoomOut (RandomZoomOut) over Expand,
// HFlip, PhotometricDistort (RandomPhotometricDistort), Crop and Resize;
// Recipe composes them (SSDRecipe, SSDLiteRecipe).
//
//	train, val, _ := detect.Open("canvases")
//	img, s, _ := train.Get(i)                                   // *imageproc.Image8, Sample
//	img, objs := detect.SSDLiteRecipe().Apply(img, s.Objects, data.NewRNG(data.SampleSeed(seed, epoch, i)))
//	img, objs = detect.Resize(img, objs, 320, 320)
//	s.Objects = objs                                            // target: s.Target()
//
//	anchors, _ := detect.SSDLiteBoxes().Generate(320, 320, [][2]int{{20, 20}, {10, 10}, {5, 5}, {3, 3}, {2, 2}, {1, 1}})
//	loss, _ := detect.SSDLoss(anchors, targets, logits, regs, classes, detect.LossOptions{}, gLogits, gRegs)
//
//	dets, _ := detect.Postprocess(logits, regs, anchors, classes, 320, 320, detect.PostOptions{})  // one image
//	detect.Rescale(dets, 320, 320, s.Height, s.Width)
//	res, _ := detect.ToResults(s.ID, dets, val.CategoryIDs)
//	imgs, cats, gts := val.GroundTruth()
//	report, _ := detect.Evaluate(imgs, cats, gts, allResults, val.Names())
package detect
