"""The paper's study networks (MobileOne, Vasu et al. 2023, Tables 2 and 3b) and small golden cases of every
operator the comparison zoo and the study need.

    /usr/bin/python3 tools/reference/study.py --out testdata/study [--variants a,b] [--seed N] [--threads T]
    /usr/bin/python3 tools/reference/study.py --ops testdata/ops

THE 30-LAYER CNN (the paper does not specify it; this is our definition). Every conv is bias-free and followed by
BatchNorm (eps 1e-5) and the variant's activation; a block is a depthwise 3x3 (pad 1, stride s) conv + BN + act
then a pointwise 1x1 conv + BN + act (MobileNetV1-like widths). Sizes are for a 224x224 input.

    layer        block  type                  in -> out     stride  out size
    1            stem   conv3x3               3 -> 32       2       112
    2, 3         0      dw3x3, pw1x1          32 -> 64      1       112
    4, 5         1      dw3x3, pw1x1          64 -> 128     2       56
    6, 7         2      dw3x3, pw1x1          128 -> 128    1       56     skip
    8, 9         3      dw3x3, pw1x1          128 -> 256    2       28
    10, 11       4      dw3x3, pw1x1          256 -> 256    1       28     skip
    12, 13       5      dw3x3, pw1x1          256 -> 512    2       14
    14 .. 23     6..10  dw3x3, pw1x1 (x5)     512 -> 512    1       14     skip
    24, 25       11     dw3x3, pw1x1          512 -> 1024   2       7
    26, 27       12     dw3x3, pw1x1          1024 -> 1024  1       7      skip
    28, 29       13     dw3x3, pw1x1          1024 -> 1024  1       7      skip
    -            head   global average pool   1024          -       1
    30           head   linear                1024 -> 1000

("skip": the blocks whose input and output shapes match, where the `skip` variants add an identity shortcut.)

Variants (directory names):
  activation study (every activation of the net, stem included, is the variant's; no skips):
    relu        max(x, 0)
    gelu        x * Phi(x), the exact erf form (F.gelu, approximate='none')
    se_relu     ReLU, plus a squeeze-excitation after each block's pointwise BN (before its ReLU):
                x * sigmoid(expand(relu(reduce(mean_hw(x))))), reduce/expand 1x1 convs with bias, hidden C // 4
    hardswish   x * relu6(x + 3) / 6
    dyshiftmax  Dynamic Shift-Max (MicroNet, Li et al. 2021): G = 2 channel groups, J = 2 shifted terms, K = 2,
                y_i = max_k sum_j a[k,j,i](x) * x[(i + j*C/G) mod C]; a = init + lambda * (2 * hardsigmoid(h) - 1),
                h = fc2(relu(fc1(mean_hw(x)))), fc1: C -> C//4, fc2: C//4 -> K*J*C (viewed (K, J, C)),
                lambda = 1, init[k][j] = [[1, 0], [0, 0]] (so Delta = 0 gives max(x_i, 0), the ReLU)
    dyrelu_a    Dynamic ReLU A (Chen et al. 2020), coefficients shared by all channels and positions:
                y = max_k (a_k x + b_k), theta = 2 * sigmoid(fc2(relu(fc1(mean_hw(x))))) - 1, fc1: C -> C//4,
                fc2: C//4 -> 2K, a_k = alpha_k + lambda_a * theta[k], b_k = beta_k + lambda_b * theta[K + k]
    dyrelu_b    Dynamic ReLU B: the same with per-channel coefficients, fc2: C//4 -> 2K*C viewed (C, 2K):
                a_k,c = alpha_k + lambda_a * theta[c, k], b_k,c = beta_k + lambda_b * theta[c, K + k]
                DyReLU constants (the paper's): K = 2, alpha = (1, 0), beta = (0, 0), lambda_a = 1.0,
                lambda_b = 0.5 (so theta = 0 gives max(x, 0), the ReLU)
  block study (ReLU everywhere):
    plain       the table above
    skip        + identity shortcut on the blocks marked "skip": y = relu(BN(pw(.)) + x)
    se          + the SE above after each block's pointwise BN (the same network as se_relu)
    skip_se     both: y = relu(SE(BN(pw(.))) + x)

state_dict keys: stem.{conv,bn}, stem.act.{fc1,fc2} (dynamic activations only), blocks.{i}.dw.{conv,bn,act},
blocks.{i}.pw.{conv,bn,act}, blocks.{i}.se.{reduce,expand} (SE variants), fc.{weight,bias}.

Files per variant, in OUT/<variant>/: state_dict.pth, input.npy float32 (2, 3, 64, 64), logits.npy float32
(2, 1000; computed in float64 from the saved float32 weights), spec.json (params, macs_224, macs_64, layers,
definition). The MAC rules are zoo.py's.

--ops DIR writes DIR/<case>/ for every operator case (see OP_CASES and README.md): input.npy [input2.npy],
weight files, output.npy (float64 computation of the float32 files, stored float32) and params.json.
"""

import argparse
import copy
import json
import math
import os
import shutil
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import zoo  # noqa: E402
import zoo_ref  # noqa: E402

INPUT_SHAPE = (2, 3, 64, 64)
STEM = 32
# (output channels, depthwise stride) of the 14 blocks
BLOCKS = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2)] + [(512, 1)] * 5 + \
         [(1024, 2), (1024, 1), (1024, 1)]
ACT_VARIANTS = ["relu", "gelu", "se_relu", "hardswish", "dyshiftmax", "dyrelu_a", "dyrelu_b"]
BLOCK_VARIANTS = ["plain", "skip", "se", "skip_se"]
VARIANTS = ACT_VARIANTS + BLOCK_VARIANTS

SE_REDUCTION = 4
DY_REDUCTION = 4
DYRELU_K = 2
DYRELU_ALPHA = (1.0, 0.0)
DYRELU_BETA = (0.0, 0.0)
DYRELU_LAMBDA_A = 1.0
DYRELU_LAMBDA_B = 0.5
DSM_G, DSM_J, DSM_K = 2, 2, 2
DSM_LAMBDA = 1.0
DSM_INIT = ((1.0, 0.0), (0.0, 0.0))   # [k][j]


