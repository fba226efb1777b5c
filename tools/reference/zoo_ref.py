"""Independent PyTorch references for the comparison-zoo models that torchvision 0.14 does not have.

Written from the papers and the structure of the authors' releases (our own code, nothing copied):

  MobileNetV1()          Howard et al. 2017, arXiv 1704.04861, Table 1 (width 1.0, ReLU, BatchNorm)
  GhostNet()             Han et al. 2020, arXiv 1911.11907, Table 1 / official cfgs (width 1.0)
  RepVGG("a0" | "b0")    Ding et al. 2021, arXiv 2101.03697, Table 2 (train-time blocks + reparameterize())
  MobileViT()            Mehta & Rastegari 2022, arXiv 2110.02178, Table 4 / ml-cvnets "x_small" (XS)

state_dict key names (so that users' checkpoints load by name):
  mobilenet_v1  timm `mobilenetv1_100`: conv_stem, bn1, blocks.{s}.{j}.{conv_dw,bn1,conv_pw,bn2}, classifier
  ghostnet      timm `ghostnet_100` = the official release: conv_stem, bn1,
                blocks.{s}.{j}.{ghost1,ghost2}.{primary_conv,cheap_operation}.{0 conv,1 bn}, conv_dw, bn_dw,
                se.{conv_reduce,conv_expand}, shortcut.{0 dw conv,1 bn,2 pw conv,3 bn}, blocks.9.0.{conv,bn1},
                conv_head (with bias), classifier
  repvgg_*      the original RepVGG release: stage0, stage{1..4}.{j}, rbr_dense.{conv,bn}, rbr_1x1.{conv,bn},
                rbr_identity (BatchNorm), after reparameterize() rbr_reparam.{weight,bias}; linear
  mobilevit_xs  timm `mobilevit_xs`: stem.{conv,bn}, stages.{s}.{j}. MV2 blocks conv1_1x1/conv2_kxk/conv3_1x1.{conv,bn};
                MobileViT blocks conv_kxk.{conv,bn}, conv_1x1, transformer.{t}.{norm1,attn.qkv,attn.proj,norm2,
                mlp.fc1,mlp.fc2}, norm, conv_proj.{conv,bn}, conv_fusion.{conv,bn}; final_conv.{conv,bn}; head.fc

Run directly to print the parameter counts against the published figures:
    /usr/bin/python3 tools/reference/zoo_ref.py
"""

import copy
import math

import torch
import torch.nn as nn
import torch.nn.functional as F


def make_divisible(v, divisor=8, min_value=None):
    """Round v to the nearest multiple of divisor, never below min_value (default divisor) and never more
    than 10 % below v (the rule of the MobileNet/GhostNet releases)."""
    min_value = divisor if min_value is None else min_value
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


def hard_sigmoid(x):
    """relu6(x + 3) / 6 (= torch.nn.functional.hardsigmoid)."""
    return F.relu6(x + 3.0) / 6.0


def count_params(model):
    """Learnable tensors only (BatchNorm running statistics excluded)."""
    return sum(p.numel() for p in model.parameters())


# =============================================================================================
# MobileNetV1 (1.0)
# =============================================================================================
# (output channels, depthwise stride) of the 13 depthwise-separable blocks, grouped as timm groups them
MOBILENET_V1_STAGES = [
    [(64, 1)],
    [(128, 2), (128, 1)],
    [(256, 2), (256, 1)],
    [(512, 2)] + [(512, 1)] * 5,
    [(1024, 2), (1024, 1)],
]


