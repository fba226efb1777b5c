"""Train torchvision's DeepLabHead on the reference MobileOne (mobileone_ref.py) on a canvases dataset
("mobileone data canvases", VOC layout) with the Go trainer's recipe ("mobileone train --task segment"), to
compare learning curves step by step with ours (issue 25: is slow convergence the recipe or a bug?).

    /usr/bin/python3 tools/reference/seg_train_compare.py --data CANVASES --out run.csv \
        [--size 128] [--batch 8] [--lr 0.02] [--epochs 14] [--steps 400] [--threads 2] \
        [--variant s0 | --builtin-like] [--init CKPT.pth.tar] [--val 500]

Recipe (as train/segrun.go + cmd/mobileone/trainseg.go): MobileOne train-time backbone at output stride 16
(stage4 dilated, mobileone_ref's output_stride), DeepLabHead(C4, classes) (ASPP rates 12/24/36, 256 channels,
dropout 0.5), bilinear upsampling (align_corners=False), cross-entropy with ignore_index 255; SGD momentum 0.9,
weight decay 1e-4 on conv/linear weights only, peak LR --lr after a 1-epoch linear warm-up from 0 then cosine to
0 over --epochs epochs of ceil(n/batch) steps (the Go Schedule: lr(t) = peak*(t+1)/warmup during the warm-up,
then peak*0.5*(1+cos(pi*(t-warmup)/(total-warmup)))); augmentation: the long side resized to size*U(0.5, 2)
(PIL bilinear, mask nearest), flip p=0.5, random size x size crop padded with the mean colour (mask 255);
ImageNet mean/std. The data order and the augmentation draws are PyTorch's own (not the Go trainer's): the
curves compare statistically, not bit for bit. Writes one CSV row per step: step, seconds, lr, loss,
running mean loss of the epoch, pixel accuracy of the batch; at the end the val mIoU (letterboxed to --size,
scored at the image's size, as train.SegEvaluate).
"""

import argparse
import csv
import math
import os
import random
import sys
import time

import numpy as np
import torch
import torch.nn as tnn
import torch.nn.functional as F
from PIL import Image
from torchvision.models.segmentation.deeplabv3 import DeepLabHead

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mobileone_ref as mo  # noqa: E402

MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
FILL = (124, 116, 104)  # the mean colour (Go: meanFill)


class DeepLabV3(tnn.Module):
    def __init__(self, backbone, classifier):
        super().__init__()
        self.backbone, self.classifier = backbone, classifier

    def forward(self, x):
        f = self.backbone.forward_features(x)[-1]
        return F.interpolate(self.classifier(f), size=x.shape[-2:], mode="bilinear", align_corners=False)


def read_split(root, split):
    names = [l.strip() for l in open(os.path.join(root, "ImageSets", "Segmentation", split + ".txt")) if l.strip()]
    imgs = []
    for n in names:
        p = os.path.join(root, "JPEGImages", n + ".png")
        if not os.path.exists(p):
            p = os.path.join(root, "JPEGImages", n + ".jpg")
        imgs.append((p, os.path.join(root, "SegmentationClass", n + ".png")))
    return imgs


def load(pair):
    img = Image.open(pair[0]).convert("RGB")
    m = Image.open(pair[1])
    assert m.mode in ("P", "L"), m.mode
    return img, m


def augment(img, m, size, rng):
    s = rng.uniform(0.5, 2.0) * size / max(img.size)
    w, h = max(1, round(img.size[0] * s)), max(1, round(img.size[1] * s))
    img, m = img.resize((w, h), Image.BILINEAR), m.resize((w, h), Image.NEAREST)
    if rng.random() < 0.5:
        img, m = img.transpose(Image.FLIP_LEFT_RIGHT), m.transpose(Image.FLIP_LEFT_RIGHT)
    W, H = max(w, size), max(h, size)
    if (W, H) != (w, h):
        pi, pm = Image.new("RGB", (W, H), FILL), Image.new("L", (W, H), 255)
        pi.paste(img, (0, 0))
        pm.paste(Image.fromarray(np.array(m, dtype=np.uint8)), (0, 0))
        img, m = pi, pm
    x0, y0 = rng.randint(0, W - size), rng.randint(0, H - size)
    img, m = img.crop((x0, y0, x0 + size, y0 + size)), m.crop((x0, y0, x0 + size, y0 + size))
    return to_tensor(img), torch.from_numpy(np.array(m, dtype=np.int64))


def to_tensor(img):
    a = (np.asarray(img, dtype=np.float32) / 255 - MEAN) / STD
    return torch.from_numpy(a.transpose(2, 0, 1).copy())


def lr_at(t, peak, warm, total):
    if t < warm:
        return peak * (t + 1) / warm
    return peak * 0.5 * (1 + math.cos(math.pi * (t - warm) / max(1, total - warm)))