# ---------------------------------------------------------------------------------------------
# functional definitions (used by the modules and by the operator golden cases)
# ---------------------------------------------------------------------------------------------
def linear(w, b):
    return lambda t: F.linear(t, w, b)


def conv1x1(w, b):
    return lambda t: F.conv2d(t, w, b)


def hyper(x, fc1, fc2):
    """fc2(relu(fc1(mean_hw(x)))): x (B, C, H, W) -> (B, out of fc2). fc1, fc2: Linear modules or linear(w, b)
    (PyTorch layout (out, in)); modules are called so that the MAC-counting hooks see them."""
    return fc2(F.relu(fc1(x.mean(dim=(2, 3)))))


def dyrelu(x, fc1, fc2, mode, K=DYRELU_K, alpha=DYRELU_ALPHA, beta=DYRELU_BETA,
           lambda_a=DYRELU_LAMBDA_A, lambda_b=DYRELU_LAMBDA_B):
    B, C = x.shape[:2]
    theta = 2.0 * torch.sigmoid(hyper(x, fc1, fc2)) - 1.0
    al = torch.tensor(alpha, dtype=x.dtype)
    be = torch.tensor(beta, dtype=x.dtype)
    if mode == "a":                                   # theta (B, 2K)
        a = al + lambda_a * theta[:, :K]              # (B, K)
        b = be + lambda_b * theta[:, K:]
        a, b = a.reshape(B, K, 1, 1, 1), b.reshape(B, K, 1, 1, 1)
    else:                                             # theta (B, C*2K) viewed (B, C, 2K)
        t = theta.reshape(B, C, 2 * K)
        a = (al + lambda_a * t[:, :, :K]).permute(0, 2, 1)     # (B, K, C)
        b = (be + lambda_b * t[:, :, K:]).permute(0, 2, 1)
        a, b = a.reshape(B, K, C, 1, 1), b.reshape(B, K, C, 1, 1)
    return (a * x.unsqueeze(1) + b).max(dim=1).values


