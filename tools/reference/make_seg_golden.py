"""Write golden data for the Go DeepLabV3 training code (train.SegNet): a tiny train-time MobileOne backbone,
dilated for the output stride (dilate_for_dense below: torchvision's replace_stride_with_dilation),
under torchvision 0.14's DeepLabHead structure (its ASPP class, with a small width and chosen atrous rates),
bilinear upsampling to the input size (align_corners=False), per-pixel cross-entropy with ignore_index 255;
one forward/backward in TRAIN mode, then SGD steps.

    /usr/bin/python3 tools/reference/make_seg_golden.py --case os16 --out train/testdata/seg/os16 [--seed N]

torchvision's DeepLabHead(in, classes) is ASPP(in, [12, 24, 36]) (256 channels), Conv2d(256, 256, 3, padding 1,
no bias), BatchNorm2d, ReLU, Conv2d(256, classes, 1). DeepLabHead hard-codes the width and the rates, so the
head here is the same nn.Sequential of the same torchvision modules with ASPP's out_channels and rates as
options; the script checks that its state_dict keys are exactly a real DeepLabHead's. The Dropout(0.5) after
ASPP's projection is set to p=0 (the Go test turns its dropout off): dropout masks cannot match across
frameworks. The model is torchvision's DeepLabV3 layout: `backbone.*` (the authors' unfused MobileOne keys),
`classifier.*`.

Weights are random float32 with non-trivial BatchNorm statistics (as make_train_golden.py), saved as
seg.pth.tar; the golden numbers are computed in float64 from exactly those weights (model.double()) and stored
as float32.

Files written to OUT:
  seg.pth.tar        initial state_dict (float32), DeepLabV3 key names
  input.npy          float32 (N, 3, H, W)
  mask.npy           float32 (N, H, W) class indices, 255 = ignored
  logits_eval.npy    float32 (N, classes, H, W): eval mode (running statistics), initial weights
  logits.npy         float32 (N, classes, H, W): train mode, first step (before any update)
  grads.npy          float32: the gradient of every parameter after the first forward/backward, concatenated in
                     named_parameters order (index in golden.json "grads")
  after.npy          float32: every parameter, and the running statistics listed, after STEPS SGD steps
                     (index in golden.json "after")
  golden.json        config, head options, geometry, loss, per-step losses, pixel count, SGD settings, indexes
"""

import argparse
import json
import os
import sys

import numpy as np
import torch
import torch.nn as tnn
import torch.nn.functional as F
from torchvision.models.segmentation.deeplabv3 import ASPP, DeepLabHead

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mobileone_ref as mo  # noqa: E402

BACKBONE = dict(channels=[8, 8, 12, 16, 24], blocks=[1, 1, 2, 2], k=2, se_pairs=[0, 0, 0, 1],
                in_channels=3, stem_stride=2)
# Batches of at least 3 images: with 2, the image-pooling branch's BatchNorm normalises two values to +-1, so its
# input gradient is exactly 0 in float64 but float32 rounding times a large 1/std in Go (ill-conditioned steps).
CASES = {
    # feature map 3x3 (48x40 input): rate 6 puts every tap but the centre in the padding
    "os16": dict(output_stride=16, rates=[2, 3, 6], input_shape=[4, 3, 48, 40]),
    # feature map 5x6 (40x48 input): dilated stages 3 and 4 (dilations 2 and 4)
    "os8": dict(output_stride=8, rates=[1, 2, 4], input_shape=[3, 3, 40, 48]),
}
HEAD_CHANNELS, NUM_CLASSES = 8, 3
LR, MOMENTUM, WD, NESTEROV = 0.1, 0.9, 1e-4, False
STEPS = 3
IGNORE = 255


