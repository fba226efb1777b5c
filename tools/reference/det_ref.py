"""Write golden data for the Go detection pieces (package detect) with torchvision 0.14's own code:
box coding (det_utils.BoxCoder(weights=(10, 10, 5, 5))), box_iou, DefaultBoxGenerator as
ssdlite320_mobilenet_v3_large builds it, SSDMatcher(0.5), SSD.compute_loss (forward and autograd gradients),
SSD.postprocess_detections + GeneralizedRCNNTransform.postprocess (resize_boxes), and ops.nms / batched_nms on
boxes with tied scores.

    /usr/bin/python3 tools/reference/det_ref.py --out detect/testdata/golden [--seed N]   (make_all.sh runs it)

Everything is float32 as torchvision runs it and written as JSON (small, committed):
  boxes.json   encode/decode/box_iou cases
  anchors.json default boxes (x1, y1, x2, y2 pixels) for two (image size, feature sizes) cases, and matches
  loss.json    anchors, targets, logits, regressions, matched indexes, both losses, gradients
  post.json    logits, regressions, anchors, sizes, final detections per image
  nms.json     nms and batched_nms cases (ties in scores, duplicate boxes; both batched_nms code paths)
  photometric.json  adjust_brightness/contrast/saturation/hue on a float (H, W, 3) image, fixed factors

SSD's methods are called unbound on a namespace holding exactly the attributes they read (box_coder,
neg_to_pos_ratio, score_thresh, topk_candidates, nms_thresh, detections_per_img): the network itself is not
needed for these pieces.
"""

import argparse
import json
import math
import os
import types

import torch
from torchvision.models.detection import _utils as det_utils
from torchvision.models.detection.anchor_utils import DefaultBoxGenerator
from torchvision.models.detection.image_list import ImageList
from torchvision.models.detection.ssd import SSD
from torchvision.models.detection.transform import resize_boxes
from torchvision.ops import boxes as box_ops


def tl(t):
    """float32 values as JSON numbers with 9 significant digits (enough to round-trip float32)."""
    def r(v):
        return [r(x) for x in v] if isinstance(v, list) else float("%.9g" % v)
    return r(t.detach().to(torch.float64).tolist())


def rand_boxes(g, n, w, h, min_side=2.0):
    x1 = torch.rand(n, generator=g) * (w - min_side)
    y1 = torch.rand(n, generator=g) * (h - min_side)
    bw = min_side + torch.rand(n, generator=g) * (w - x1 - min_side)
    bh = min_side + torch.rand(n, generator=g) * (h - y1 - min_side)
    return torch.stack([x1, y1, x1 + bw, y1 + bh], 1).float()


def ssdlite_generator():
    return DefaultBoxGenerator([[2, 3] for _ in range(6)], min_ratio=0.2, max_ratio=0.95)


def anchors_for(gen, image_hw, feats):
    img = ImageList(torch.zeros(1, 3, *image_hw), [tuple(image_hw)])
    fms = [torch.zeros(1, 1, h, w) for h, w in feats]
    return gen(img, fms)[0]