class DepthwiseSeparable(nn.Module):
    """dw3x3(stride) + BN + ReLU, pw1x1 + BN + ReLU."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv_dw = nn.Conv2d(cin, cin, 3, stride, 1, groups=cin, bias=False)
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv_pw = nn.Conv2d(cin, cout, 1, 1, 0, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv_dw(x)))
        return F.relu(self.bn2(self.conv_pw(x)))


class MobileNetV1(nn.Module):
    def __init__(self, num_classes=1000):
        super().__init__()
        self.conv_stem = nn.Conv2d(3, 32, 3, 2, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(32)
        cin, stages = 32, []
        for stage in MOBILENET_V1_STAGES:
            blocks = []
            for cout, s in stage:
                blocks.append(DepthwiseSeparable(cin, cout, s))
                cin = cout
            stages.append(nn.Sequential(*blocks))
        self.blocks = nn.Sequential(*stages)
        self.classifier = nn.Linear(cin, num_classes)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv_stem(x)))
        x = self.blocks(x)
        return self.classifier(x.mean(dim=(2, 3)))


# =============================================================================================
# GhostNet (1.0)
# =============================================================================================
# Per stage: rows of (dw kernel, expansion (hidden) channels, output channels, SE ratio, stride)
GHOSTNET_CFGS = [
    [(3, 16, 16, 0.0, 1)],
    [(3, 48, 24, 0.0, 2)],
    [(3, 72, 24, 0.0, 1)],
    [(5, 72, 40, 0.25, 2)],
    [(5, 120, 40, 0.25, 1)],
    [(3, 240, 80, 0.0, 2)],
    [(3, 200, 80, 0.0, 1), (3, 184, 80, 0.0, 1), (3, 184, 80, 0.0, 1),
     (3, 480, 112, 0.25, 1), (3, 672, 112, 0.25, 1)],
    [(5, 672, 160, 0.25, 2)],
    [(5, 960, 160, 0.0, 1), (5, 960, 160, 0.25, 1), (5, 960, 160, 0.0, 1), (5, 960, 160, 0.25, 1)],
]


class GhostModule(nn.Module):
    """Primary 1x1 conv to ceil(out/ratio) channels + BN (+ReLU), a depthwise 3x3 "cheap operation" on those
    (+BN, +ReLU) producing the other (ratio-1) shares, concatenated and cut to `out` channels."""

    def __init__(self, cin, cout, relu=True, ratio=2, dw_size=3):
        super().__init__()
        self.cout = cout
        init_ch = math.ceil(cout / ratio)
        new_ch = init_ch * (ratio - 1)
        act = nn.ReLU() if relu else nn.Identity()
        self.primary_conv = nn.Sequential(nn.Conv2d(cin, init_ch, 1, 1, 0, bias=False),
                                          nn.BatchNorm2d(init_ch), act)
        self.cheap_operation = nn.Sequential(
            nn.Conv2d(init_ch, new_ch, dw_size, 1, dw_size // 2, groups=init_ch, bias=False),
            nn.BatchNorm2d(new_ch), copy.deepcopy(act))

    def forward(self, x):
        a = self.primary_conv(x)
        b = self.cheap_operation(a)
        return torch.cat([a, b], dim=1)[:, :self.cout]


class GhostSE(nn.Module):
    """x * hard_sigmoid(conv_expand(relu(conv_reduce(mean_hw(x))))), reduced = make_divisible(C * ratio, 4)."""

    def __init__(self, ch, ratio):
        super().__init__()
        rd = make_divisible(ch * ratio, 4)
        self.conv_reduce = nn.Conv2d(ch, rd, 1, bias=True)
        self.conv_expand = nn.Conv2d(rd, ch, 1, bias=True)

    def forward(self, x):
        s = x.mean(dim=(2, 3), keepdim=True)
        s = self.conv_expand(F.relu(self.conv_reduce(s)))
        return x * hard_sigmoid(s)


class GhostBottleneck(nn.Module):
    def __init__(self, cin, mid, cout, k, stride, se_ratio):
        super().__init__()
        self.stride = stride
        self.ghost1 = GhostModule(cin, mid, relu=True)
        if stride > 1:
            self.conv_dw = nn.Conv2d(mid, mid, k, stride, (k - 1) // 2, groups=mid, bias=False)
            self.bn_dw = nn.BatchNorm2d(mid)
        self.se = GhostSE(mid, se_ratio) if se_ratio > 0 else None
        self.ghost2 = GhostModule(mid, cout, relu=False)
        if cin == cout and stride == 1:
            self.shortcut = nn.Sequential()
        else:
            self.shortcut = nn.Sequential(
                nn.Conv2d(cin, cin, k, stride, (k - 1) // 2, groups=cin, bias=False),
                nn.BatchNorm2d(cin),
                nn.Conv2d(cin, cout, 1, 1, 0, bias=False),
                nn.BatchNorm2d(cout))

    def forward(self, x):
        y = self.ghost1(x)
        if self.stride > 1:
            y = self.bn_dw(self.conv_dw(y))
        if self.se is not None:
            y = self.se(y)
        y = self.ghost2(y)
        return y + self.shortcut(x)


class ConvBnAct(nn.Module):
    """conv (no bias) + BN (`bn1`) + ReLU, as the GhostNet release names them."""

    def __init__(self, cin, cout, k=1):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, 1, k // 2, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)

    def forward(self, x):
        return F.relu(self.bn1(self.conv(x)))


class GhostNet(nn.Module):
    def __init__(self, num_classes=1000, width=1.0):
        super().__init__()
        stem = make_divisible(16 * width, 4)
        self.conv_stem = nn.Conv2d(3, stem, 3, 2, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(stem)
        cin, stages, exp = stem, [], None
        for cfg in GHOSTNET_CFGS:
            blocks = []
            for k, exp, c, se, s in cfg:
                cout = make_divisible(c * width, 4)
                mid = make_divisible(exp * width, 4)
                blocks.append(GhostBottleneck(cin, mid, cout, k, s, se))
                cin = cout
            stages.append(nn.Sequential(*blocks))
        cout = make_divisible(exp * width, 4)
        stages.append(nn.Sequential(ConvBnAct(cin, cout, 1)))
        self.blocks = nn.Sequential(*stages)
        self.conv_head = nn.Conv2d(cout, 1280, 1, 1, 0, bias=True)
        self.classifier = nn.Linear(1280, num_classes)   # dropout 0.2 before it in training; none in eval

    def forward(self, x):
        x = F.relu(self.bn1(self.conv_stem(x)))
        x = self.blocks(x)
        x = x.mean(dim=(2, 3), keepdim=True)
        x = F.relu(self.conv_head(x)).flatten(1)
        return self.classifier(x)


# =============================================================================================
# RepVGG A0 / B0
# =============================================================================================
REPVGG = {
    # layers per stage 1..4 (stage0 is one block), width multipliers (a, a, a, b)
    "a0": dict(blocks=(2, 4, 14, 1), width=(0.75, 0.75, 0.75, 2.5)),
    "b0": dict(blocks=(4, 6, 16, 1), width=(1.0, 1.0, 1.0, 2.5)),
}


def _conv_bn(cin, cout, k, stride, pad):
    seq = nn.Sequential()
    seq.add_module("conv", nn.Conv2d(cin, cout, k, stride, pad, bias=False))
    seq.add_module("bn", nn.BatchNorm2d(cout))
    return seq


class RepVGGBlock(nn.Module):
    """Train time: ReLU(BN(conv3x3(x)) + BN(conv1x1(x)) + BN(x) [identity only if Cin==Cout and stride 1]).
    reparameterize() folds the three branches into one 3x3 conv with bias (`rbr_reparam`)."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.cin, self.cout, self.stride = cin, cout, stride
        self.rbr_identity = nn.BatchNorm2d(cin) if (cin == cout and stride == 1) else None
        self.rbr_dense = _conv_bn(cin, cout, 3, stride, 1)
        self.rbr_1x1 = _conv_bn(cin, cout, 1, stride, 0)
        self.rbr_reparam = None

    def forward(self, x):
        if self.rbr_reparam is not None:
            return F.relu(self.rbr_reparam(x))
        y = self.rbr_dense(x) + self.rbr_1x1(x)
        if self.rbr_identity is not None:
            y = y + self.rbr_identity(x)
        return F.relu(y)

    @staticmethod
    def _fold(w, bn):
        t = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        return w * t.reshape(-1, 1, 1, 1), bn.bias - bn.running_mean * t

    def equivalent_kernel_bias(self):
        w3, b3 = self._fold(self.rbr_dense.conv.weight, self.rbr_dense.bn)
        w1, b1 = self._fold(self.rbr_1x1.conv.weight, self.rbr_1x1.bn)
        w, b = w3 + F.pad(w1, [1, 1, 1, 1]), b3 + b1
        if self.rbr_identity is not None:
            ident = torch.zeros_like(w3)
            for i in range(self.cin):
                ident[i, i, 1, 1] = 1.0
            wi, bi = self._fold(ident, self.rbr_identity)
            w, b = w + wi, b + bi
        return w, b

    @torch.no_grad()
    def reparameterize(self):
        if self.rbr_reparam is not None:
            return
        w, b = self.equivalent_kernel_bias()
        conv = nn.Conv2d(self.cin, self.cout, 3, self.stride, 1, bias=True).to(w.dtype)
        conv.weight.copy_(w)
        conv.bias.copy_(b)
        del self.rbr_dense, self.rbr_1x1, self.rbr_identity
        self.rbr_dense = self.rbr_1x1 = self.rbr_identity = None
        self.rbr_reparam = conv