@torch.no_grad()
def evaluate(model, pairs, size, classes):
    model.eval()
    conf = np.zeros((classes, classes), dtype=np.int64)
    for p in pairs:
        img, m = load(p)
        W, H = img.size
        w, h = (size, max(1, int(H * size / W + 0.5))) if W >= H else (max(1, int(W * size / H + 0.5)), size)
        pad = Image.new("RGB", (size, size), FILL)
        pad.paste(img.resize((w, h), Image.BILINEAR), (0, 0))
        pred = model(to_tensor(pad)[None]).argmax(1)[0, :h, :w].numpy().astype(np.uint8)
        pred = np.array(Image.fromarray(pred).resize((W, H), Image.NEAREST))
        t = np.array(m, dtype=np.int64)
        keep = t != 255
        conf += np.bincount(t[keep] * classes + pred[keep], minlength=classes * classes).reshape(classes, classes)
    tp = np.diag(conf).astype(np.float64)
    union = conf.sum(0) + conf.sum(1) - tp
    present = union > 0
    return float((tp[present] / union[present]).mean()), float(tp.sum() / conf.sum())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--lr", type=float, default=0.02)
    ap.add_argument("--epochs", type=int, default=14, help="length of the LR schedule")
    ap.add_argument("--steps", type=int, default=400, help="steps actually run")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--variant", default="s0")
    ap.add_argument("--init", default="", help="a state_dict (DeepLabV3 keys) to start from")
    ap.add_argument("--val", type=int, default=500, help="val images scored at the end (0: none)")
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    rng = random.Random(a.seed)
    labels = [l.strip() for l in open(os.path.join(a.data, "labels.txt")) if l.strip()]
    train, val = read_split(a.data, "train"), read_split(a.data, "val")

    kw = mo.zoo_kwargs(a.variant, num_classes=1)
    kw["output_stride"] = 16
    backbone = mo.MobileOne(**kw)
    del backbone.linear
    model = DeepLabV3(backbone, DeepLabHead(kw["channels"][4], len(labels)))
    if a.init:
        sd = torch.load(a.init, map_location="cpu")
        missing, unexpected = model.load_state_dict(sd, strict=False)
        print("init: missing", len(missing), "unexpected", len(unexpected), file=sys.stderr)
    decay = [p for p in model.parameters() if p.ndim > 1]
    nodecay = [p for p in model.parameters() if p.ndim <= 1]
    opt = torch.optim.SGD([{"params": decay, "weight_decay": 1e-4}, {"params": nodecay, "weight_decay": 0.0}],
                          lr=a.lr, momentum=0.9)
    crit = tnn.CrossEntropyLoss(ignore_index=255)
    steps_per_epoch = math.ceil(len(train) / a.batch)
    total = a.epochs * steps_per_epoch
    f = open(a.out, "w", newline="")
    wr = csv.writer(f)
    wr.writerow(["step", "seconds", "lr", "loss", "epoch_mean_loss", "pixel_acc"])
    t0 = time.time()
    step, lsum, pix = 0, 0.0, 0
    model.train()
    while step < min(a.steps, total):
        order = list(range(len(train)))
        rng.shuffle(order)
        lsum, pix = 0.0, 0
        for b in range(steps_per_epoch):
            if step >= min(a.steps, total):
                break
            idx = order[b * len(train) // steps_per_epoch:(b + 1) * len(train) // steps_per_epoch]
            xs, ys = zip(*(augment(*load(train[i]), a.size, rng) for i in idx))
            x, y = torch.stack(xs), torch.stack(ys)
            for g in opt.param_groups:
                g["lr"] = lr_at(step, a.lr, steps_per_epoch, total)
            out = model(x)
            loss = crit(out, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            n = int((y != 255).sum())
            lsum += float(loss) * n
            pix += n
            acc = float(((out.argmax(1) == y) & (y != 255)).sum()) / max(n, 1)
            step += 1
            wr.writerow([step, "%.2f" % (time.time() - t0), "%.6f" % opt.param_groups[0]["lr"], "%.5f" % float(loss),
                         "%.5f" % (lsum / max(pix, 1)), "%.4f" % acc])
            f.flush()
            if step % 25 == 0:
                print("step %d  %.0f s  loss %.4f  epoch mean %.4f  acc %.3f" % (step, time.time() - t0, float(loss),
                                                                             lsum / max(pix, 1), acc), file=sys.stderr)
    train_s = time.time() - t0
    if a.val:
        miou, pa = evaluate(model, val[:a.val], a.size, len(labels))
        print("after %d steps (%.0f s training, %.2f img/s): val mIoU %.4f pixel acc %.4f" % (
            step, train_s, step * a.batch / train_s, miou, pa))
        wr.writerow(["val", "%.2f" % train_s, "", "", "%.5f" % miou, "%.5f" % pa])
    f.close()


if __name__ == "__main__":
    main()
