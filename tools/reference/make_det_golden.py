"""Write golden data for the Go SSDLite detector (train.SSDNet, arch.SSDLiteMobileOne): torchvision 0.14's own
`SSD` class with an SSDLiteHead and a MobileOne backbone (the reference in mobileone_ref.py), built as
torchvision's ssdlite320_mobilenet_v3_large builds its detector with the backbone swapped:

  - backbone: MobileOne's stem and stages (authors' unfused keys under backbone.); feature map 0 is stage3's
    output (stride 16), map 1 stage4's (stride 32): MobileOne has no expansion layer inside a block for
    torchvision's "C4 expansion" tap, and stage3 -> stage4 is where the stride goes from 16 to 32;
  - four extra blocks (torchvision's ssdlite._extra_block: 1x1 conv-BN-ReLU6 to out/2, 3x3 depthwise stride-2
    conv-BN-ReLU6, 1x1 conv-BN-ReLU6 to out) of widths max(16, int(d * width)) for d in [512, 256, 256, 128],
    under backbone.extra.{0..3};
  - torchvision's SSDLiteHead (per map: depthwise 3x3 conv-BN-ReLU6, then 1x1 conv with bias) with
    BatchNorm(eps 0.001, momentum 0.03) as ssdlite320 uses everywhere outside the backbone;
  - DefaultBoxGenerator([[2, 3]] * 6, min_ratio 0.2, max_ratio 0.95), SSD's matcher, loss and
    postprocess_detections (score_thresh 0.001, nms 0.55, 300 detections, top-k 300).

    /usr/bin/python3 tools/reference/make_det_golden.py --out train/testdata/det/tiny [--seed N]

Weights are random float32 with non-trivial BatchNorm statistics (saved as det.pth.tar); the golden numbers are
computed in float64 from exactly those weights and stored as float32. The images are already at the network's
size (GeneralizedRCNNTransform's resize to the fixed size is then the identity; mean 0, std 1).

Files written to OUT:
  det.pth.tar      initial state_dict (float32), key names of the torchvision model
  input.npy        float32 (N, 3, S, S)
  cls_eval.npy     float32 (N, A, classes): eval mode (running statistics)
  reg_eval.npy     float32 (N, A, 4)
  cls.npy, reg.npy the same in train mode, first step
  grads.npy        float32: every parameter's gradient after the first forward/backward of
                   bbox_regression + classification, concatenated in named_parameters order (golden.json "grads")
  after.npy        float32: every parameter and the listed running statistics after STEPS SGD steps
  golden.json      config, targets, feature sizes, losses, detections (eval mode), indexes
"""

import argparse
import json
import os
import sys
from functools import partial

import numpy as np
import torch
import torch.nn as tnn
from torchvision.models.detection.anchor_utils import DefaultBoxGenerator
from torchvision.models.detection.image_list import ImageList
from torchvision.models.detection.ssd import SSD
from torchvision.models.detection.ssdlite import SSDLiteHead, _extra_block
from torchvision.ops import boxes as box_ops

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mobileone_ref as mo  # noqa: E402

BACKBONE = dict(channels=[8, 8, 12, 16, 64], blocks=[1, 1, 2, 2], k=2, se_pairs=[0, 0, 0, 1],
                in_channels=3, stem_stride=2)
WIDTH = 0.0625          # extras: max(16, int(d * WIDTH)) for d in [512, 256, 256, 128] -> [32, 16, 16, 16]
NUM_CLASSES = 4         # background + 3
SIZE, BATCH = 64, 8     # maps 4, 2, 1, 1, 1, 1
LR, MOMENTUM, WD = 0.001, 0.9, 4e-5
STEPS = 2                # a third step: PyTorch float32 itself is 0.3 % off float64 (hard-negative mining flips)


def r7(v):
    """Nested lists of floats with 7 significant digits (the JSON stays small; float32 needs at most 9)."""
    return [r7(x) for x in v] if isinstance(v, list) else float("%.7g" % v)


def depth(d, width):
    return max(16, int(d * width))


