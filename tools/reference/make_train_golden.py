"""Write golden data for the Go training code (package train): one forward/backward of a tiny train-time
MobileOne in TRAIN mode with label smoothing, then a few SGD steps.

    /usr/bin/python3 tools/reference/make_train_golden.py --out train/testdata/golden [--seed N]

The model is built with mobileone_ref.py (authors' structure and key names) from random float32 weights, which
are saved as unfused.pth.tar. All golden numbers are then computed in float64 from exactly those float32
weights and the float32 input (model.double()), and stored as float32 .npy / JSON floats, so they are the exact
answer the Go float32 code approximates.

Files written to OUT:
  unfused.pth.tar      initial weights and BN buffers (float32, authors' naming)
  input.npy            float32 (N, C, H, W)
  grads.npy            float32, the gradients of every parameter after one forward/backward, concatenated in
                       state_dict order (names, shapes and offsets in golden.json)
  after.npy            float32, selected parameters and BN buffers after the SGD steps (golden.json "after")
  golden.json          config, labels, loss, per-step losses, gradient index, SGD settings
"""

import argparse
import json
import os
import sys

import numpy as np
import torch
import torch.nn as tnn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mobileone_ref as mo  # noqa: E402

CONFIG = dict(channels=[8, 8, 16, 16, 24], blocks=[1, 2, 1, 1], k=2, se_pairs=[0, 0, 1, 1],
              num_classes=10, in_channels=3, stem_stride=2)
INPUT_SHAPE = [4, 3, 32, 32]
SMOOTHING = 0.1
LR, MOMENTUM, WD, NESTEROV = 0.1, 0.9, 1e-4, False
STEPS = 3
AFTER = ["stage0.rbr_conv.0.conv.weight", "stage1.1.rbr_conv.1.conv.weight", "linear.weight", "linear.bias",
         "stage3.0.se.reduce.weight", "stage2.2.rbr_skip.weight",
         "stage0.rbr_conv.0.bn.running_mean", "stage0.rbr_conv.0.bn.running_var",
         "stage2.1.rbr_conv.1.bn.running_mean", "stage2.1.rbr_conv.1.bn.running_var",
         "stage2.3.rbr_skip.running_mean", "stage2.3.rbr_skip.running_var",
         "stage4.1.rbr_conv.0.bn.running_mean", "stage4.1.rbr_conv.0.bn.running_var"]


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
        elif isinstance(m, tnn.Linear):
            m.weight.normal_(0.0, (1.0 / m.in_features) ** 0.5, generator=g)
            m.bias.normal_(0.0, 0.1, generator=g)


def no_decay(name, p):
    """BN weight/bias and all biases: no weight decay."""
    return p.ndim <= 1


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(args.seed)

    model = mo.MobileOne(**CONFIG)
    randomize(model, g)
    torch.save(model.state_dict(), os.path.join(args.out, "unfused.pth.tar"))
    x32 = torch.randn(*INPUT_SHAPE, generator=g, dtype=torch.float32)
    labels = torch.randint(0, CONFIG["num_classes"], (INPUT_SHAPE[0],), generator=g)
    np.save(os.path.join(args.out, "input.npy"), np.ascontiguousarray(x32.numpy(), dtype=np.float32))

    m64 = model.double().train()
    x = x32.double()
    crit = tnn.CrossEntropyLoss(label_smoothing=SMOOTHING)
    names = [n for n, _ in m64.named_parameters()]
    decay = [p for n, p in m64.named_parameters() if not no_decay(n, p)]
    nodecay = [p for n, p in m64.named_parameters() if no_decay(n, p)]
    opt = torch.optim.SGD([{"params": decay, "weight_decay": WD}, {"params": nodecay, "weight_decay": 0.0}],
                          lr=LR, momentum=MOMENTUM, nesterov=NESTEROV)

    losses = []
    grad_index = []
    for step in range(STEPS):
        opt.zero_grad()
        loss = crit(m64(x), labels)
        loss.backward()
        losses.append(float(loss))
        if step == 0:
            flat, off = [], 0
            for n, p in m64.named_parameters():
                gr = p.grad.detach().numpy().astype(np.float32).ravel()
                grad_index.append(dict(name=n, shape=list(p.shape), offset=off, no_decay=no_decay(n, p)))
                flat.append(gr)
                off += gr.size
            np.save(os.path.join(args.out, "grads.npy"), np.concatenate(flat).astype(np.float32))
        opt.step()
    with torch.no_grad():
        final_loss = float(crit(m64(x), labels))  # a 4th train-mode forward (updates BN buffers once more)

    sd = m64.state_dict()
    after, after_index, off = [], [], 0
    for n in AFTER:
        v = sd[n].detach().numpy().astype(np.float32).ravel()
        after_index.append(dict(name=n, shape=list(sd[n].shape), offset=off))
        after.append(v)
        off += v.size
    np.save(os.path.join(args.out, "after.npy"), np.concatenate(after).astype(np.float32))
    nbt = int(sd["stage0.rbr_conv.0.bn.num_batches_tracked"])

    meta = dict(config=CONFIG, input_shape=INPUT_SHAPE, labels=[int(v) for v in labels], smoothing=SMOOTHING,
                lr=LR, momentum=MOMENTUM, weight_decay=WD, nesterov=NESTEROV, steps=STEPS,
                loss=losses[0], step_losses=losses, final_loss=final_loss, grads=grad_index, after=after_index,
                stage0_num_batches_tracked=nbt, param_names=names, seed=args.seed,
                torch=torch.__version__)
    with open(os.path.join(args.out, "golden.json"), "w") as f:
        json.dump(meta, f, indent=1)
    print("loss %.8f step losses %s final %.8f" % (losses[0], losses, final_loss))


if __name__ == "__main__":
    main()
