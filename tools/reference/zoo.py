"""Golden data for the comparison zoo (the paper's latency-correlation study) on one PyTorch reference.

    /usr/bin/python3 tools/reference/zoo.py --out testdata/zoo --counts testdata/zoo_counts.json [--models a,b]
                                            [--seed N] [--threads T] [--check-only]

MAC counting rules (the Go side implements the same rules; counted here with forward hooks, per image):
  Conv2d      Cout * (Cin / groups) * kh * kw * Hout * Wout          (bias adds not counted)
  Linear      in_features * out_features * rows, rows = the number of vectors it is applied to per image
              (1 for a classifier, tokens * patch-groups inside a transformer)
  attention   the two matrix products q.k^T and attn.v: tokens * tokens * head_dim each, per head, per
              sequence (MobileViT: one sequence per patch pixel, P = 4 of them)
  everything else counts 0: BatchNorm, LayerNorm, activations, add, multiply (SE gates), concat, pooling,
  softmax, the 1/sqrt(d) scaling, bilinear/nearest resize, channel shuffle, reshape.
Parameters: sum of numel over model.parameters() (BatchNorm running statistics and num_batches_tracked are
buffers and are not counted).

Models (names are the directory names under --out):
  torchvision 0.14 builders, unchanged (weights=None): mobilenet_v2, mobilenet_v3_small, mobilenet_v3_large,
      efficientnet_b0, shufflenet_v2_x1_0, mnasnet1_0, regnet_x_400mf, resnet18, resnet50
  zoo_ref.py (our reference): mobilenet_v1, ghostnet, repvgg_a0, repvgg_b0, mobilevit_xs
  mobileone_ref.py (fused form): mobileone_s0 .. mobileone_s4

Files per model, in OUT/<name>/:
  state_dict.pth        torch.save(model.state_dict()), float32, random non-trivial weights (seeded)
  input.npy             float32 (2, 3, 128, 128)
  logits.npy            float32 (2, 1000): the model in eval mode on input.npy, computed in float64 from the
                        saved float32 weights (model.double()), stored float32
  spec.json             see README.md (name, params, macs_224, macs_128, source, preprocess, published, ...)
  repvgg_* also:        state_dict_fused.pth (after reparameterize(); float64 fold of the saved float32
                        weights, rounded to float32), logits_fused.npy (those fused float32 weights run in float64)
  mobilevit_xs also:    input_100.npy (1, 3, 100, 100) and logits_100.npy: a size whose stage maps (13x13, 7x7)
                        are not multiples of the 2x2 patch, so the bilinear resize around the transformer runs
--counts writes {name: {params, macs_224, macs_128[, params_fused, macs_224_fused, macs_128_fused]}}.
"""

import argparse
import copy
import json
import os
import sys
import time
import zlib

import numpy as np
import torch
import torch.nn as nn
import torchvision

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_golden as mg  # noqa: E402
import mobileone_ref as mo  # noqa: E402
import zoo_ref  # noqa: E402

LOGIT_STD_TARGET = 3.0
MACS_REL_TOL = 0.025
VAR_FLOOR = 0.1
BN_BETA_MEAN = 0.5
INPUT_SHAPE = (2, 3, 128, 128)

IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]

TORCHVISION = ["mobilenet_v2", "mobilenet_v3_small", "mobilenet_v3_large", "efficientnet_b0",
               "shufflenet_v2_x1_0", "mnasnet1_0", "regnet_x_400mf", "resnet18", "resnet50"]
REFERENCE = ["mobilenet_v1", "ghostnet", "repvgg_a0", "repvgg_b0", "mobilevit_xs"]
MOBILEONE = ["mobileone_s0", "mobileone_s1", "mobileone_s2", "mobileone_s3", "mobileone_s4"]
ALL = ["mobilenet_v1"] + TORCHVISION + ["ghostnet", "repvgg_a0", "repvgg_b0", "mobilevit_xs"] + MOBILEONE