class RepVGG(nn.Module):
    def __init__(self, variant="a0", num_classes=1000):
        super().__init__()
        cfg = REPVGG[variant]
        a = cfg["width"]
        cin = min(64, int(64 * a[0]))
        self.stage0 = RepVGGBlock(3, cin, 2)
        for s, (base, n) in enumerate(zip((64, 128, 256, 512), cfg["blocks"])):
            cout = int(base * a[s])
            blocks = []
            for j in range(n):
                blocks.append(RepVGGBlock(cin, cout, 2 if j == 0 else 1))
                cin = cout
            setattr(self, "stage%d" % (s + 1), nn.Sequential(*blocks))
        self.linear = nn.Linear(cin, num_classes)

    def all_blocks(self):
        yield self.stage0
        for s in range(1, 5):
            yield from getattr(self, "stage%d" % s)

    def forward(self, x):
        x = self.stage0(x)
        for s in range(1, 5):
            x = getattr(self, "stage%d" % s)(x)
        return self.linear(x.mean(dim=(2, 3)))


def repvgg_reparameterize(model):
    """A deep copy with every block folded (BatchNorm in eval mode)."""
    m = copy.deepcopy(model).eval()
    for blk in m.all_blocks():
        blk.reparameterize()
    return m


# =============================================================================================
# MobileViT-XS
# =============================================================================================
class ConvNormAct(nn.Module):
    """conv (no bias) + BN (+ SiLU); keys `conv.*`, `bn.*` as timm's ConvNormAct."""

    def __init__(self, cin, cout, k, stride=1, groups=1, act=True):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(cout)
        self.act = nn.SiLU() if act else nn.Identity()

    def forward(self, x):
        return self.act(self.bn(self.conv(x)))


