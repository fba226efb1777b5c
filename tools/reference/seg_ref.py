"""Golden data for DeepLabV3 on a MobileOne backbone: the fused MobileOne of mobileone_ref.py (output stride 16 or 8,
dilated by its output_stride rule) under `backbone.` and torchvision 0.14's DeepLabHead (ASPP, project, 3x3 conv,
classifier) under `classifier.`, the logits upsampled to the input size (bilinear, align_corners=False) as
torchvision's DeepLabV3 does.

    /usr/bin/python3 tools/reference/seg_ref.py --out testdata/seg [--cases a,b] [--seed N] [--threads T]

Cases (OUT/<case>/):
  s0_os16    the zoo's S0, output stride 16, torchvision's DeepLabHead unchanged (rates 12, 24, 36), 21 classes,
             input (1, 3, 96, 128): a 6x8 map, so every dilated ASPP tap but the centre reads padding
  tiny_os8   a small custom MobileOne (k=2 branches, SE in stage3 and stage4), output stride 8 (dilated depthwise
             blocks of dilation 2 and 4), ASPP rates (2, 5, 13) on a 12x16 map (taps partly inside, rate 13's rows
             wholly outside), 5 classes, input (1, 3, 96, 128)

Files per case:
  state_dict.pth   torch.save(model.state_dict()) of the fused model, float32: backbone.stage0.reparam_conv.weight,
                   ..., classifier.0.convs.0.0.weight, classifier.0.convs.0.1.{weight,bias,running_mean,
                   running_var,num_batches_tracked}, ..., classifier.4.{weight,bias}
  input.npy        float32 (1, 3, 96, 128), standard normal
  logits.npy       float32 (1, classes, 96, 128): the stored float32 weights run in float64 (model.double())
  spec.json        config (model.Config's JSON fields), output_stride, rates, classes, input_shape, seed,
                   rel_diff_float32_forward_vs_float64, max_abs_diff_fused64_vs_unfused64, torch/torchvision versions

Weights: zoo.py's randomize (He-normal convs, BN gamma U(0.5, 1.5), beta N(0.5, 0.1)) and calibrate (BatchNorm
running statistics from the data of 4 calibration images and the golden one, randomised) on the train-time
(unfused) model, then the backbone re-parameterised in float64 and stored in float32.
"""

import argparse
import copy
import json
import os
import sys
import zlib

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
from torchvision.models.segmentation.deeplabv3 import ASPP, DeepLabHead

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mobileone_ref as mo  # noqa: E402
import zoo  # noqa: E402

INPUT_SHAPE = (1, 3, 96, 128)

TINY = dict(channels=[16, 16, 32, 48, 64], blocks=[1, 2, 3, 2], k=2, se_pairs=[0, 0, 1, 1], in_channels=3,
            stem_stride=2)

CASES = {
    "s0_os16": dict(backbone=mo.zoo_kwargs("s0"), name="s0", output_stride=16, rates=[12, 24, 36], classes=21),
    "tiny_os8": dict(backbone=dict(TINY), name="tiny", output_stride=8, rates=[2, 5, 13], classes=5),
}


class DeepLabV3MobileOne(nn.Module):
    def __init__(self, backbone, classes, output_stride, rates):
        super().__init__()
        kw = dict(backbone)
        kw["num_classes"] = 1
        self.backbone = mo.MobileOne(**kw, output_stride=output_stride)
        del self.backbone.gap, self.backbone.linear      # features only
        cin = self.backbone.channels[4]
        self.classifier = DeepLabHead(cin, classes)        # torchvision 0.14, unchanged ...
        if list(rates) != [12, 24, 36]:
            self.classifier[0] = ASPP(cin, list(rates))     # ... but for the rates (same keys)

    def forward(self, x):
        f = self.backbone.forward_features(x)[-1]
        y = self.classifier(f)
        return F.interpolate(y, size=x.shape[-2:], mode="bilinear", align_corners=False)


def fuse(model):
    m = copy.deepcopy(model).eval()
    for blk in m.backbone.all_blocks():
        blk.reparameterize()
    return m


def go_config(case):
    b = case["backbone"]
    return dict(name=case["name"], channels=list(b["channels"]), blocks=list(b["blocks"]), k=b["k"],
                se_pairs=list(b["se_pairs"]), num_classes=0, in_channels=b["in_channels"],
                stem_stride=b["stem_stride"])


def make(name, out, base_seed):
    case = CASES[name]
    seed = zoo.seed_for("seg_" + name, base_seed)
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    model = DeepLabV3MobileOne(case["backbone"], case["classes"], case["output_stride"], case["rates"]).eval()
    x32 = torch.randn(*INPUT_SHAPE, generator=g)
    xcal = torch.randn(4, *INPUT_SHAPE[1:], generator=g)
    zoo.randomize(model, g)
    zoo.calibrate(model, torch.cat([xcal, x32]), g)

    with torch.no_grad():
        m64 = copy.deepcopy(model).double().eval()
        y_unfused = m64(x32.double())
        f64 = fuse(m64)
        d_fuse = float((f64(x32.double()) - y_unfused).abs().max())
    assert d_fuse <= 1e-9 * max(float(y_unfused.abs().max()), 1.0), "fused/unfused mismatch %g" % d_fuse
    fused = copy.deepcopy(f64).float().eval()

    os.makedirs(out, exist_ok=True)
    sd = fused.state_dict()
    torch.save(sd, os.path.join(out, "state_dict.pth"))
    y64 = zoo.logits64(fused, x32)
    with torch.no_grad():
        y32 = fused(x32)
    zoo.save_npy(os.path.join(out, "input.npy"), x32.numpy())
    zoo.save_npy(os.path.join(out, "logits.npy"), y64.numpy())
    top = float(y64.abs().max())
    classes_present = int(torch.unique(y64.argmax(dim=1)).numel())
    spec = dict(case=name, config=go_config(case), output_stride=case["output_stride"], rates=case["rates"],
                classes=case["classes"], input_shape=list(INPUT_SHAPE), logits_shape=list(y64.shape), seed=seed,
                params=sum(p.numel() for p in fused.parameters()), keys=len(sd),
                logits_std=float(y64.std()), logits_max_abs=top, argmax_classes_present=classes_present,
                rel_diff_float32_forward_vs_float64=float((y32.double() - y64).abs().max()) / top,
                max_abs_diff_fused64_vs_unfused64=d_fuse,
                torch=torch.__version__, torchvision=torchvision.__version__)
    with open(os.path.join(out, "spec.json"), "w") as f:
        json.dump(spec, f, indent=1)
    print("%-9s %d keys, %d params, logits %s std %.3g, %d argmax classes, float32 vs float64 %.2g" % (
        name, len(sd), spec["params"], tuple(y64.shape), spec["logits_std"], classes_present,
        spec["rel_diff_float32_forward_vs_float64"]))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--cases", default=",".join(CASES))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    for name in a.cases.split(","):
        make(name, os.path.join(a.out, name), a.seed)


if __name__ == "__main__":
    main()