ANCHOR_CASES = [
    dict(image=[160, 160], feats=[[10, 10], [5, 5], [3, 3], [2, 2], [1, 1], [1, 1]]),
    dict(image=[120, 200], feats=[[8, 13], [4, 7], [2, 4], [1, 2], [1, 1], [1, 1]]),
]
SMALL = dict(image=[80, 96], feats=[[5, 6], [3, 3], [2, 2], [1, 1], [1, 1], [1, 1]])  # loss and post-processing


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    g = torch.Generator().manual_seed(a.seed)
    coder = det_utils.BoxCoder(weights=(10.0, 10.0, 5.0, 5.0))

    def dump(name, obj):
        with open(os.path.join(a.out, name), "w") as f:
            json.dump(obj, f, separators=(",", ":"))

    # --- boxes: encode, decode (with codes large enough to hit bbox_xform_clip), box_iou
    gt = rand_boxes(g, 24, 100, 80)
    props = rand_boxes(g, 24, 100, 80)
    enc = coder.encode_single(gt, props)
    codes = torch.randn(24, 4, generator=g) * 3
    codes[:4, 2:] = torch.tensor([[50.0, -50.0], [40.0, 25.0], [-30.0, 45.0], [20.0, 20.0]])
    dec = coder.decode_single(codes, props)
    b1 = rand_boxes(g, 7, 50, 50)
    b2 = torch.cat([rand_boxes(g, 8, 50, 50), b1[:1]])
    b2[3] = torch.tensor([100.0, 100.0, 120.0, 110.0])  # disjoint
    iou = box_ops.box_iou(b1, b2)
    dump("boxes.json", dict(clip=math.log(1000.0 / 16), gt=tl(gt), proposals=tl(props), encoded=tl(enc),
                            codes=tl(codes), decoded=tl(dec), iou_a=tl(b1), iou_b=tl(b2), iou=tl(iou)))

    # --- default boxes and matching
    gen = ssdlite_generator()
    matcher = det_utils.SSDMatcher(0.5)
    cases = []
    for c in ANCHOR_CASES:
        anc = anchors_for(gen, c["image"], c["feats"])
        h, w = c["image"]
        gtb = rand_boxes(g, 6, w, h, min_side=8)
        gtb[5] = gtb[4]  # a duplicate ground truth: both want the same best default box
        m = matcher(box_ops.box_iou(gtb, anc))
        cases.append(dict(image=c["image"], feats=c["feats"], anchors=tl(anc), gt=tl(gtb), matches=m.tolist()))
    # SSD300-style generator (explicit scales and steps; scale 1.05 exercises the clip), small image
    g300 = DefaultBoxGenerator([[2], [2, 3], [2, 3], [2, 3], [2], [2]], scales=[0.07, 0.15, 0.33, 0.51, 0.69, 0.87, 1.05],
                               steps=[8, 16, 32, 64, 100, 300])
    steps_case = dict(image=[100, 100], feats=[[13, 13], [7, 7], [4, 4], [2, 2], [1, 1], [1, 1]],
                      aspect_ratios=g300.aspect_ratios, scales=g300.scales, steps=g300.steps)
    steps_case["anchors"] = tl(anchors_for(g300, steps_case["image"], steps_case["feats"]))
    dump("anchors.json", dict(scales=gen.scales, cases=cases, steps_case=steps_case))

    # --- loss: 3 images (3 boxes, 1 box, none), 4 classes (0 = background)
    c = SMALL
    anc = anchors_for(gen, c["image"], c["feats"])
    A, K = anc.shape[0], 4
    h, w = c["image"]
    targets = [dict(boxes=rand_boxes(g, 3, w, h, 30), labels=torch.tensor([1, 3, 1])),
               dict(boxes=rand_boxes(g, 1, w, h, 30), labels=torch.tensor([2])),
               dict(boxes=torch.zeros(0, 4), labels=torch.zeros(0, dtype=torch.int64))]
    logits = (torch.randn(3, A, K, generator=g) * 2).requires_grad_()
    regs = (torch.randn(3, A, 4, generator=g)).requires_grad_()
    matched = []
    for t in targets:
        if t["boxes"].numel() == 0:
            matched.append(torch.full((A,), -1, dtype=torch.int64))
        else:
            matched.append(matcher(box_ops.box_iou(t["boxes"], anc)))
    ns = types.SimpleNamespace(box_coder=coder, neg_to_pos_ratio=(1.0 - 0.25) / 0.25)
    losses = SSD.compute_loss(ns, targets, dict(bbox_regression=regs, cls_logits=logits), [anc] * 3, matched)
    (losses["bbox_regression"] + losses["classification"]).backward()
    # a tiny case where ratio × positives exceeds the negatives: torch's ranking then takes the positives
    # (at -inf) into the "background" set too, so their cross-entropy counts twice
    tanc = torch.tensor([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [40, 0, 50, 10]], dtype=torch.float32)
    tt = [dict(boxes=torch.tensor([[0.5, 0.5, 10.5, 10.5]]), labels=torch.tensor([2]))]
    tlog = torch.randn(1, 4, 3, generator=g).requires_grad_()
    treg = torch.randn(1, 4, 4, generator=g).requires_grad_()
    tm = [matcher(box_ops.box_iou(tt[0]["boxes"], tanc))]
    tl_ = SSD.compute_loss(ns, tt, dict(bbox_regression=treg, cls_logits=tlog), [tanc], tm)
    (tl_["bbox_regression"] + tl_["classification"]).backward()
    tiny = dict(anchors=tl(tanc), classes=3, targets=[dict(boxes=tl(tt[0]["boxes"]), labels=[2])], logits=tl(tlog),
                regressions=tl(treg), matched=[tm[0].tolist()], bbox_loss=tl_["bbox_regression"].item(),
                cls_loss=tl_["classification"].item(), grad_logits=tl(tlog.grad), grad_regressions=tl(treg.grad))
    dump("loss.json", dict(tiny=tiny, anchors=tl(anc), classes=K,
                           targets=[dict(boxes=tl(t["boxes"]), labels=t["labels"].tolist()) for t in targets],
                           logits=tl(logits), regressions=tl(regs), matched=[m.tolist() for m in matched],
                           bbox_loss=losses["bbox_regression"].item(), cls_loss=losses["classification"].item(),
                           grad_logits=tl(logits.grad), grad_regressions=tl(regs.grad)))

    # --- post-processing: 2 images at 160x160 (network input), original sizes differ
    with torch.no_grad():
        logits = torch.randn(2, A, K, generator=g) * 3
        regs = torch.randn(2, A, 4, generator=g) * 0.5
        pns = types.SimpleNamespace(box_coder=coder, score_thresh=0.01, topk_candidates=60, nms_thresh=0.55,
                                    detections_per_img=100)
        dets = SSD.postprocess_detections(pns, dict(bbox_regression=regs, cls_logits=logits), [anc] * 2,
                                          [(h, w)] * 2)
        orig = [[300, 200], [80, 160]]
        out = []
        for d, o in zip(dets, orig):
            out.append(dict(boxes=tl(resize_boxes(d["boxes"], [h, w], o)), scores=tl(d["scores"]),
                            labels=d["labels"].tolist()))
    dump("post.json", dict(anchors=tl(anc), image=[h, w], original=orig, logits=tl(logits), regressions=tl(regs),
                           score_thresh=0.01, topk=60, nms_thresh=0.55, detections=100, out=out))

    # --- nms with ties: scores on a coarse grid, duplicated boxes; batched_nms both code paths
    nms_cases = []
    for n, ncls, tie in [(60, 1, True), (300, 3, True), (1050, 4, False)]:
        bx = rand_boxes(g, n, 60, 60, 4)
        bx[n // 2:n // 2 + 5] = bx[:5]  # exact duplicates
        if tie:
            sc = torch.randint(0, 6, (n,), generator=g).float() / 5
        else:
            sc = torch.rand(n, generator=g)
        ids = torch.randint(0, ncls, (n,), generator=g)
        for thr in (0.3, 0.55):
            keep = box_ops.batched_nms(bx, sc, ids, thr) if ncls > 1 else box_ops.nms(bx, sc, thr)
            nms_cases.append(dict(boxes=tl(bx), scores=tl(sc), idxs=ids.tolist(), iou=thr, keep=keep.tolist(),
                                  batched=ncls > 1))
    dump("nms.json", dict(cases=nms_cases))

    # --- photometric adjustments (functional_tensor on a float image in [0, 1]) with fixed factors
    import torchvision.transforms.functional as TF
    img = torch.randint(0, 256, (3, 5, 7), generator=g).float() / 255
    img[:, 0, 0] = 0.5  # a grey pixel (no hue)
    img[:, 0, 1] = torch.tensor([1.0, 0.0, 0.0])
    ph = []
    for op, k in [("brightness", 1.1), ("brightness", 0.875), ("contrast", 0.6), ("contrast", 1.4),
                  ("saturation", 0.5), ("saturation", 1.5), ("hue", -0.05), ("hue", 0.03)]:
        out = getattr(TF, "adjust_" + op)(img, k)
        ph.append(dict(op=op, factor=k, out=tl(out.permute(1, 2, 0))))
    dump("photometric.json", dict(image=tl(img.permute(1, 2, 0)), cases=ph))


if __name__ == "__main__":
    main()