def dense_geometry(model, output_stride):
    """The stride and dilation of every block of a dense-prediction backbone, as torchvision's ResNet
    `replace_stride_with_dilation` sets them (_make_layer(dilate=True)): output stride 32 changes nothing, 16
    dilates stage4, 8 stages 3 and 4. In a dilated stage the first block (the stride-2 3x3 depthwise one) gets
    stride 1 and the dilation the network had before the stage ("previous_dilation"); the dilation then doubles
    and every later 3x3 block of the stage (and of later stages) uses it; 1x1 blocks are unchanged.
    Returns [(name, stride, dilation)] in block order."""
    n_dilated = {32: 0, 16: 1, 8: 2}[output_stride]
    out = [("stage0", model.stage0.stride, 1)]
    dilation = 1
    for s in range(1, 5):
        dilate = s > 4 - n_dilated
        previous = dilation
        if dilate:
            dilation *= 2
        for j, blk in enumerate(getattr(model, "stage%d" % s)):
            if not dilate or blk.kernel == 1:
                out.append(("stage%d.%d" % (s, j), blk.stride, 1))
            elif j == 0:
                out.append(("stage%d.%d" % (s, j), 1, previous))
            else:
                out.append(("stage%d.%d" % (s, j), 1, dilation))
    return out


def dilate_for_dense(model, output_stride):
    """Apply dense_geometry to a train-time mobileone_ref.MobileOne in place and return it. Every branch's
    convolution of a block gets the block's stride, dilation and padding (K//2) * dilation (the 1x1 scale
    branch only the stride). The blocks keep their structure and key names: the first block of a dilated stage
    keeps no rbr_skip (it was built with stride 2, and the authors' unfused checkpoints have none there), so
    ImageNet weights load unchanged."""
    geo = dense_geometry(model, output_stride)
    blocks = dict([("stage0", model.stage0)] + [("stage%d.%d" % (s, j), b) for s in range(1, 5)
                                                for j, b in enumerate(getattr(model, "stage%d" % s))])
    for name, stride, dilation in geo:
        blk = blocks[name]
        pad = blk.kernel // 2 * dilation
        blk.stride, blk.padding = stride, pad
        for br in blk.rbr_conv:
            br.conv.stride, br.conv.dilation, br.conv.padding = (stride, stride), (dilation, dilation), (pad, pad)
        if blk.rbr_scale is not None:
            blk.rbr_scale.conv.stride = (stride, stride)
    return geo


class DeepLabV3(tnn.Module):
    """torchvision's DeepLabV3 forward (no aux classifier) on a MobileOne backbone."""

    def __init__(self, backbone, classifier):
        super().__init__()
        self.backbone = backbone
        self.classifier = classifier

    def forward(self, x):
        size = x.shape[-2:]
        f = self.backbone.forward_features(x)[-1]
        return F.interpolate(self.classifier(f), size=size, mode="bilinear", align_corners=False)


def deeplab_head(in_ch, classes, rates, channels):
    """DeepLabHead's nn.Sequential with ASPP's rates and width as options."""
    return tnn.Sequential(
        ASPP(in_ch, rates, channels),
        tnn.Conv2d(channels, channels, 3, padding=1, bias=False),
        tnn.BatchNorm2d(channels),
        tnn.ReLU(),
        tnn.Conv2d(channels, classes, 1),
    )


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