def dyshiftmax(x, fc1, fc2, G=DSM_G, J=DSM_J, K=DSM_K, lam=DSM_LAMBDA, init=DSM_INIT):
    B, C = x.shape[:2]
    assert C % G == 0
    delta = lam * (2.0 * F.hardsigmoid(hyper(x, fc1, fc2)) - 1.0)
    a = delta.reshape(B, K, J, C) + torch.tensor(init, dtype=x.dtype).reshape(1, K, J, 1)
    # shifted[j][:, i] = x[:, (i + j*C/G) mod C]
    shifted = torch.stack([torch.roll(x, shifts=-j * (C // G), dims=1) for j in range(J)], dim=1)  # (B,J,C,H,W)
    terms = (a.reshape(B, K, J, C, 1, 1) * shifted.unsqueeze(1)).sum(dim=2)                       # (B,K,C,H,W)
    return terms.max(dim=1).values


def se(x, reduce, expand, gate="sigmoid"):
    """x * gate(expand(relu(reduce(mean_hw(x))))); reduce, expand: 1x1 Conv2d modules or conv1x1(w, b) with
    weights (out, in, 1, 1)."""
    s = expand(F.relu(reduce(x.mean(dim=(2, 3), keepdim=True))))
    return x * (torch.sigmoid(s) if gate == "sigmoid" else F.hardsigmoid(s))


def mhsa(x, qkv_w, qkv_b, proj_w, proj_b, heads):
    """Multi-head self-attention on x (B, N, C), as zoo_ref.Attention."""
    B, N, C = x.shape
    hd = C // heads
    qkv = F.linear(x, qkv_w, qkv_b).reshape(B, N, 3, heads, hd).permute(2, 0, 3, 1, 4)
    att = torch.softmax(qkv[0] @ qkv[1].transpose(-2, -1) * hd ** -0.5, dim=-1)
    return F.linear((att @ qkv[2]).transpose(1, 2).reshape(B, N, C), proj_w, proj_b)


def channel_shuffle(x, groups):
    B, C, H, W = x.shape
    return x.reshape(B, groups, C // groups, H, W).transpose(1, 2).reshape(B, C, H, W)


# ---------------------------------------------------------------------------------------------
# modules
# ---------------------------------------------------------------------------------------------
class DyReLU(nn.Module):
    def __init__(self, C, mode):
        super().__init__()
        self.mode = mode
        self.fc1 = nn.Linear(C, C // DY_REDUCTION)
        self.fc2 = nn.Linear(C // DY_REDUCTION, 2 * DYRELU_K * (C if mode == "b" else 1))

    def forward(self, x):
        return dyrelu(x, self.fc1, self.fc2, self.mode)


class DyShiftMax(nn.Module):
    def __init__(self, C):
        super().__init__()
        self.fc1 = nn.Linear(C, C // DY_REDUCTION)
        self.fc2 = nn.Linear(C // DY_REDUCTION, DSM_K * DSM_J * C)

    def forward(self, x):
        return dyshiftmax(x, self.fc1, self.fc2)


class SE(nn.Module):
    def __init__(self, C):
        super().__init__()
        self.reduce = nn.Conv2d(C, C // SE_REDUCTION, 1, bias=True)
        self.expand = nn.Conv2d(C // SE_REDUCTION, C, 1, bias=True)

    def forward(self, x):
        return se(x, self.reduce, self.expand)


def make_act(kind, C):
    if kind == "relu":
        return nn.ReLU()
    if kind == "gelu":
        return nn.GELU()
    if kind == "hardswish":
        return nn.Hardswish()
    if kind == "dyshiftmax":
        return DyShiftMax(C)
    if kind in ("dyrelu_a", "dyrelu_b"):
        return DyReLU(C, kind[-1])
    raise KeyError(kind)


class ConvBNAct(nn.Module):
    def __init__(self, cin, cout, k, stride, groups, act):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(cout)
        self.act = act


class Block(nn.Module):
    def __init__(self, cin, cout, stride, act, use_se, use_skip):
        super().__init__()
        self.dw = ConvBNAct(cin, cin, 3, stride, cin, make_act(act, cin))
        self.pw = ConvBNAct(cin, cout, 1, 1, 1, make_act(act, cout))
        self.se = SE(cout) if use_se else None
        self.skip = use_skip and cin == cout and stride == 1

    def forward(self, x):
        y = self.dw.act(self.dw.bn(self.dw.conv(x)))
        y = self.pw.bn(self.pw.conv(y))
        if self.se is not None:
            y = self.se(y)
        if self.skip:
            y = y + x
        return self.pw.act(y)


def variant_config(v):
    act = v if v in ("relu", "gelu", "hardswish", "dyshiftmax", "dyrelu_a", "dyrelu_b") else "relu"
    return dict(act=act, se=v in ("se_relu", "se", "skip_se"), skip=v in ("skip", "skip_se"))


class StudyNet(nn.Module):
    def __init__(self, variant, num_classes=1000):
        super().__init__()
        cfg = variant_config(variant)
        self.stem = ConvBNAct(3, STEM, 3, 2, 1, make_act(cfg["act"], STEM))
        cin, blocks = STEM, []
        for cout, s in BLOCKS:
            blocks.append(Block(cin, cout, s, cfg["act"], cfg["se"], cfg["skip"]))
            cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x):
        x = self.stem.act(self.stem.bn(self.stem.conv(x)))
        x = self.blocks(x)
        return self.fc(x.mean(dim=(2, 3)))


def layer_table(variant, side=224):
    cfg = variant_config(variant)
    rows, n, hw = [], 1, (side + 1) // 2
    rows.append(dict(layer=n, name="stem.conv", type="conv3x3", cin=3, cout=STEM, stride=2, groups=1, out_hw=hw))
    cin = STEM
    for i, (cout, s) in enumerate(BLOCKS):
        hw = (hw + 2 - 3) // s + 1
        skip = cfg["skip"] and cin == cout and s == 1
        rows.append(dict(layer=n + 1, name="blocks.%d.dw.conv" % i, type="dw3x3", cin=cin, cout=cin, stride=s,
                         groups=cin, out_hw=hw))
        rows.append(dict(layer=n + 2, name="blocks.%d.pw.conv" % i, type="pw1x1", cin=cin, cout=cout, stride=1,
                         groups=1, out_hw=hw, se=cfg["se"], skip=skip))
        n += 2
        cin = cout
    rows.append(dict(layer=None, name="global average pool", type="avgpool", cin=cin, cout=cin, out_hw=1))
    rows.append(dict(layer=n + 1, name="fc", type="linear", cin=cin, cout=1000))
    return rows


VARIANT_TEXT = {
    "relu": "ReLU after every BN",
    "gelu": "GELU (exact erf) after every BN",
    "se_relu": "ReLU after every BN; SE (hidden C//4, ReLU inner, sigmoid gate) after each block's pointwise BN, "
               "before its ReLU",
    "hardswish": "Hard-Swish after every BN",
    "dyshiftmax": "Dynamic Shift-Max (G=2, J=2, K=2, hardsigmoid coefficients, lambda 1, init [[1,0],[0,0]], "
                  "hidden C//4) after every BN",
    "dyrelu_a": "DyReLU-A (K=2, shared coefficients, alpha (1,0), beta (0,0), lambda_a 1.0, lambda_b 0.5, "
                "hidden C//4) after every BN",
    "dyrelu_b": "DyReLU-B (K=2, per-channel coefficients viewed (C, 2K), alpha (1,0), beta (0,0), lambda_a 1.0, "
                "lambda_b 0.5, hidden C//4) after every BN",
    "plain": "ReLU, no skip, no SE (= relu)",
    "skip": "ReLU; identity shortcut y = relu(BN(pw) + x) on blocks 2, 4, 6-10, 12, 13",
    "se": "ReLU; SE after each block's pointwise BN (= se_relu)",
    "skip_se": "ReLU; y = relu(SE(BN(pw)) + x) on the skip blocks, relu(SE(BN(pw))) elsewhere",
}


def make_variant(variant, out, base_seed):
    t0 = time.time()
    seed = zoo.seed_for("study/" + variant, base_seed)
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    model = StudyNet(variant).eval()
    x32 = torch.randn(*INPUT_SHAPE, generator=g)
    xcal = torch.randn(4, *INPUT_SHAPE[1:], generator=g)
    zoo.randomize(model, g)
    zoo.calibrate(model, torch.cat([xcal, x32]), g)   # BN statistics of the calibration and golden images
    zoo.calibrate_head(model, xcal, x32, g)
    os.makedirs(out, exist_ok=True)
    sd = model.state_dict()
    torch.save(sd, os.path.join(out, "state_dict.pth"))
    y64 = zoo.logits64(model, x32)
    with torch.no_grad():
        d32 = float((model(x32).double() - y64).abs().max())
    zoo.save_npy(os.path.join(out, "input.npy"), x32.numpy())
    zoo.save_npy(os.path.join(out, "logits.npy"), y64.numpy())
    spec = dict(name=variant, params=zoo_ref.count_params(model), macs_224=zoo.count_macs(model, 224),
                macs_64=zoo.count_macs(model, 64), definition=VARIANT_TEXT[variant],
                config=variant_config(variant), layers=layer_table(variant),
                constants=dict(se_hidden="C // %d" % SE_REDUCTION, dy_hidden="C // %d" % DY_REDUCTION,
                               dyrelu=dict(K=DYRELU_K, alpha=DYRELU_ALPHA, beta=DYRELU_BETA,
                                           lambda_a=DYRELU_LAMBDA_A, lambda_b=DYRELU_LAMBDA_B),
                               dyshiftmax=dict(G=DSM_G, J=DSM_J, K=DSM_K, lam=DSM_LAMBDA, init=DSM_INIT),
                               bn_eps=1e-5),
                source="tools/reference/study.py (our definition of the MobileOne paper's 30-layer CNN)",
                input_shape=list(INPUT_SHAPE), logits_shape=list(y64.shape), seed=seed,
                logits_std=float(y64.std()), logits_max_abs=float(y64.abs().max()),
                max_abs_diff_float32_forward_vs_float64=d32,
                rel_diff_float32_forward_vs_float64=d32 / float(y64.abs().max()),
                torch_version=torch.__version__)
    with open(os.path.join(out, "spec.json"), "w") as fh:
        json.dump(spec, fh, indent=2)
        fh.write("\n")
    print("%-11s params %9d  MACs@224 %11d  logits std %.2f argmax %s  f32-vs-f64 rel %.1e  %.1fs" % (
        variant, spec["params"], spec["macs_224"], spec["logits_std"], y64.argmax(1).tolist(),
        spec["rel_diff_float32_forward_vs_float64"], time.time() - t0), flush=True)
    return spec


# =============================================================================================
# operator golden cases
# =============================================================================================
class Case:
    def __init__(self, root, name, g):
        self.dir = os.path.join(root, name)
        self.name, self.g = name, g
        self.params = dict(case=name, inputs=[], weights={}, attrs={})
        shutil.rmtree(self.dir, ignore_errors=True)
        os.makedirs(self.dir)

    def randn(self, *shape, scale=1.0):
        return (torch.randn(*shape, generator=self.g) * scale).float()

    def input(self, t, layout, file="input.npy"):
        zoo.save_npy(os.path.join(self.dir, file), t.numpy())
        self.params["inputs"].append(dict(file=file, shape=list(t.shape), layout=layout))
        return t.double()

    def weight(self, name, t, layout):
        file = name + ".npy"
        zoo.save_npy(os.path.join(self.dir, file), t.numpy())
        self.params["weights"][name] = dict(file=file, shape=list(t.shape), layout=layout)
        return t.double()

    def finish(self, op, y, attrs, formula, torch_call, layout="NCHW"):
        zoo.save_npy(os.path.join(self.dir, "output.npy"), y.numpy())
        self.params.update(op=op, output=dict(file="output.npy", shape=list(y.shape), layout=layout),
                           formula=formula, torch=torch_call)
        self.params["attrs"].update(attrs)
        with open(os.path.join(self.dir, "params.json"), "w") as fh:
            json.dump(self.params, fh, indent=2)
            fh.write("\n")


def _pair(v):
    return list(v) if isinstance(v, (tuple, list)) else [v, v]


CONV_CASES = [
    # name, input shape, Cout, kernel, stride, padding, dilation, groups, bias
    ("conv_k1_s1", (2, 8, 7, 9), 12, 1, 1, 0, 1, 1, True),
    ("conv_k3_s2_p1", (2, 6, 11, 10), 8, 3, 2, 1, 1, 1, False),
    ("conv_k3_s1_p2_d2_g4", (1, 8, 9, 9), 12, 3, 1, 2, 2, 4, True),
    ("conv_k5_s2_p2_dw", (2, 8, 13, 12), 8, 5, 2, 2, 1, 8, True),
    ("conv_k3_s2_p2_d2_dw", (1, 6, 10, 11), 6, 3, 2, 2, 2, 6, False),
    ("conv_k5_s1_p0", (1, 4, 9, 8), 6, 5, 1, 0, 1, 1, True),
    ("conv_k3_asym", (1, 4, 8, 9), 6, 3, (2, 1), (0, 1), (1, 2), 1, True),
    ("conv_k3_s1_p1_dw_mult2", (1, 4, 6, 6), 8, 3, 1, 1, 1, 4, False),
]

ELEMENTWISE = {
    "relu6": ("min(max(x, 0), 6)", "F.relu6(x)", F.relu6),
    "hardswish": ("x * relu6(x + 3) / 6", "F.hardswish(x)", F.hardswish),
    "hardsigmoid": ("relu6(x + 3) / 6", "F.hardsigmoid(x)", F.hardsigmoid),
    "silu": ("x * sigmoid(x)", "F.silu(x)", F.silu),
    "gelu": ("x * 0.5 * (1 + erf(x / sqrt(2)))  (exact, not the tanh approximation)", "F.gelu(x)", F.gelu),
    "sigmoid": ("1 / (1 + exp(-x))", "torch.sigmoid(x)", torch.sigmoid),
}


def make_ops(root, seed=0):
    t0 = time.time()
    g = torch.Generator().manual_seed(seed)
    os.makedirs(root, exist_ok=True)
    names = []

    def case(name):
        names.append(name)
        return Case(root, name, g)

    # ---- convolution ----------------------------------------------------------------------
    for name, shp, cout, k, s, p, d, gr, bias in CONV_CASES:
        c = case(name)
        x = c.input(c.randn(*shp), "NCHW")
        w = c.weight("weight", c.randn(cout, shp[1] // gr, k, k, scale=(1.0 / (shp[1] // gr * k * k)) ** 0.5),
                     "(Cout, Cin/groups, kH, kW); output channel o uses input channels "
                     "[(o // (Cout/groups)) * Cin/groups, +Cin/groups)")
        b = c.weight("bias", c.randn(cout, scale=0.1), "(Cout,)") if bias else None
        y = F.conv2d(x, w, b, stride=s, padding=p, dilation=d, groups=gr)
        c.finish("conv2d", y, dict(kernel=[k, k], stride=_pair(s), padding=_pair(p), dilation=_pair(d), groups=gr,
                                   bias=bias),
                 "y[n,o,i,j] = bias[o] + sum_{c,u,v} w[o,c,u,v] * x[n, g*Cin/groups + c, i*sH - pH + u*dH, "
                 "j*sW - pW + v*dW] (zero outside the input); padding is symmetric: [pH, pW] on both sides",
                 "F.conv2d(x, weight, bias, stride, padding, dilation, groups)")

    # ---- element-wise activations -----------------------------------------------------------
    for name, (formula, call, fn) in ELEMENTWISE.items():
        c = case(name)
        v = torch.cat([torch.linspace(-8, 8, 33), torch.tensor([-3.0, 3.0, 0.0, 6.0, -1e-3, 1e-3, -20.0, 20.0]),
                       torch.randn(2 * 4 * 5 * 6 - 41, generator=g) * 3.0]).float()
        x = c.input(v.reshape(2, 4, 5, 6), "NCHW (any shape; element-wise)")
        c.finish(name, fn(x), {}, formula, call)

    # ---- dynamic activations ----------------------------------------------------------------
    for mode in ("a", "b"):
        c = case("dyrelu_" + mode)
        C, K = 8, DYRELU_K
        x = c.input(c.randn(2, C, 5, 5, scale=1.5), "NCHW")
        w1 = c.weight("fc1_weight", c.randn(C // 4, C, scale=C ** -0.5), "(C//4, C) PyTorch Linear (out, in)")
        b1 = c.weight("fc1_bias", c.randn(C // 4, scale=0.1), "(C//4,)")
        n2 = 2 * K * (C if mode == "b" else 1)
        w2 = c.weight("fc2_weight", c.randn(n2, C // 4, scale=(C // 4) ** -0.5),
                      "(%s, C//4); output index %s" % ("2K" if mode == "a" else "2K*C",
                                                       "k: a_k for k < K, b_(k-K) for k >= K" if mode == "a" else
                                                       "c*2K + k: a_k,c for k < K, b_(k-K),c for k >= K"))
        b2 = c.weight("fc2_bias", c.randn(n2, scale=0.1), "(%s,)" % ("2K" if mode == "a" else "2K*C"))
        y = dyrelu(x, linear(w1, b1), linear(w2, b2), mode)
        c.finish("dyrelu_" + mode, y, dict(K=K, alpha=list(DYRELU_ALPHA), beta=list(DYRELU_BETA),
                                           lambda_a=DYRELU_LAMBDA_A, lambda_b=DYRELU_LAMBDA_B, reduction=4),
                 "theta = 2*sigmoid(fc2(relu(fc1(mean_hw(x))))) - 1; " +
                 ("a_k = alpha_k + lambda_a*theta[k], b_k = beta_k + lambda_b*theta[K+k]; y = max_k(a_k*x + b_k)"
                  if mode == "a" else
                  "a_k,c = alpha_k + lambda_a*theta[c*2K+k], b_k,c = beta_k + lambda_b*theta[c*2K+K+k]; "
                  "y[:,c] = max_k(a_k,c*x[:,c] + b_k,c)"),
                 "study.dyrelu(x, fc1_weight, fc1_bias, fc2_weight, fc2_bias, mode=%r)" % mode)

    c = case("dyshiftmax")
    C = 8
    x = c.input(c.randn(2, C, 5, 5, scale=1.5), "NCHW")
    w1 = c.weight("fc1_weight", c.randn(C // 4, C, scale=C ** -0.5), "(C//4, C) PyTorch Linear (out, in)")
    b1 = c.weight("fc1_bias", c.randn(C // 4, scale=0.1), "(C//4,)")
    w2 = c.weight("fc2_weight", c.randn(DSM_K * DSM_J * C, C // 4, scale=(C // 4) ** -0.5),
                  "(K*J*C, C//4); output index (k*J + j)*C + i is the coefficient a[k][j][i] before scaling")
    b2 = c.weight("fc2_bias", c.randn(DSM_K * DSM_J * C, scale=0.1), "(K*J*C,)")
    c.finish("dyshiftmax", dyshiftmax(x, linear(w1, b1), linear(w2, b2)),
             dict(G=DSM_G, J=DSM_J, K=DSM_K, lam=DSM_LAMBDA, init=[list(r) for r in DSM_INIT], reduction=4),
             "h = fc2(relu(fc1(mean_hw(x)))); a[k][j][i] = init[k][j] + lam*(2*hardsigmoid(h[(k*J+j)*C+i]) - 1); "
             "y[:,i] = max_k sum_j a[k][j][i] * x[:, (i + j*C/G) mod C]",
             "study.dyshiftmax(x, fc1_weight, fc1_bias, fc2_weight, fc2_bias)")

    # ---- channel shuffle, concat ------------------------------------------------------------
    c = case("channel_shuffle")
    x = c.input(c.randn(2, 8, 3, 4), "NCHW")
    c.finish("channel_shuffle", channel_shuffle(x, 2), dict(groups=2),
             "y[:, j*groups + gi] = x[:, gi*(C/groups) + j] (torchvision ShuffleNetV2: view (B, groups, C/groups, "
             "H, W), transpose 1 and 2, flatten)", "x.view(B, 2, C//2, H, W).transpose(1, 2).reshape(B, C, H, W)")

    c = case("concat")
    x1 = c.input(c.randn(2, 3, 4, 5), "NCHW", "input.npy")
    x2 = c.input(c.randn(2, 5, 4, 5), "NCHW", "input2.npy")
    c.finish("concat", torch.cat([x1, x2], dim=1), dict(axis=1), "channels of input then input2",
             "torch.cat([input, input2], dim=1)")

    # ---- squeeze-excitation ----------------------------------------------------------------
    for gate in ("sigmoid", "hardsigmoid"):
        c = case("se_" + gate)
        C, R = 8, 4
        x = c.input(c.randn(2, C, 5, 6), "NCHW")
        w1 = c.weight("reduce_weight", c.randn(R, C, 1, 1, scale=C ** -0.5), "(R, C, 1, 1) 1x1 conv")
        b1 = c.weight("reduce_bias", c.randn(R, scale=0.1), "(R,)")
        w2 = c.weight("expand_weight", c.randn(C, R, 1, 1, scale=R ** -0.5), "(C, R, 1, 1) 1x1 conv")
        b2 = c.weight("expand_bias", c.randn(C, scale=0.1), "(C,)")
        c.finish("se", se(x, conv1x1(w1, b1), conv1x1(w2, b2), gate), dict(gate=gate, inner="relu"),
                 "x * %s(expand(relu(reduce(mean_hw(x)))))" % gate,
                 "x * %s(F.conv2d(F.relu(F.conv2d(x.mean((2,3), keepdim=True), rw, rb)), ew, eb))" %
                 ("torch.sigmoid" if gate == "sigmoid" else "F.hardsigmoid"))

    # ---- pooling ----------------------------------------------------------------------------
    for name, fn, attrs, call in [
        ("avgpool_k3_s2_p1", lambda x: F.avg_pool2d(x, 3, 2, 1), dict(count_include_pad=True),
         "F.avg_pool2d(x, 3, 2, 1)  (count_include_pad=True: always divides by 9)"),
        ("avgpool_k3_s2_p1_exclude_pad", lambda x: F.avg_pool2d(x, 3, 2, 1, count_include_pad=False),
         dict(count_include_pad=False), "F.avg_pool2d(x, 3, 2, 1, count_include_pad=False)  (divides by the "
                                        "number of window cells inside the input)"),
        ("maxpool_k3_s2_p1", lambda x: F.max_pool2d(x, 3, 2, 1), {},
         "F.max_pool2d(x, 3, 2, 1)  (padding is -inf)"),
    ]:
        c = case(name)
        x = c.input(c.randn(2, 4, 9, 8), "NCHW")
        c.finish(name.split("_")[0], fn(x), dict(kernel=[3, 3], stride=[2, 2], padding=[1, 1], ceil_mode=False,
                                                  **attrs),
                 "out size floor((H + 2p - k) / s) + 1", call)

    c = case("global_avgpool")
    x = c.input(c.randn(2, 6, 5, 7), "NCHW")
    c.finish("global_avgpool", x.mean(dim=(2, 3), keepdim=True), {}, "mean over H, W; output (N, C, 1, 1)",
             "F.adaptive_avg_pool2d(x, 1)")

    # ---- resize -----------------------------------------------------------------------------
    for name, shp, kw, attrs in [
        ("bilinear_scale2", (1, 3, 5, 6), dict(scale_factor=2), dict(scale_factor=[2, 2])),
        ("bilinear_to_8x8", (1, 3, 7, 7), dict(size=(8, 8)), dict(size=[8, 8])),
        ("bilinear_to_7x7", (1, 3, 8, 8), dict(size=(7, 7)), dict(size=[7, 7])),
        ("bilinear_to_9x5", (2, 2, 5, 6), dict(size=(9, 5)), dict(size=[9, 5])),
    ]:
        c = case(name)
        x = c.input(c.randn(*shp), "NCHW")
        y = F.interpolate(x, mode="bilinear", align_corners=False, **kw)
        c.finish("resize", y, dict(mode="bilinear", align_corners=False, antialias=False, **attrs),
                 "half-pixel: src = (dst + 0.5) * in/out - 0.5, clamped below at 0; linear weights between "
                 "floor(src) and floor(src)+1 (the last index repeats at the edge)",
                 "F.interpolate(x, %s, mode='bilinear', align_corners=False)" %
                 ", ".join("%s=%r" % kv for kv in kw.items()))
    for name, shp, kw, attrs in [
        ("nearest_scale2", (1, 3, 4, 5), dict(scale_factor=2), dict(scale_factor=[2, 2])),
        ("nearest_to_7x9", (1, 3, 4, 5), dict(size=(7, 9)), dict(size=[7, 9])),
    ]:
        c = case(name)
        x = c.input(c.randn(*shp), "NCHW")
        y = F.interpolate(x, mode="nearest", **kw)
        c.finish("resize", y, dict(mode="nearest", **attrs),
                 "PyTorch 'nearest' (not 'nearest-exact'): src = min(floor(dst * in/out), in - 1)",
                 "F.interpolate(x, %s, mode='nearest')" % ", ".join("%s=%r" % kv for kv in kw.items()))

    # ---- transformer pieces -----------------------------------------------------------------
    c = case("layer_norm")
    x = c.input(c.randn(2, 6, 10, scale=2.0) + 0.5, "(B, N, C) tokens")
    w = c.weight("weight", (1.0 + 0.5 * c.randn(10)), "(C,)")
    b = c.weight("bias", c.randn(10, scale=0.1), "(C,)")
    c.finish("layer_norm", F.layer_norm(x, (10,), w, b, 1e-5), dict(eps=1e-5, axis=-1),
             "(x - mean_C(x)) / sqrt(var_C(x) + eps) * weight + bias, biased variance over the last (C) axis",
             "F.layer_norm(x, (C,), weight, bias, 1e-5)", layout="(B, N, C)")

    c = case("mhsa")
    B, N, C, H = 2, 5, 12, 3
    x = c.input(c.randn(B, N, C), "(B, N, C) tokens")
    qw = c.weight("qkv_weight", c.randn(3 * C, C, scale=C ** -0.5),
                  "(3C, C) PyTorch Linear; output index j*C + h*hd + d for j = 0 q, 1 k, 2 v; head h, dim d")
    qb = c.weight("qkv_bias", c.randn(3 * C, scale=0.1), "(3C,)")
    pw = c.weight("proj_weight", c.randn(C, C, scale=C ** -0.5), "(C, C); input index h*hd + d")
    pb = c.weight("proj_bias", c.randn(C, scale=0.1), "(C,)")
    y = mhsa(x, qw, qb, pw, pb, H)
    att = zoo_ref.Attention(C, H).double()
    with torch.no_grad():
        att.qkv.weight.copy_(qw)
        att.qkv.bias.copy_(qb)
        att.proj.weight.copy_(pw)
        att.proj.bias.copy_(pb)
        assert torch.allclose(att(x), y, rtol=0, atol=1e-12)
    c.finish("mhsa", y, dict(heads=H, head_dim=C // H, scale=(C // H) ** -0.5),
             "q,k,v = split(qkv(x)); per head: softmax(q k^T * head_dim^-0.5) v; concat heads; proj",
             "zoo_ref.Attention (timm vision_transformer.Attention layout)", layout="(B, N, C)")

    c = case("mobilevit_unfold")
    x = c.input(c.randn(2, 3, 4, 6), "NCHW")
    y = zoo_ref.unfold_patches(x, 2, 2)
    c.finish("mobilevit_unfold", y, dict(patch=[2, 2]),
             "y[b*P + i*pw + j, r*(W/pw) + s, c] = x[b, c, r*ph + i, s*pw + j], P = ph*pw",
             "zoo_ref.unfold_patches(x, 2, 2)", layout="(B*P, N, C)")

    c = case("mobilevit_fold")
    t = c.input(c.randn(2 * 4, 6, 3), "(B*P, N, C) tokens")
    y = zoo_ref.fold_patches(t, 2, 4, 6, 2, 2)
    c.finish("mobilevit_fold", y, dict(patch=[2, 2], batch=2, height=4, width=6),
             "inverse of mobilevit_unfold", "zoo_ref.fold_patches(t, B=2, H=4, W=6, 2, 2)")

    # a whole MobileViT block on a 7x7 map (bilinear resize to 8x8 around the transformer and back)
    c = case("mobilevit_block_7x7")
    blk = zoo_ref.MobileViTBlock(8, 12, 1, heads=4, patch=2).eval()
    zoo.randomize(blk, g)
    xin = c.randn(2, 8, 7, 7)
    for k, v in blk.state_dict().items():
        if k.endswith("num_batches_tracked"):
            continue
        c.weight(k, v.float(), "state_dict tensor (timm MobileVitBlock names), PyTorch layout")
    x = c.input(xin, "NCHW")
    with torch.no_grad():
        y = copy.deepcopy(blk).double()(x)
    c.finish("mobilevit_block", y, dict(channels=8, transformer_dim=12, depth=1, heads=4, head_dim=3, patch=[2, 2],
                                        mlp_hidden=24, bn_eps=1e-5, ln_eps=1e-5, activation="silu"),
             "conv_kxk(3x3+BN+SiLU) -> conv_1x1 -> bilinear resize 7x7->8x8 -> unfold -> transformer (pre-LN "
             "attention + pre-LN MLP fc1-SiLU-fc2) -> norm -> fold -> bilinear resize back to 7x7 -> "
             "conv_proj(1x1+BN+SiLU) -> concat [x, that] -> conv_fusion(3x3+BN+SiLU)",
             "zoo_ref.MobileViTBlock(8, 12, 1, heads=4, patch=2)")

    total = sum(os.path.getsize(os.path.join(dp, f)) for dp, _, fs in os.walk(root) for f in fs)
    print("ops: %d cases, %.1f KB in %s (%.1fs)" % (len(names), total / 1024, root, time.time() - t0))
    return names


# ---------------------------------------------------------------------------------------------
# an independent check of the operator cases: plain numpy loops written from params.json's formulas
# ---------------------------------------------------------------------------------------------
def check_ops(root, tol=1e-6):
    """Recompute every case (except mobilevit_block, a composition of the others) with naive float64 numpy
    loops from its params.json and compare with output.npy (relative to max |output|)."""
    def load(c, f):
        return np.load(os.path.join(root, c, f)).astype(np.float64)

    def hsig(t):
        return np.clip(t + 3.0, 0.0, 6.0) / 6.0

    def sig(t):
        return 1.0 / (1.0 + np.exp(-t))

    def resize_index(o, n_in, n_out):
        src = max((o + 0.5) * n_in / n_out - 0.5, 0.0)
        i0 = int(math.floor(src))
        return i0, min(i0 + 1, n_in - 1), src - i0

    elementwise = {
        "relu6": lambda x: np.clip(x, 0.0, 6.0),
        "hardswish": lambda x: x * hsig(x),
        "hardsigmoid": hsig,
        "silu": lambda x: x * sig(x),
        "gelu": np.vectorize(lambda t: t * 0.5 * (1.0 + math.erf(t / math.sqrt(2.0)))),
        "sigmoid": sig,
    }
    worst = 0.0
    for c in sorted(os.listdir(root)):
        with open(os.path.join(root, c, "params.json")) as fh:
            p = json.load(fh)
        op, a = p["op"], p["attrs"]
        ins = [load(c, i["file"]) for i in p["inputs"]]
        w = {k: load(c, v["file"]) for k, v in p["weights"].items()}
        x = ins[0]
        if op == "conv2d":
            (sh, sw), (ph, pw), (dh, dw), G = a["stride"], a["padding"], a["dilation"], a["groups"]
            N, C, H, W = x.shape
            O, Cg, kh, kw = w["weight"].shape
            Ho, Wo = (H + 2 * ph - dh * (kh - 1) - 1) // sh + 1, (W + 2 * pw - dw * (kw - 1) - 1) // sw + 1
            y = np.zeros((N, O, Ho, Wo))
            for o in range(O):
                g0 = o // (O // G) * Cg
                for i in range(Ho):
                    for j in range(Wo):
                        acc = np.full(N, w["bias"][o] if "bias" in w else 0.0)
                        for cc in range(Cg):
                            for u in range(kh):
                                for v in range(kw):
                                    r, q = i * sh - ph + u * dh, j * sw - pw + v * dw
                                    if 0 <= r < H and 0 <= q < W:
                                        acc = acc + w["weight"][o, cc, u, v] * x[:, g0 + cc, r, q]
                        y[:, o, i, j] = acc
        elif op in elementwise:
            y = elementwise[op](x)
        elif op in ("dyrelu_a", "dyrelu_b", "dyshiftmax"):
            N, C = x.shape[:2]
            y = np.zeros_like(x)
            for n in range(N):
                h = w["fc2_weight"] @ np.maximum(w["fc1_weight"] @ x[n].mean(axis=(1, 2)) + w["fc1_bias"], 0.0) \
                    + w["fc2_bias"]
                for i in range(C):
                    if op == "dyshiftmax":
                        G, J, K = a["G"], a["J"], a["K"]
                        terms = [sum((a["init"][k][j] + a["lam"] * (2.0 * hsig(h[(k * J + j) * C + i]) - 1.0)) *
                                     x[n, (i + j * C // G) % C] for j in range(J)) for k in range(K)]
                    else:
                        K, th = a["K"], 2.0 * sig(h) - 1.0
                        o = 0 if op == "dyrelu_a" else i * 2 * K
                        terms = [(a["alpha"][k] + a["lambda_a"] * th[o + k]) * x[n, i] +
                                 (a["beta"][k] + a["lambda_b"] * th[o + K + k]) for k in range(K)]
                    y[n, i] = np.max(np.stack(terms), axis=0)
        elif op == "channel_shuffle":
            C, g = x.shape[1], a["groups"]
            y = np.zeros_like(x)
            for j in range(C // g):
                for gi in range(g):
                    y[:, j * g + gi] = x[:, gi * (C // g) + j]
        elif op == "concat":
            y = np.concatenate(ins, axis=a["axis"])
        elif op == "se":
            s = x.mean(axis=(2, 3))
            s = np.maximum(s @ w["reduce_weight"][:, :, 0, 0].T + w["reduce_bias"], 0.0)
            s = s @ w["expand_weight"][:, :, 0, 0].T + w["expand_bias"]
            y = x * (sig(s) if a["gate"] == "sigmoid" else hsig(s))[:, :, None, None]
        elif op in ("avgpool", "maxpool"):
            N, C, H, W = x.shape
            Ho, Wo = (H + 2 - 3) // 2 + 1, (W + 2 - 3) // 2 + 1
            y = np.zeros((N, C, Ho, Wo))
            for i in range(Ho):
                for j in range(Wo):
                    cells = np.stack([x[:, :, r, q] for r in range(2 * i - 1, 2 * i + 2)
                                      for q in range(2 * j - 1, 2 * j + 2) if 0 <= r < H and 0 <= q < W])
                    if op == "maxpool":
                        y[:, :, i, j] = cells.max(axis=0)
                    else:
                        y[:, :, i, j] = cells.sum(axis=0) / (9 if a["count_include_pad"] else len(cells))
        elif op == "global_avgpool":
            y = x.mean(axis=(2, 3), keepdims=True)
        elif op == "resize":
            N, C, H, W = x.shape
            Ho, Wo = p["output"]["shape"][2:]
            y = np.zeros((N, C, Ho, Wo))
            for i in range(Ho):
                for j in range(Wo):
                    if a["mode"] == "nearest":
                        y[:, :, i, j] = x[:, :, min(i * H // Ho, H - 1), min(j * W // Wo, W - 1)]
                    else:
                        r0, r1, fr = resize_index(i, H, Ho)
                        q0, q1, fq = resize_index(j, W, Wo)
                        y[:, :, i, j] = (1 - fr) * ((1 - fq) * x[:, :, r0, q0] + fq * x[:, :, r0, q1]) + \
                            fr * ((1 - fq) * x[:, :, r1, q0] + fq * x[:, :, r1, q1])
        elif op == "layer_norm":
            m = x.mean(axis=-1, keepdims=True)
            v = ((x - m) ** 2).mean(axis=-1, keepdims=True)
            y = (x - m) / np.sqrt(v + a["eps"]) * w["weight"] + w["bias"]
        elif op == "mhsa":
            B, N, C = x.shape
            H, hd = a["heads"], a["head_dim"]
            y = np.zeros_like(x)
            for b in range(B):
                qkv = x[b] @ w["qkv_weight"].T + w["qkv_bias"]
                cat = np.zeros((N, C))
                for h in range(H):
                    q, k, v = (qkv[:, j * C + h * hd: j * C + (h + 1) * hd] for j in range(3))
                    s = q @ k.T * a["scale"]
                    s = np.exp(s - s.max(axis=1, keepdims=True))
                    cat[:, h * hd:(h + 1) * hd] = (s / s.sum(axis=1, keepdims=True)) @ v
                y[b] = cat @ w["proj_weight"].T + w["proj_bias"]
        elif op in ("mobilevit_unfold", "mobilevit_fold"):
            ph, pw = a["patch"]
            if op == "mobilevit_unfold":
                B, C, H, W = x.shape
            else:
                B, C, H, W = a["batch"], x.shape[2], a["height"], a["width"]
            nw = W // pw
            img = np.zeros((B, C, H, W))
            tok = np.zeros((B * ph * pw, (H // ph) * nw, C))
            for b in range(B):
                for r in range(H):
                    for q in range(W):
                        t_idx = (b * ph * pw + (r % ph) * pw + q % pw, (r // ph) * nw + q // pw)
                        if op == "mobilevit_unfold":
                            tok[t_idx] = x[b, :, r, q]
                        else:
                            img[b, :, r, q] = x[t_idx]
            y = tok if op == "mobilevit_unfold" else img
        elif op == "mobilevit_block":
            continue
        else:
            raise RuntimeError("no check for op %r (case %s)" % (op, c))
        out = load(c, p["output"]["file"])
        assert y.shape == out.shape, (c, y.shape, out.shape)
        err = float(np.abs(y - out).max() / max(np.abs(out).max(), 1e-30))
        worst = max(worst, err)
        if err > tol:
            raise RuntimeError("ops check: case %s differs from its numpy recomputation: %.3g" % (c, err))
    print("ops check: every case matches a numpy recomputation from params.json (worst relative %.1e)" % worst)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=None, help="study networks: OUT/<variant>/")
    ap.add_argument("--ops", default=None, help="operator golden cases: OPS/<case>/ (then checked with numpy)")
    ap.add_argument("--variants", default="all")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    if a.out is None and a.ops is None:
        sys.exit("give --out and/or --ops")
    if a.ops:
        make_ops(a.ops, a.seed)
        check_ops(a.ops)
    if a.out:
        names = VARIANTS if a.variants == "all" else a.variants.split(",")
        t0 = time.time()
        for v in names:
            if v not in VARIANTS:
                sys.exit("unknown variant %r (known: %s)" % (v, ", ".join(VARIANTS)))
            make_variant(v, os.path.join(a.out, v), a.seed)
        print("study: %d variants in %.1fs" % (len(names), time.time() - t0))


if __name__ == "__main__":
    main()
