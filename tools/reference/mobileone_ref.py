"""Independent PyTorch reference implementation of MobileOne (Vasu et al., arXiv 2206.04040).

Written against shared/docs/mobileone.md. Module structure mirrors the authors' release so that
`model.state_dict()` has exactly the authors' key names:

    stage0.rbr_conv.0.conv.weight, stage0.rbr_conv.0.bn.*, stage0.rbr_scale.conv.weight, ...
    stage{1..4}.{j}.{rbr_skip,rbr_conv.{n},rbr_scale,se.reduce,se.expand}.*   (j even: depthwise, j odd: pointwise)
    linear.{weight,bias}
and after re-parameterisation
    stage0.reparam_conv.{weight,bias}, stage{i}.{j}.reparam_conv.{weight,bias}, se.*, linear.*

Run it directly to check the S0..S4 parameter counts against the spec table:
    /usr/bin/python3 tools/reference/mobileone_ref.py
"""

import copy

import torch
import torch.nn as nn
import torch.nn.functional as F


class SEBlock(nn.Module):
    """Squeeze-Excite: x * sigmoid(expand(relu(reduce(mean_hw(x)))))."""

    def __init__(self, channels, rd_ratio=0.0625):
        super().__init__()
        hidden = int(channels * rd_ratio)
        self.reduce = nn.Conv2d(channels, hidden, kernel_size=1, stride=1, bias=True)
        self.expand = nn.Conv2d(hidden, channels, kernel_size=1, stride=1, bias=True)

    def forward(self, x):
        s = x.mean(dim=(2, 3), keepdim=True)
        s = F.relu(self.reduce(s))
        s = torch.sigmoid(self.expand(s))
        return x * s


def conv_bn(in_ch, out_ch, kernel, stride, padding, groups, dilation=1):
    seq = nn.Sequential()
    seq.add_module("conv", nn.Conv2d(in_ch, out_ch, kernel, stride, padding, dilation=dilation, groups=groups,
                                     bias=False))
    seq.add_module("bn", nn.BatchNorm2d(out_ch))
    return seq