def no_decay(name, p):
    return p.ndim <= 1


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--case", required=True, choices=sorted(CASES))
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=11)
    args = ap.parse_args()
    case = CASES[args.case]
    os.makedirs(args.out, exist_ok=True)
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(args.seed)

    backbone = mo.MobileOne(**dict(BACKBONE, num_classes=1))
    del backbone.linear  # a backbone: no linear.* keys
    geometry = dilate_for_dense(backbone, case["output_stride"])
    head = deeplab_head(BACKBONE["channels"][4], NUM_CLASSES, case["rates"], HEAD_CHANNELS)
    head[0].project[3].p = 0.0  # dropout off (see the module docstring)
    model = DeepLabV3(backbone, head)
    randomize(model, g)
    # the head's keys are exactly torchvision's DeepLabHead's
    want = ["classifier." + k for k in DeepLabHead(BACKBONE["channels"][4], NUM_CLASSES).state_dict()]
    got = [k for k in model.state_dict() if k.startswith("classifier.")]
    assert got == want, (got, want)
    torch.save(model.state_dict(), os.path.join(args.out, "seg.pth.tar"))

    n, _, h, w = case["input_shape"]
    x32 = torch.randn(*case["input_shape"], generator=g, dtype=torch.float32)
    mask = torch.randint(0, NUM_CLASSES, (n, h, w), generator=g)
    mask[torch.rand(n, h, w, generator=g) < 0.15] = IGNORE   # scattered ignored pixels
    mask[0, : h // 4, : w // 3] = IGNORE                    # and a block (a VOC-like border region)
    np.save(os.path.join(args.out, "input.npy"), np.ascontiguousarray(x32.numpy(), dtype=np.float32))
    np.save(os.path.join(args.out, "mask.npy"), mask.numpy().astype(np.float32))

    m64 = model.double()
    x = x32.double()
    with torch.no_grad():
        m64.eval()
        np.save(os.path.join(args.out, "logits_eval.npy"), m64(x).numpy().astype(np.float32))
    m64.train()
    crit = tnn.CrossEntropyLoss(ignore_index=IGNORE)
    names = [k for k, _ in m64.named_parameters()]
    decay = [p for k, p in m64.named_parameters() if not no_decay(k, p)]
    nodecay = [p for k, p in m64.named_parameters() if no_decay(k, p)]
    opt = torch.optim.SGD([{"params": decay, "weight_decay": WD}, {"params": nodecay, "weight_decay": 0.0}],
                          lr=LR, momentum=MOMENTUM, nesterov=NESTEROV)
    losses, grad_index = [], []
    for step in range(STEPS):
        opt.zero_grad()
        out = m64(x)
        loss = crit(out, mask)
        loss.backward()
        losses.append(float(loss))
        if step == 0:
            np.save(os.path.join(args.out, "logits.npy"), out.detach().numpy().astype(np.float32))
            flat, off = [], 0
            for k, p in m64.named_parameters():
                gr = p.grad.detach().numpy().astype(np.float32).ravel()
                grad_index.append(dict(name=k, shape=list(p.shape), offset=off, no_decay=no_decay(k, p)))
                flat.append(gr)
                off += gr.size
            np.save(os.path.join(args.out, "grads.npy"), np.concatenate(flat).astype(np.float32))
        opt.step()

    sd = m64.state_dict()
    stats = [k for k in sd if k.endswith("running_mean") or k.endswith("running_var")]
    stats = [k for k in stats if k.startswith("classifier.") or k.startswith("backbone.stage4.")]
    after, after_index, off = [], [], 0
    for k in names + stats:
        v = sd[k].detach().numpy().astype(np.float32).ravel()
        after_index.append(dict(name=k, shape=list(sd[k].shape), offset=off))
        after.append(v)
        off += v.size
    np.save(os.path.join(args.out, "after.npy"), np.concatenate(after).astype(np.float32))

    meta = dict(case=args.case, backbone=BACKBONE, output_stride=case["output_stride"], rates=case["rates"],
                head_channels=HEAD_CHANNELS, num_classes=NUM_CLASSES, dropout=0.0,
                geometry=[dict(name=a, stride=b, dilation=c) for a, b, c in geometry],
                input_shape=case["input_shape"], ignore_index=IGNORE, pixels=int((mask != IGNORE).sum()),
                lr=LR, momentum=MOMENTUM, weight_decay=WD, nesterov=NESTEROV, steps=STEPS,
                loss=losses[0], step_losses=losses, grads=grad_index, after=after_index,
                param_names=names, state_dict_keys=list(model.state_dict().keys()),
                nbt=int(sd["classifier.2.num_batches_tracked"]), seed=args.seed, torch=torch.__version__)
    with open(os.path.join(args.out, "golden.json"), "w") as f:
        json.dump(meta, f, indent=0)
    print("%s: loss %.8f step losses %s, %d pixels" % (args.case, losses[0], losses, meta["pixels"]))


if __name__ == "__main__":
    main()
