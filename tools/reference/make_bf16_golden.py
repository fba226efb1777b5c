"""Write the bfloat16 golden logits of the committed golden configurations.

    /usr/bin/python3 tools/reference/make_bf16_golden.py [DIR...]   (default: testdata/golden/*)

For each DIR (written by make_golden.py) it loads fused.pth.tar into the reference MobileOne, and runs it on
input.npy the way a bfloat16 engine computes (model.BFloat16 on the Go side, graph.Graph.BF16): the weight of every
convolution and linear layer rounded to bfloat16, and the input of every such layer rounded to bfloat16 (PyTorch's
own float32 -> bfloat16 conversion, round to nearest even), the products summed and the biases added in float64;
squeeze-excitation's small layers, pooling and ReLU unrounded. Written: DIR/logits_bf16.npy (float32), and
"bf16_vs_float_max_abs_diff" in DIR/bf16.json (how far bfloat16 moves the logits: a test must see its error far below).
"""

import glob
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mobileone_ref as mo  # noqa: E402


def bf16(t):
    return t.float().bfloat16().double()


def bf16_model(model):
    """Round weights and inputs of every Conv2d (outside SE) and Linear to bfloat16, in place."""
    se_convs = set()
    for m in model.modules():
        if isinstance(m, mo.SEBlock):
            se_convs.update([m.reduce, m.expand])
    n = 0
    for m in model.modules():
        if (isinstance(m, torch.nn.Conv2d) and m not in se_convs) or isinstance(m, torch.nn.Linear):
            with torch.no_grad():
                m.weight.copy_(bf16(m.weight))
            m.register_forward_pre_hook(lambda mod, inp: (bf16(inp[0]),))
            n += 1
    return n


def main(dirs):
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
    if not dirs:
        dirs = sorted(glob.glob(os.path.join(root, "testdata", "golden", "*")))
    for d in dirs:
        cfg = json.load(open(os.path.join(d, "config.json")))
        kw = {k: cfg[k] for k in ("channels", "blocks", "k", "se_pairs", "num_classes", "in_channels", "stem_stride")}
        model = mo.reparameterize_model(mo.MobileOne(**kw))
        model.load_state_dict(torch.load(os.path.join(d, "fused.pth.tar")))
        model = model.double().eval()
        x = torch.from_numpy(np.load(os.path.join(d, "input.npy"))).double()
        with torch.no_grad():
            ref = model(x)
            layers = bf16_model(model)
            y = model(x)
        diff = float((y - ref).abs().max())
        np.save(os.path.join(d, "logits_bf16.npy"), np.ascontiguousarray(y.numpy(), dtype=np.float32))
        json.dump({"rounded_layers": layers, "bf16_vs_float_max_abs_diff": diff, "logits_max_abs": float(ref.abs().max()),
                   "torch_version": torch.__version__}, open(os.path.join(d, "bf16.json"), "w"), indent=2)
        print("%s: %d layers rounded, bf16 moves the logits by %.3g (max |logit| %.3g)" % (
            os.path.basename(d), layers, diff, float(ref.abs().max())))


if __name__ == "__main__":
    main(sys.argv[1:])