# Published figures. params: (value, how it is given): "exact" must match exactly, "M1"/"M2" are millions rounded
# to 1/2 decimals ("M2t": truncated). macs: (value, input side): published MAC figures are round numbers counted by
# slightly different conventions: (value, input side, unit of the last published digit); they match when within
# MACS_REL_TOL or equal after rounding to that unit.
PUBLISHED = {
    "mobilenet_v1": dict(params=(4.2e6, "M1"), macs=(569e6, 224, 1e6),
                         source="Howard et al. 2017 (arXiv 1704.04861) Table 8: 1.0 MobileNet-224, 569 M "
                                "mult-adds, 4.2 M parameters; timm mobilenetv1_100: 4.23 M"),
    "mobilenet_v2": dict(params=(3504872, "exact"), macs=(300e6, 224, 1e6),
                         source="torchvision 0.14 weights meta num_params; Sandler et al. 2018 Table 4: 300 M "
                                "MAdds, 3.4 M params"),
    "mobilenet_v3_small": dict(params=(2542856, "exact"), macs=(56e6, 224, 1e6),
                               source="torchvision 0.14 weights meta num_params; Howard et al. 2019 Table 3: "
                                      "MobileNetV3-Small 1.0 56 M MAdds, 2.5 M params"),
    "mobilenet_v3_large": dict(params=(5483032, "exact"), macs=(219e6, 224, 1e6),
                               source="torchvision 0.14 weights meta num_params; Howard et al. 2019 Table 3: "
                                      "MobileNetV3-Large 1.0 219 M MAdds, 5.4 M params"),
    "efficientnet_b0": dict(params=(5288548, "exact"), macs=(0.39e9, 224, 0.01e9),
                            source="torchvision 0.14 weights meta num_params; Tan & Le 2019 Table 2: 0.39 B "
                                   "FLOPs (multiply-adds), 5.3 M params"),
    "shufflenet_v2_x1_0": dict(params=(2278604, "exact"), macs=(146e6, 224, 1e6),
                               source="torchvision 0.14 weights meta num_params; Ma et al. 2018 Table 8: "
                                      "ShuffleNet v2 1x 146 MFLOPs (multiply-adds), 2.3 M params"),
    "mnasnet1_0": dict(params=(4383312, "exact"), macs=(0.31e9, 224, 0.01e9),
                       source="torchvision 0.14 weights meta num_params (MnasNet-B1 depth 1.0); 0.31 GFLOPS from "
                              "the torchvision model table (>= 0.15 docs)"),
    "regnet_x_400mf": dict(params=(5495976, "exact"), macs=(0.41e9, 224, 0.01e9),
                           source="torchvision 0.14 weights meta num_params; 0.41 GFLOPS from the torchvision "
                                  "model table (>= 0.15 docs); Radosavovic et al. 2020: RegNetX-400MF 0.4 GF"),
    "resnet18": dict(params=(11689512, "exact"), macs=(1.8e9, 224, 0.1e9),
                     source="torchvision 0.14 weights meta num_params; He et al. 2016 Table 1: 1.8x10^9 FLOPs "
                            "(multiply-adds)"),
    "resnet50": dict(params=(25557032, "exact"), macs=(4.09e9, 224, 0.01e9),
                     source="torchvision 0.14 weights meta num_params; 4.09 GFLOPS from the torchvision model "
                            "table (>= 0.15 docs; He et al. 2016 Table 1 gives 3.8x10^9, counting fewer layers)"),
    "ghostnet": dict(params=(5.2e6, "M1"), macs=(141e6, 224, 1e6),
                     source="Han et al. 2020 (arXiv 1911.11907) Table 7: GhostNet 1.0x 5.2 M params, 141 M FLOPs "
                            "(multiply-adds); timm ghostnet_100: 5.18 M"),
    "repvgg_a0": dict(params=(8.30e6, "M2t"), macs=(1.4e9, 224, 0.1e9), fused=True,
                      source="Ding et al. 2021 (arXiv 2101.03697) Table 4: RepVGG-A0 8.30 M params, 1.4 B FLOPs "
                             "(multiply-adds), of the inference-time (fused) model; figures are truncated, not "
                             "rounded (8,309,384 -> 8.30); timm repvgg_a0 (train-time): 9.11 M"),
    "repvgg_b0": dict(params=(14.33e6, "M2t"), macs=(3.1e9, 224, 0.1e9), fused=True,
                      source="Ding et al. 2021 (arXiv 2101.03697) Table 4: RepVGG-B0 14.33 M params, 3.1 B FLOPs "
                             "(multiply-adds), inference-time model, truncated; timm repvgg_b0 (train-time): 15.82 M"),
    "mobilevit_xs": dict(params=(2.3e6, "M1"), macs=(0.7e9, 256, 0.1e9),
                         source="Mehta & Rastegari 2022 (arXiv 2110.02178) Table 4 / Fig. 6: MobileViT-XS 2.3 M "
                                "params; 0.7 G FLOPs at 256x256 as quoted in MobileOne (Vasu et al. 2023) Table 9; "
                                "timm mobilevit_xs: 2.32 M. Our 1.026 G at 256 = convolutions 607 M + transformer "
                                "linears 301 M (all 4 patch sequences) + attention products 117 M; 607 + 301 / 4 = "
                                "683 M, so the published figure seems to count the transformer's linears for one "
                                "patch sequence and no attention products (our reading, unconfirmed)"),
}
for _i, _z in enumerate(["s0", "s1", "s2", "s3", "s4"]):
    _mac = [275.1e6, 825.1e6, 1298.4e6, 1895.8e6, 2979.3e6][_i]
    PUBLISHED["mobileone_" + _z] = dict(
        params=(mo.SPEC_PARAMS[_z][0], "exact"), macs=(_mac, 224, 0.1e6),
        source="shared/docs/mobileone.md variant table (Vasu et al. 2023, arXiv 2206.04040; the fused model)")

