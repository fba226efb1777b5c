// Package detect holds the parts of SSD/SSDLite object detection that do
// not need the network, each matching torchvision 0.14 on the same inputs
// (golden files written by tools/reference/det_ref.py):
//
//   - boxes: Box (x1, y1, x2, y2 pixels), IoU/IoUMatrix (box_iou), BoxCoder
//     (det_utils.BoxCoder, SSDCoder = weights (10, 10, 5, 5)), DefaultBoxes
//     (DefaultBoxGenerator; SSDLiteBoxes as ssdlite320_mobilenet_v3_large),
//     Match (SSDMatcher);
//   - the training loss: SSDLoss (SSD.compute_loss, with its gradients);
//   - post-processing: Postprocess (SSD.postprocess_detections), NMS and
//     BatchedNMS (torchvision.ops), Rescale (transform.resize_boxes);
//   - COCO's detection metric: Evaluate (pycocotools' COCOeval algorithm);
//   - data: Open (COCO JSON, Pascal VOC XML, the canvases set), box-aware
//     augmentations (IoU crop, zoom out, flip, photometric distortion).
//
// It knows no kernels and no network: heads' outputs come in as flat
// float32 slices whose shapes the comments give, e.g. logits: (A, classes).
//
//	anchors, _ := detect.SSDLiteBoxes().Generate(320, 320, [][2]int{{20, 20}, {10, 10}, {5, 5}, {3, 3}, {2, 2}, {1, 1}})
//	loss, _ := detect.SSDLoss(anchors, targets, logits, regs, classes, detect.LossOptions{}, gLogits, gRegs)
//	dets, _ := detect.Postprocess(logits[i*A*classes:], regs[i*A*4:], anchors, classes, 320, 320, detect.PostOptions{})
//	detect.Rescale(dets, 320, 320, origH, origW)
package detect