class MobileOneSSDBackbone(tnn.Module):
    """MobileOne's stages (authors' keys) plus torchvision's SSDLite extra blocks; returns the six maps."""

    def __init__(self, net, width, norm_layer):
        super().__init__()
        for s in range(5):
            setattr(self, "stage%d" % s, getattr(net, "stage%d" % s))
        c4 = net.channels[4]
        d = [depth(v, width) for v in (512, 256, 256, 128)]
        self.extra = tnn.ModuleList([_extra_block(c4, d[0], norm_layer), _extra_block(d[0], d[1], norm_layer),
                                     _extra_block(d[1], d[2], norm_layer), _extra_block(d[2], d[3], norm_layer)])
        self.out_channels = [net.channels[3], c4] + d

    def forward(self, x):
        out = []
        x = self.stage0(x)
        for s in range(1, 5):
            x = getattr(self, "stage%d" % s)(x)
            if s >= 3:
                out.append(x)
        for blk in self.extra:
            x = blk(x)
            out.append(x)
        return {str(i): v for i, v in enumerate(out)}


@torch.no_grad()
def randomize(model, g):
    for m in model.modules():
        if isinstance(m, tnn.BatchNorm2d):
            m.weight.uniform_(0.5, 1.5, generator=g)
            m.bias.normal_(0.0, 0.1, generator=g)
            m.running_mean.normal_(0.0, 0.2, generator=g)
            m.running_var.uniform_(0.5, 2.0, generator=g)
            m.num_batches_tracked.fill_(int(torch.randint(1, 1000, (1,), generator=g)))
        elif isinstance(m, tnn.Conv2d):
            fan_in = m.weight[0].numel()
            m.weight.normal_(0.0, (2.0 / fan_in) ** 0.5, generator=g)
            if m.bias is not None:
                m.bias.normal_(0.0, 0.1, generator=g)


def rand_boxes(g, n, size, min_side=6.0):
    x1 = torch.rand(n, generator=g) * (size - min_side)
    y1 = torch.rand(n, generator=g) * (size - min_side)
    bw = min_side + torch.rand(n, generator=g) * (size - x1 - min_side)
    bh = min_side + torch.rand(n, generator=g) * (size - y1 - min_side)
    return torch.stack([x1, y1, x1 + bw, y1 + bh], 1).float()