PREPROCESS_OTHER = {
    "mobilenet_v1": dict(resize_size=[256], crop_size=[224], interpolation="bilinear",
                         mean=[0.5, 0.5, 0.5], std=[0.5, 0.5, 0.5],
                         source="the paper's TF-slim release (models/research/slim, inception_preprocessing for "
                                "evaluation): central crop of 87.5 % of the image, bilinear resize to 224, values "
                                "scaled to [-1, 1]; written as resize 256 (= 224 / 0.875) + centre crop 224, "
                                "mean = std = 0.5. timm's mobilenetv1_100 weights instead use ImageNet mean/std, "
                                "crop_pct 0.95, bicubic"),
    "ghostnet": dict(resize_size=[256], crop_size=[224], interpolation="bilinear", mean=IMAGENET_MEAN,
                     std=IMAGENET_STD,
                     source="official GhostNet release (huawei-noah CV-backbones, ghostnet_pytorch validate): "
                            "Resize(256), CenterCrop(224), ImageNet mean/std; timm ghostnet_100: crop_pct 0.875, "
                            "bilinear (the same)"),
    "repvgg_a0": dict(resize_size=[256], crop_size=[224], interpolation="bilinear", mean=IMAGENET_MEAN,
                      std=IMAGENET_STD,
                      source="official RepVGG release (DingXiaoH/RepVGG) test transform: Resize(256), "
                             "CenterCrop(224), ImageNet mean/std"),
    "repvgg_b0": None,  # same as a0, filled below
    "mobilevit_xs": dict(resize_size=[288], crop_size=[256], interpolation="bilinear", mean=[0.0, 0.0, 0.0],
                         std=[1.0, 1.0, 1.0],
                         source="ml-cvnets evaluation of MobileViT (as reproduced in mmpretrain's mobilevit "
                                "configs): short side 288, centre crop 256, pixel values scaled to [0, 1] and not "
                                "normalised (mmpretrain notes the original weights take BGR channel order); timm "
                                "mobilevit_xs: input 256, crop_pct 0.9, bicubic, mean 0, std 1"),
}
PREPROCESS_OTHER["repvgg_b0"] = PREPROCESS_OTHER["repvgg_a0"]
for _z in ["s0", "s1", "s2", "s3", "s4"]:
    PREPROCESS_OTHER["mobileone_" + _z] = dict(
        resize_size=[256 if _z == "s0" else 248], crop_size=[224], interpolation="bilinear", mean=IMAGENET_MEAN,
        std=IMAGENET_STD, source="shared/docs/mobileone.md (the authors' ImageNet pipeline)")