class MobileOneBlock(nn.Module):
    """Train-time block: k conv+BN branches, 1x1 scale branch (K>1), BN skip (Cin==Cout, s==1);
    output = ReLU(SE(sum of branches)). dilation (3x3 blocks of a dense-prediction backbone) dilates the KxK
    convolutions with padding = dilation * (K // 2); the 1x1 and identity branches fold into the centre tap as
    before. skip=False leaves out the BN skip branch even at stride 1 (a dilated stage's first block keeps the
    structure of the stride-2 block it replaces, as the authors' checkpoints have it)."""

    def __init__(self, in_ch, out_ch, kernel, stride=1, groups=1, use_se=False, k=1, dilation=1, skip=True):
        super().__init__()
        self.in_ch, self.out_ch = in_ch, out_ch
        self.kernel, self.stride, self.padding, self.groups = kernel, stride, kernel // 2 * dilation, groups
        self.dilation = dilation
        self.k = k
        # registration order follows the authors' release (se, rbr_skip, rbr_conv, rbr_scale)
        self.se = SEBlock(out_ch) if use_se else nn.Identity()
        self.activation = nn.ReLU()
        self.reparam_conv = None
        self.rbr_skip = nn.BatchNorm2d(in_ch) if (skip and in_ch == out_ch and stride == 1) else None
        self.rbr_conv = nn.ModuleList(
            [conv_bn(in_ch, out_ch, kernel, stride, self.padding, groups, dilation) for _ in range(k)])
        self.rbr_scale = conv_bn(in_ch, out_ch, 1, stride, 0, groups) if kernel > 1 else None

    def branch_sum(self, x):
        """Sum of all train-time branches (pre-SE, pre-ReLU)."""
        out = 0
        if self.rbr_skip is not None:
            out = out + self.rbr_skip(x)
        if self.rbr_scale is not None:
            out = out + self.rbr_scale(x)
        for b in self.rbr_conv:
            out = out + b(x)
        return out

    def forward(self, x):
        if self.reparam_conv is not None:
            return self.activation(self.se(self.reparam_conv(x)))
        return self.activation(self.se(self.branch_sum(x)))

    # ---- re-parameterisation -------------------------------------------------------------
    @staticmethod
    def _fold(kernel, bn):
        """W' = W * t, b' = beta - mean * t, t = gamma / sqrt(var + eps)."""
        t = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        return kernel * t.reshape(-1, 1, 1, 1), bn.bias - bn.running_mean * t

    def fused_kernel_bias(self):
        K = self.kernel
        ref = self.rbr_conv[0].conv.weight
        W = torch.zeros(self.out_ch, self.in_ch // self.groups, K, K, dtype=ref.dtype)
        b = torch.zeros(self.out_ch, dtype=ref.dtype)
        for br in self.rbr_conv:
            w_, b_ = self._fold(br.conv.weight, br.bn)
            W, b = W + w_, b + b_
        if self.rbr_scale is not None:
            w_, b_ = self._fold(self.rbr_scale.conv.weight, self.rbr_scale.bn)
            p = K // 2
            W, b = W + F.pad(w_, [p, p, p, p]), b + b_
        if self.rbr_skip is not None:
            cin_g = self.in_ch // self.groups
            ident = torch.zeros(self.in_ch, cin_g, K, K, dtype=ref.dtype)
            for i in range(self.in_ch):
                ident[i, i % cin_g, K // 2, K // 2] = 1.0
            w_, b_ = self._fold(ident, self.rbr_skip)
            W, b = W + w_, b + b_
        return W, b

    @torch.no_grad()
    def reparameterize(self):
        if self.reparam_conv is not None:
            return
        W, b = self.fused_kernel_bias()
        conv = nn.Conv2d(self.in_ch, self.out_ch, self.kernel, self.stride, self.padding, dilation=self.dilation,
                         groups=self.groups, bias=True).to(W.dtype)
        conv.weight.copy_(W)
        conv.bias.copy_(b)
        del self.rbr_conv, self.rbr_scale, self.rbr_skip
        self.rbr_conv, self.rbr_scale, self.rbr_skip = [], None, None
        self.reparam_conv = conv


class MobileOne(nn.Module):
    def __init__(self, channels=(48, 48, 128, 256, 1024), blocks=(2, 8, 10, 1), k=1,
                 se_pairs=(0, 0, 0, 0), num_classes=1000, in_channels=3, stem_stride=2, output_stride=32):
        """output_stride 16 or 8 (dense prediction): the last stage's (8: also stage3's) stride-2 block runs at
        stride 1 with the dilation in force before the stage (and without an rbr_skip, as at stride 2), the
        dilation then doubles for the stage's later 3x3 blocks (torchvision ResNet's replace_stride_with_dilation
        rule; the Go side's model.Config.DenseStrides). The state_dict keys are the classification model's."""
        super().__init__()
        assert output_stride in (8, 16, 32)
        dilated = {32: 0, 16: 1, 8: 2}[output_stride]
        assert len(channels) == 5 and len(blocks) == 4 and len(se_pairs) == 4
        self.channels, self.blocks, self.k = list(channels), list(blocks), k
        self.se_pairs, self.num_classes = list(se_pairs), num_classes
        self.in_channels, self.stem_stride = in_channels, stem_stride
        # stem: dense 3x3, k=1 always, never SE
        self.stage0 = MobileOneBlock(in_channels, channels[0], 3, stem_stride, 1, False, k=1)
        c_in = channels[0]
        dil = 1
        for s in range(4):
            c_out, n, n_se = channels[s + 1], blocks[s], se_pairs[s]
            assert 0 <= n_se <= n, "se pairs exceed pairs in stage %d" % (s + 1)
            mods = []
            for ix in range(n):
                stride = 2 if ix == 0 else 1
                use_se = ix >= n - n_se
                d, skip = dil, True
                if stride == 2 and s >= 4 - dilated:
                    stride, dil, skip = 1, dil * 2, False    # the stride-2 block's structure: no rbr_skip
                mods.append(MobileOneBlock(c_in, c_in, 3, stride, c_in, use_se, k, dilation=d, skip=skip))  # depthwise
                mods.append(MobileOneBlock(c_in, c_out, 1, 1, 1, use_se, k))           # pointwise
                c_in = c_out
            setattr(self, "stage%d" % (s + 1), nn.Sequential(*mods))
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.linear = nn.Linear(c_in, num_classes)

    def all_blocks(self):
        yield self.stage0
        for s in range(1, 5):
            for blk in getattr(self, "stage%d" % s):
                yield blk

    def forward_features(self, x):
        feats = []
        x = self.stage0(x)
        feats.append(x)
        for s in range(1, 5):
            x = getattr(self, "stage%d" % s)(x)
            feats.append(x)
        return feats

    def forward(self, x):
        x = self.forward_features(x)[-1]
        x = self.gap(x).flatten(1)
        return self.linear(x)


def reparameterize_model(model):
    """Return a deep copy with every block folded into a single reparam_conv (eval-mode BN)."""
    m = copy.deepcopy(model).eval()
    for blk in m.all_blocks():
        blk.reparameterize()
    return m


ZOO = {
    "s0": dict(width=(0.75, 1.0, 1.0, 2.0), k=4, se_pairs=(0, 0, 0, 0)),
    "s1": dict(width=(1.5, 1.5, 2.0, 2.5), k=1, se_pairs=(0, 0, 0, 0)),
    "s2": dict(width=(1.5, 2.0, 2.5, 4.0), k=1, se_pairs=(0, 0, 0, 0)),
    "s3": dict(width=(2.0, 2.5, 3.0, 4.0), k=1, se_pairs=(0, 0, 0, 0)),
    "s4": dict(width=(3.0, 3.5, 3.5, 4.0), k=1, se_pairs=(0, 0, 5, 1)),
}

# spec table: (fused params, train-time params)
SPEC_PARAMS = {
    "s0": (2078504, 5293272),
    "s1": (4764840, 4825192),
    "s2": (7808168, 7884648),
    "s3": (10078312, 10170600),
    "s4": (14838352, 14951248),
}


def zoo_channels(width):
    a1, a2, a3, a4 = width
    return [min(64, int(64 * a1)), int(64 * a1), int(128 * a2), int(256 * a3), int(512 * a4)]


def zoo_kwargs(name, num_classes=1000):
    z = ZOO[name]
    return dict(channels=zoo_channels(z["width"]), blocks=[2, 8, 10, 1], k=z["k"],
                se_pairs=list(z["se_pairs"]), num_classes=num_classes, in_channels=3, stem_stride=2)


def mobileone(name, num_classes=1000):
    return MobileOne(**zoo_kwargs(name, num_classes))


def count_params(model):
    """Learnable tensors only: conv/linear weight+bias, BN weight+bias (running stats excluded)."""
    return sum(p.numel() for p in model.parameters())


def check_zoo_params(verbose=True):
    ok = True
    for name in ZOO:
        m = mobileone(name)
        train = count_params(m)
        fused = count_params(reparameterize_model(m))
        sf, st = SPEC_PARAMS[name]
        good = (fused == sf and train == st)
        ok &= good
        if verbose:
            print("%s channels=%s fused=%d (spec %d) train=%d (spec %d) %s" % (
                name.upper(), zoo_channels(ZOO[name]["width"]), fused, sf, train, st,
                "OK" if good else "MISMATCH"))
    return ok


if __name__ == "__main__":
    assert check_zoo_params(), "parameter counts differ from the spec table"
    print("all parameter counts match the spec table")