def no_decay(name, p):
    return p.ndim <= 1


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=26)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(args.seed)

    norm_layer = partial(tnn.BatchNorm2d, eps=0.001, momentum=0.03)
    net = mo.MobileOne(**dict(BACKBONE, num_classes=1))
    backbone = MobileOneSSDBackbone(net, WIDTH, norm_layer)
    anchor_gen = DefaultBoxGenerator([[2, 3] for _ in range(6)], min_ratio=0.2, max_ratio=0.95)
    head = SSDLiteHead(backbone.out_channels, anchor_gen.num_anchors_per_location(), NUM_CLASSES, norm_layer)
    model = SSD(backbone, anchor_gen, (SIZE, SIZE), NUM_CLASSES, head=head, image_mean=[0.0] * 3,
                image_std=[1.0] * 3, score_thresh=0.001, nms_thresh=0.55, detections_per_img=300,
                topk_candidates=300)
    randomize(model, g)
    sd32 = {k: v for k, v in model.state_dict().items()}
    torch.save(sd32, os.path.join(args.out, "det.pth.tar"))

    x32 = torch.randn(BATCH, 3, SIZE, SIZE, generator=g, dtype=torch.float32)
    np.save(os.path.join(args.out, "input.npy"), np.ascontiguousarray(x32.numpy(), dtype=np.float32))
    targets, tjson = [], []
    for i in range(BATCH):
        n = [3, 1, 0, 5, 2, 1, 4, 2][i]  # image 2 has no boxes
        boxes = rand_boxes(g, n, SIZE)
        labels = torch.randint(1, NUM_CLASSES, (n,), generator=g)
        targets.append(dict(boxes=boxes.double(), labels=labels))
        tjson.append(dict(boxes=boxes.tolist(), labels=labels.tolist()))  # exact float32 values

    m64 = model.double()
    x = x32.double()

    def run(train):
        feats = list(m64.backbone(x).values())
        out = m64.head(feats)
        images = ImageList(x, [(SIZE, SIZE)] * BATCH)
        anchors = m64.anchor_generator(images, feats)
        return feats, out, anchors

    with torch.no_grad():
        m64.eval()
        feats, out, anchors = run(False)
        np.save(os.path.join(args.out, "cls_eval.npy"), out["cls_logits"].numpy().astype(np.float32))
        np.save(os.path.join(args.out, "reg_eval.npy"), out["bbox_regression"].numpy().astype(np.float32))
        dets = m64.postprocess_detections(out, anchors, [(SIZE, SIZE)] * BATCH)
        djson = [dict(boxes=r7(d["boxes"].tolist()), scores=r7(d["scores"].tolist()), labels=d["labels"].tolist())
                 for d in dets]
        fsizes = [list(f.shape[-2:]) for f in feats]
        fchannels = [f.shape[1] for f in feats]

    m64.train()
    names = [k for k, _ in m64.named_parameters()]
    decay = [p for k, p in m64.named_parameters() if not no_decay(k, p)]
    nodecay = [p for k, p in m64.named_parameters() if no_decay(k, p)]
    opt = torch.optim.SGD([{"params": decay, "weight_decay": WD}, {"params": nodecay, "weight_decay": 0.0}],
                          lr=LR, momentum=MOMENTUM)
    step_losses, grad_index, first = [], [], None
    for step in range(STEPS):
        opt.zero_grad()
        feats, out, anchors = run(True)
        matched = []
        for a, t in zip(anchors, targets):
            if t["boxes"].numel() == 0:
                matched.append(torch.full((a.size(0),), -1, dtype=torch.int64))
                continue
            matched.append(m64.proposal_matcher(box_ops.box_iou(t["boxes"], a)))
        losses = m64.compute_loss(targets, out, anchors, matched)
        loss = losses["bbox_regression"] + losses["classification"]
        loss.backward()
        step_losses.append(float(loss))
        if step == 0:
            first = dict(bbox_regression=float(losses["bbox_regression"]),
                         classification=float(losses["classification"]),
                         positives=int(sum(int((m >= 0).sum()) for m in matched)))
            np.save(os.path.join(args.out, "cls.npy"), out["cls_logits"].detach().numpy().astype(np.float32))
            np.save(os.path.join(args.out, "reg.npy"), out["bbox_regression"].detach().numpy().astype(np.float32))
            flat, off = [], 0
            for k, p in m64.named_parameters():
                gr = p.grad.detach().numpy().astype(np.float32).ravel()
                grad_index.append(dict(name=k, shape=list(p.shape), offset=off, no_decay=no_decay(k, p)))
                flat.append(gr)
                off += gr.size
            np.save(os.path.join(args.out, "grads.npy"), np.concatenate(flat).astype(np.float32))
        opt.step()

    sd = m64.state_dict()
    stats = [k for k in sd if (k.endswith("running_mean") or k.endswith("running_var")) and
             (k.startswith("head.") or k.startswith("backbone.extra.") or k.startswith("backbone.stage4."))]
    after, after_index, off = [], [], 0
    for k in names + stats:
        v = sd[k].detach().numpy().astype(np.float32).ravel()
        after_index.append(dict(name=k, shape=list(sd[k].shape), offset=off))
        after.append(v)
        off += v.size
    np.save(os.path.join(args.out, "after.npy"), np.concatenate(after).astype(np.float32))

    meta = dict(backbone=BACKBONE, width=WIDTH, num_classes=NUM_CLASSES, size=SIZE, batch=BATCH,
                feature_sizes=fsizes, feature_channels=fchannels, anchors=int(anchors[0].shape[0]),
                targets=tjson, detections=djson, first=first, step_losses=step_losses,
                lr=LR, momentum=MOMENTUM, weight_decay=WD, steps=STEPS, grads=grad_index, after=after_index,
                param_names=names, state_dict_keys=list(model.state_dict().keys()), seed=args.seed,
                torch=torch.__version__)
    with open(os.path.join(args.out, "golden.json"), "w") as f:
        json.dump(meta, f)
    print("det: maps %s, %d anchors, loss %s, positives %d, %d detections" % (
        fsizes, meta["anchors"], step_losses, first["positives"], sum(len(d["scores"]) for d in djson)))


if __name__ == "__main__":
    main()