SOURCES = {
    "mobilenet_v1": "zoo_ref.MobileNetV1: Howard et al. 2017 (arXiv 1704.04861) Table 1; timm mobilenetv1_100 "
                    "key names",
    "ghostnet": "zoo_ref.GhostNet: Han et al. 2020 (arXiv 1911.11907) Table 1 and the official release's cfgs; "
                "official / timm ghostnet_100 key names",
    "repvgg_a0": "zoo_ref.RepVGG('a0'): Ding et al. 2021 (arXiv 2101.03697) Tables 2-4 (a=0.75, b=2.5, layers "
                 "1,2,4,14,1); official RepVGG key names",
    "repvgg_b0": "zoo_ref.RepVGG('b0'): Ding et al. 2021 (arXiv 2101.03697) Tables 2-4 (a=1, b=2.5, layers "
                 "1,4,6,16,1); official RepVGG key names",
    "mobilevit_xs": "zoo_ref.MobileViT: Mehta & Rastegari 2022 (arXiv 2110.02178) Table 4 and ml-cvnets "
                    "'x_small' (MV2 expansion 4, dims 96/120/144, depths 2/4/3, 4 heads, FFN 2x, patch 2x2); "
                    "timm mobilevit_xs key names",
}


# ---------------------------------------------------------------------------------------------
# model construction
# ---------------------------------------------------------------------------------------------
def build(name):
    if name in TORCHVISION:
        return getattr(torchvision.models, name)(weights=None)
    if name in REFERENCE:
        return zoo_ref.BUILDERS[name]()
    if name in MOBILEONE:
        return mo.mobileone(name.split("_")[1])
    raise KeyError(name)


def torchvision_preprocess(name):
    w = torchvision.models.get_model_weights(name).DEFAULT
    t = w.transforms()
    return dict(resize_size=list(t.resize_size), crop_size=list(t.crop_size),
                interpolation=t.interpolation.value, mean=list(t.mean), std=list(t.std),
                source="torchvision 0.14 %s.transforms() (ImageClassification: resize the short side, centre "
                       "crop, scale to [0, 1], normalise)" % str(w))


def norm_eps(model):
    out = {}
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm2d, nn.LayerNorm)):
            out.setdefault(type(m).__name__, set()).add(float(m.eps))
    return {k: sorted(v) for k, v in out.items()}