class MV2Block(nn.Module):
    """MobileNetV2 inverted residual: 1x1 expand (xE) + BN + SiLU, 3x3 depthwise (stride) + BN + SiLU,
    1x1 project + BN (linear); identity shortcut when Cin == Cout and stride 1."""

    def __init__(self, cin, cout, stride, expansion=4.0):
        super().__init__()
        mid = make_divisible(cin * expansion, 8)
        self.conv1_1x1 = ConvNormAct(cin, mid, 1)
        self.conv2_kxk = ConvNormAct(mid, mid, 3, stride, groups=mid)
        self.conv3_1x1 = ConvNormAct(mid, cout, 1, act=False)
        self.residual = cin == cout and stride == 1

    def forward(self, x):
        y = self.conv3_1x1(self.conv2_kxk(self.conv1_1x1(x)))
        return x + y if self.residual else y


class Attention(nn.Module):
    """Multi-head self-attention on (B, N, C) tokens: qkv = Linear(C, 3C) (output index j*C + h*hd + d,
    j in q,k,v), softmax(q k^T / sqrt(hd)) v per head, heads concatenated (index h*hd + d), Linear(C, C)."""

    def __init__(self, dim, heads):
        super().__init__()
        assert dim % heads == 0
        self.heads, self.hd = heads, dim // heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=True)
        self.proj = nn.Linear(dim, dim, bias=True)

    def forward(self, x):
        B, N, C = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.heads, self.hd).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]                       # (B, heads, N, hd)
        a = torch.softmax((q @ k.transpose(-2, -1)) * (self.hd ** -0.5), dim=-1)
        y = (a @ v).transpose(1, 2).reshape(B, N, C)
        return self.proj(y)

    def attention_macs(self, tokens_in):
        """q k^T and attn v: 2 * N * N * hd per head per sequence; tokens_in: (B, N, C)."""
        B, N, _ = tokens_in.shape
        return 2 * B * self.heads * N * N * self.hd


class Mlp(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(F.silu(self.fc1(x)))


class TransformerLayer(nn.Module):
    """Pre-norm: x + attn(LN(x)), then x + mlp(LN(x)); LayerNorm eps 1e-5."""

    def __init__(self, dim, heads, mlp_ratio=2.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-5)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-5)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


def unfold_patches(x, ph, pw):
    """(B, C, H, W), H % ph == W % pw == 0 -> (B*P, N, C) with P = ph*pw, N = (H/ph)*(W/pw):
    out[b*P + i*pw + j, r*nw + s, c] = x[b, c, r*ph + i, s*pw + j]."""
    B, C, H, W = x.shape
    nh, nw = H // ph, W // pw
    t = x.reshape(B, C, nh, ph, nw, pw).permute(0, 3, 5, 2, 4, 1)   # (B, ph, pw, nh, nw, C)
    return t.reshape(B * ph * pw, nh * nw, C)