# ---------------------------------------------------------------------------------------------
# counting
# ---------------------------------------------------------------------------------------------
@torch.no_grad()
def count_macs(model, side):
    """MACs for one (1, 3, side, side) image by the rules in the module docstring (forward hooks)."""
    total = [0]

    def conv_hook(m, inp, out):
        kh, kw = m.kernel_size
        total[0] += out.shape[1] * (m.in_channels // m.groups) * kh * kw * out.shape[2] * out.shape[3]

    def linear_hook(m, inp, out):
        rows = inp[0].numel() // m.in_features
        total[0] += m.in_features * m.out_features * rows

    def attn_hook(m, inp, out):
        total[0] += m.attention_macs(inp[0])

    handles = []
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            handles.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            handles.append(m.register_forward_hook(linear_hook))
        elif isinstance(m, zoo_ref.Attention):
            handles.append(m.register_forward_hook(attn_hook))
        elif type(m) in (nn.MultiheadAttention,):
            raise RuntimeError("unhandled attention module %s" % type(m).__name__)
    try:
        model.eval()(torch.zeros(1, 3, side, side))
    finally:
        for h in handles:
            h.remove()
    return int(total[0])


# ---------------------------------------------------------------------------------------------
# random, non-trivial weights for any architecture
# ---------------------------------------------------------------------------------------------
@torch.no_grad()
def randomize(model, g):
    """make_golden.randomize's distributions (BN gamma U(0.5,1.5), running mean N(0,0.2), running var U(0.5,2);
    conv He-normal; linear N(0, 1/in); biases N(0, 0.1)), plus LayerNorm weight U(0.5,1.5) and bias N(0, 0.1),
    except BN beta ~ N(BN_BETA_MEAN, 0.1). (The running statistics are then replaced by calibrate().)

    Why beta is centred at 0.5: with BatchNorm statistics matched to the data (calibrate) a deep random network
    is chaotic: a perturbation, float32 rounding included, grows about 1.2x per layer (measured: float32 logits
    3e-5..7e-5 off float64 at 30-50 layers). With about 70 % of ReLU inputs positive it is not (measured 6e-6..
    1.2e-5) and the images still get distinct features (12-40 % relative spread of the pooled features)."""
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.weight.uniform_(0.5, 1.5, generator=g)
            m.bias.normal_(BN_BETA_MEAN, 0.1, generator=g)
            m.running_mean.normal_(0.0, 0.2, generator=g)
            m.running_var.uniform_(0.5, 2.0, generator=g)
            m.num_batches_tracked.fill_(int(torch.randint(1, 1_000_000, (1,), generator=g)))
        elif isinstance(m, nn.Conv2d):
            m.weight.normal_(0.0, (2.0 / m.weight[0].numel()) ** 0.5, generator=g)
            if m.bias is not None:
                m.bias.normal_(0.0, 0.1, generator=g)
        elif isinstance(m, nn.Linear):
            m.weight.normal_(0.0, (1.0 / m.in_features) ** 0.5, generator=g)
            if m.bias is not None:
                m.bias.normal_(0.0, 0.1, generator=g)
        elif isinstance(m, nn.LayerNorm):
            m.weight.uniform_(0.5, 1.5, generator=g)
            m.bias.normal_(0.0, 0.1, generator=g)


def _last_linear(model, x):
    order = []
    hs = [m.register_forward_hook(lambda m, i, o: order.append(m)) for m in model.modules()
          if isinstance(m, nn.Linear)]
    with torch.no_grad():
        model(x)
    for h in hs:
        h.remove()
    return order[-1]


@torch.no_grad()
def calibrate(model, x, g):
    """Data-dependent BatchNorm statistics, randomised: in execution order (float64 forward pre-hooks), each
    BatchNorm's running_mean = its input's per-channel batch mean + N(0, 0.2) * sqrt(v), running_var = v * U(0.5, 2)
    with v = the per-channel batch variance + VAR_FLOOR * its mean over channels (so that a nearly constant
    channel is not divided by ~sqrt(eps), which would amplify rounding); gamma and beta stay as randomize() drew
    them.

    Why not randomize()'s input-independent statistics alone: through a deep random network those give every
    input nearly the same pooled features (measured: 1-5 % relative spread across random images), so every image
    got the same argmax, and making the logits input-dependent then needs a classifier that amplifies a 20-100x
    common part, which float32 cannot compute to 1e-6. With these statistics the spread is 20-70 %."""
    model.eval()
    m64 = copy.deepcopy(model).double().eval()
    twins = dict(zip(m64.modules(), model.modules()))
    seen = set()

    def pre(m, inp):
        if m in seen:
            raise RuntimeError("a BatchNorm module is applied twice; calibration assumes one use")
        seen.add(m)
        xi = inp[0]
        mean, var = xi.mean(dim=(0, 2, 3)), xi.var(dim=(0, 2, 3))
        var = var + VAR_FLOOR * var.mean()          # no near-constant channel is blown up (conditioning)
        rm = mean + 0.2 * var.sqrt() * torch.randn(mean.shape, generator=g, dtype=torch.float64)
        rv = var * torch.empty(var.shape, dtype=torch.float64).uniform_(0.5, 2.0, generator=g)
        for bn in (m, twins[m]):
            bn.running_mean.copy_(rm)
            bn.running_var.copy_(rv)

    hs = [m.register_forward_pre_hook(pre) for m in m64.modules() if isinstance(m, nn.BatchNorm2d)]
    m64(x.double())
    for h in hs:
        h.remove()


@torch.no_grad()
def calibrate_head(model, xcal, xgold, g):
    """Make the logits depend on the image and have std about LOGIT_STD_TARGET: with f the classifier's input
    features (float64) and mu their mean over the calibration batch, set the classifier bias to -W mu + N(0, 0.1)
    and scale W so that (f - mu) W^T has std LOGIT_STD_TARGET on the golden input (factor rounded to 4 digits)."""
    model.eval()
    m64 = copy.deepcopy(model).double().eval()
    fc64 = _last_linear(m64, xcal.double())
    fc = dict(zip(m64.modules(), model.modules()))[fc64]

    def features(x):
        feats = []
        h = fc64.register_forward_hook(lambda m, i, o: feats.append(i[0]))
        m64(x.double())
        h.remove()
        return feats[0].reshape(-1, fc64.in_features)

    mu = features(xcal).mean(dim=0)
    z = (features(xgold) - mu) @ fc64.weight.t()
    fc.weight.mul_(mg._round_sig(LOGIT_STD_TARGET / float(z.std())))
    noise = torch.zeros(fc.out_features, dtype=torch.float64).normal_(0.0, 0.1, generator=g)
    fc.bias.copy_(noise - fc.weight.double() @ mu)


def seed_for(name, base):
    return (zlib.crc32(name.encode()) + base) % (2 ** 31)


def save_npy(path, a):
    np.save(path, np.ascontiguousarray(a, dtype=np.float32))


@torch.no_grad()
def logits64(model, x32):
    return copy.deepcopy(model).double().eval()(x32.double())


# ---------------------------------------------------------------------------------------------
def make(name, out, base_seed):
    t0 = time.time()
    seed = seed_for(name, base_seed)
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    model = build(name).eval()
    x32 = torch.randn(*INPUT_SHAPE, generator=g)
    xcal = torch.randn(4, *INPUT_SHAPE[1:], generator=g)
    extra = {}

    randomize(model, g)
    calibrate(model, torch.cat([xcal, x32]), g)   # BN statistics of the calibration and golden images
    if name in MOBILEONE:
        f64 = mo.reparameterize_model(copy.deepcopy(model).double())
        model = copy.deepcopy(f64).float().eval()      # the fused float32 model is the one stored
        extra["train_time_params"] = mo.count_params(build(name))
    calibrate_head(model, xcal, x32, g)

    os.makedirs(out, exist_ok=True)
    sd = model.state_dict()
    torch.save(sd, os.path.join(out, "state_dict.pth"))
    back = torch.load(os.path.join(out, "state_dict.pth"))
    assert list(back) == list(sd) and all(torch.equal(back[k], sd[k]) for k in sd)

    y64 = logits64(model, x32)
    with torch.no_grad():
        y32 = model(x32)
    save_npy(os.path.join(out, "input.npy"), x32.numpy())
    save_npy(os.path.join(out, "logits.npy"), y64.numpy())
    d32 = float((y32.double() - y64).abs().max())

    params = zoo_ref.count_params(model)
    macs224, macs128 = count_macs(model, 224), count_macs(model, 128)
    spec = dict(name=name, params=params, macs_224=macs224, macs_128=macs128)

    fused = None
    if name.startswith("repvgg"):
        m64 = copy.deepcopy(model).double().eval()
        f64 = zoo_ref.repvgg_reparameterize(m64)
        with torch.no_grad():
            d_exact = float((f64(x32.double()) - y64).abs().max())
        assert d_exact <= 1e-9 * max(float(y64.abs().max()), 1.0), "repvgg fused/unfused mismatch %g" % d_exact
        fused = copy.deepcopy(f64).float().eval()
        sdf = fused.state_dict()
        torch.save(sdf, os.path.join(out, "state_dict_fused.pth"))
        yf = logits64(fused, x32)
        save_npy(os.path.join(out, "logits_fused.npy"), yf.numpy())
        spec.update(params_fused=zoo_ref.count_params(fused), macs_224_fused=count_macs(fused, 224),
                    macs_128_fused=count_macs(fused, 128))
        extra["max_abs_diff_fused64_vs_unfused64"] = d_exact
        extra["max_abs_diff_fused_f32weights_vs_unfused64"] = float((yf - y64).abs().max())
        extra["fused_files"] = ["state_dict_fused.pth", "logits_fused.npy"]

    if name == "mobilevit_xs":
        x100 = torch.randn(1, 3, 100, 100, generator=g)
        save_npy(os.path.join(out, "input_100.npy"), x100.numpy())
        save_npy(os.path.join(out, "logits_100.npy"), logits64(model, x100).numpy())
        spec["macs_256"] = count_macs(model, 256)
        extra["odd_size_files"] = ["input_100.npy", "logits_100.npy"]

    spec["source"] = SOURCES.get(name) or (
        "torchvision 0.14 torchvision.models.%s(weights=None), unchanged" % name if name in TORCHVISION else
        "mobileone_ref.py (authors' structure and fused key names), fused with reparameterize_model")
    spec["preprocess"] = torchvision_preprocess(name) if name in TORCHVISION else PREPROCESS_OTHER[name]
    spec["published"] = published_check(name, spec)
    spec["norm_eps"] = norm_eps(model)
    spec["input_shape"] = list(INPUT_SHAPE)
    spec["logits_shape"] = list(y64.shape)
    spec["seed"] = seed
    spec["torch_version"] = torch.__version__
    spec["torchvision_version"] = torchvision.__version__
    spec["logits_std"] = float(y64.std())
    spec["logits_max_abs"] = float(y64.abs().max())
    spec["max_abs_diff_float32_forward_vs_float64"] = d32
    spec["rel_diff_float32_forward_vs_float64"] = d32 / spec["logits_max_abs"]
    spec.update(extra)
    with open(os.path.join(out, "spec.json"), "w") as fh:
        json.dump(spec, fh, indent=2)
        fh.write("\n")
    size = sum(os.path.getsize(os.path.join(out, f)) for f in os.listdir(out))
    print("%-19s params %10d  MACs@224 %13d  MACs@128 %12d  logits std %.2f argmax %s  f32-vs-f64 %.1e (rel %.1e)"
          "  %5.1f MB  %.1fs" % (name, params, macs224, macs128, spec["logits_std"], y64.argmax(1).tolist(), d32,
                                 spec["rel_diff_float32_forward_vs_float64"], size / 1e6, time.time() - t0), flush=True)
    return spec


def _matches(ours, value, how):
    """Compare with a published figure at the precision it is given in."""
    if how == "exact":
        return ours == value
    unit = {"M": 1e6, "G": 1e9}[how[0]]
    digits = int(how[1])
    q = ours / unit * 10 ** digits
    v = round(value / unit * 10 ** digits)
    if how.endswith("t"):
        return int(q) == v
    return round(q) == v


def published_check(name, spec):
    pub = PUBLISHED[name]
    fused = pub.get("fused", False)
    p = spec["params_fused"] if fused else spec["params"]
    pv, ph = pub["params"]
    mv, side, unit = pub["macs"]
    m = spec.get("macs_%d%s" % (side, "_fused" if fused else ""))
    rel = None if m is None else (m - mv) / mv
    ok = None if m is None else (abs(rel) <= MACS_REL_TOL or round(m / unit) == round(mv / unit))
    return dict(params=pv, params_precision=ph, params_match=_matches(p, pv, ph), macs=mv, macs_input=side,
                macs_rel_diff=rel, macs_match=ok,
                macs_rel_tol=MACS_REL_TOL, compared_to="fused model" if fused else "model", source=pub["source"])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=None, help="output root (OUT/<name>/...)")
    ap.add_argument("--counts", default=None, help="write params/MACs of all generated models to this JSON file")
    ap.add_argument("--models", default="all", help="comma-separated names or 'all'")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--check-only", action="store_true", help="count params/MACs and compare, write nothing")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    names = ALL if a.models == "all" else a.models.split(",")
    for n in names:
        if n not in ALL:
            sys.exit("unknown model %r (known: %s)" % (n, ", ".join(ALL)))

    if a.check_only:
        for n in names:
            m = build(n).eval()
            if n in MOBILEONE:
                m = mo.reparameterize_model(m)
            spec = dict(params=zoo_ref.count_params(m), macs_224=count_macs(m, 224))
            if n.startswith("repvgg"):
                f = zoo_ref.repvgg_reparameterize(m)
                spec.update(params_fused=zoo_ref.count_params(f), macs_224_fused=count_macs(f, 224))
            if n == "mobilevit_xs":
                spec["macs_256"] = count_macs(m, 256)
            chk = published_check(n, spec)
            fused = " (fused %d, MACs %d)" % (spec["params_fused"], spec["macs_224_fused"]) if "params_fused" in spec \
                else ""
            print("%-19s params %9d MACs@224 %11d%s | published: params %s %s, MACs@%d %.4g %s (%+.1f %%)" % (
                n, spec["params"], spec["macs_224"], fused, "{:,.0f}".format(chk["params"]),
                "OK" if chk["params_match"] else "DIFFERS", chk["macs_input"], chk["macs"],
                {True: "OK", False: "DIFFERS", None: "-"}[chk["macs_match"]], 100 * chk["macs_rel_diff"]))
        return
    if a.out is None:
        sys.exit("--out is required (or --check-only)")

    t0 = time.time()
    counts = {}
    for n in names:
        s = make(n, os.path.join(a.out, n), a.seed)
        counts[n] = {k: s[k] for k in ("params", "macs_224", "macs_128", "params_fused", "macs_224_fused",
                                       "macs_128_fused") if k in s}
    if a.counts:
        old = {}
        if a.models != "all" and os.path.exists(a.counts):
            with open(a.counts) as fh:
                old = json.load(fh)
        old.update(counts)
        order = [n for n in ALL if n in old]
        with open(a.counts, "w") as fh:
            json.dump({n: old[n] for n in order}, fh, indent=2)
            fh.write("\n")
    print("zoo: %d models in %.1fs" % (len(names), time.time() - t0))


if __name__ == "__main__":
    main()