def fold_patches(t, B, H, W, ph, pw):
    """Inverse of unfold_patches: (B*P, N, C) -> (B, C, H, W)."""
    C = t.shape[-1]
    nh, nw = H // ph, W // pw
    x = t.reshape(B, ph, pw, nh, nw, C).permute(0, 5, 3, 1, 4, 2)   # (B, C, nh, ph, nw, pw)
    return x.reshape(B, C, H, W)


class MobileViTBlock(nn.Module):
    """Local: conv3x3+BN+SiLU, conv1x1 (no BN, no act) to `dim`. Global: unfold into ph x pw patches (a map whose
    size is not a multiple of the patch is first resized bilinearly, align_corners=False, to the next multiple,
    and resized back after folding), `depth` transformer layers, LayerNorm, fold. Then conv1x1+BN+SiLU back to C,
    concat [input, that] on channels, conv3x3+BN+SiLU fusion (2C -> C)."""

    def __init__(self, ch, dim, depth, heads=4, patch=2, mlp_ratio=2.0):
        super().__init__()
        self.patch = patch
        self.conv_kxk = ConvNormAct(ch, ch, 3)
        self.conv_1x1 = nn.Conv2d(ch, dim, 1, bias=False)
        self.transformer = nn.Sequential(*[TransformerLayer(dim, heads, mlp_ratio) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim, eps=1e-5)
        self.conv_proj = ConvNormAct(dim, ch, 1)
        self.conv_fusion = ConvNormAct(2 * ch, ch, 3)

    def forward(self, x):
        y = self.conv_1x1(self.conv_kxk(x))
        B, _, H, W = y.shape
        p = self.patch
        Hp, Wp = int(math.ceil(H / p)) * p, int(math.ceil(W / p)) * p
        resized = (Hp, Wp) != (H, W)
        if resized:
            y = F.interpolate(y, size=(Hp, Wp), mode="bilinear", align_corners=False)
        t = self.norm(self.transformer(unfold_patches(y, p, p)))
        y = fold_patches(t, B, Hp, Wp, p, p)
        if resized:
            y = F.interpolate(y, size=(H, W), mode="bilinear", align_corners=False)
        y = self.conv_proj(y)
        return self.conv_fusion(torch.cat([x, y], dim=1))


# XS (ml-cvnets mode "x_small"): MV2 expansion 4; stage = list of ("mv2", cout, stride) / ("vit", dim, depth)
MOBILEVIT_XS = dict(
    stem=16,
    stages=[
        [("mv2", 32, 1)],
        [("mv2", 48, 2), ("mv2", 48, 1), ("mv2", 48, 1)],
        [("mv2", 64, 2), ("vit", 96, 2)],
        [("mv2", 80, 2), ("vit", 120, 4)],
        [("mv2", 96, 2), ("vit", 144, 3)],
    ],
    final=384, heads=4, patch=2, mlp_ratio=2.0, expansion=4.0,
)


class MobileViT(nn.Module):
    def __init__(self, cfg=MOBILEVIT_XS, num_classes=1000):
        super().__init__()
        self.stem = ConvNormAct(3, cfg["stem"], 3, 2)
        cin, stages = cfg["stem"], []
        for stage in cfg["stages"]:
            blocks = []
            for kind, a, b in stage:
                if kind == "mv2":
                    blocks.append(MV2Block(cin, a, b, cfg["expansion"]))
                    cin = a
                else:
                    blocks.append(MobileViTBlock(cin, a, b, cfg["heads"], cfg["patch"], cfg["mlp_ratio"]))
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.final_conv = ConvNormAct(cin, cfg["final"], 1)
        self.head = nn.Module()
        self.head.fc = nn.Linear(cfg["final"], num_classes)   # dropout 0.1 before it in training; none in eval

    def forward(self, x):
        x = self.final_conv(self.stages(self.stem(x)))
        return self.head.fc(x.mean(dim=(2, 3)))


# =============================================================================================
BUILDERS = {
    "mobilenet_v1": lambda: MobileNetV1(),
    "ghostnet": lambda: GhostNet(),
    "repvgg_a0": lambda: RepVGG("a0"),
    "repvgg_b0": lambda: RepVGG("b0"),
    "mobilevit_xs": lambda: MobileViT(),
}

if __name__ == "__main__":
    for name, build in BUILDERS.items():
        m = build().eval()
        line = "%-13s params %d" % (name, count_params(m))
        if name.startswith("repvgg"):
            line += "  fused %d" % count_params(repvgg_reparameterize(m))
        print(line)
