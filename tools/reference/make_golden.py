"""Write golden test data for one MobileOne configuration.

    /usr/bin/python3 tools/reference/make_golden.py --config NAME --out DIR [--seed N]

Files written to DIR:
  unfused.pth.tar, fused.pth.tar          torch.save(state_dict) in the authors' key naming (float32)
  timm_unfused.safetensors, timm_fused.safetensors   same tensors, timm key naming, hand-written safetensors
  input.npy                               float32 (N, C, H, W)
  logits.npy                              unfused model (eval), computed in float64 from the saved float32
                                          weights, stored float32
  logits_fused.npy                        fused model as stored in fused.pth.tar (float32 weights) run in
                                          float64, stored float32
  features_0.npy .. features_4.npy        unfused model, outputs of stage0..stage4 (float64 -> float32)
  config.json
"""

import argparse
import collections
import copy
import json
import os
import re
import struct
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mobileone_ref as mo  # noqa: E402

CONFIGS = {
    "tiny-k4": dict(channels=[8, 8, 16, 24, 32], blocks=[1, 2, 1, 1], k=4, se_pairs=[0, 0, 0, 0],
                    num_classes=10, in_channels=3, stem_stride=2, input_shape=[2, 3, 40, 40]),
    "tiny-se": dict(channels=[8, 12, 16, 32, 48], blocks=[1, 2, 3, 1], k=1, se_pairs=[0, 0, 1, 1],
                    num_classes=7, in_channels=3, stem_stride=2, input_shape=[1, 3, 57, 45]),
    "tiny-gray": dict(channels=[8, 8, 16, 16, 24], blocks=[1, 1, 1, 1], k=2, se_pairs=[0, 0, 0, 0],
                      num_classes=10, in_channels=1, stem_stride=1, input_shape=[3, 1, 28, 28]),
}
for _z in mo.ZOO:
    CONFIGS[_z] = dict(mo.zoo_kwargs(_z), input_shape=[1, 3, 224, 224])

LOGIT_STD_TARGET = 3.0


# ---------------------------------------------------------------------------------------------
# random, non-trivial weights
# ---------------------------------------------------------------------------------------------
@torch.no_grad()
def randomize(model, g):
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.weight.uniform_(0.5, 1.5, generator=g)
            m.bias.normal_(0.0, 0.1, generator=g)
            m.running_mean.normal_(0.0, 0.2, generator=g)
            m.running_var.uniform_(0.5, 2.0, generator=g)
            m.num_batches_tracked.fill_(int(torch.randint(1, 1_000_000, (1,), generator=g)))
        elif isinstance(m, torch.nn.Conv2d):
            fan_in = m.weight[0].numel()
            m.weight.normal_(0.0, (2.0 / fan_in) ** 0.5, generator=g)
            if m.bias is not None:
                m.bias.normal_(0.0, 0.1, generator=g)
        elif isinstance(m, torch.nn.Linear):
            m.weight.normal_(0.0, (1.0 / m.in_features) ** 0.5, generator=g)
            m.bias.normal_(0.0, 0.1, generator=g)


def _round_sig(v, digits=4):
    return float("%.*g" % (digits, v))


@torch.no_grad()
def calibrate(model, x):
    """Data-dependent rescaling so activations stay O(1) through the depth: for each block, scale all
    branch BN (gamma, beta) pairs by one factor c so that the summed pre-activation has std 1 on the
    calibration input (the block output is linear in c). Then scale the classifier so the logits have
    std LOGIT_STD_TARGET. Statistics are taken in float64 and the factors rounded to 4 significant
    digits, so the stored float32 weights do not depend on BLAS/thread-count rounding."""
    model.eval()
    m64 = copy.deepcopy(model).double().eval()
    x = x.double()

    def bns(blk):
        out = [br.bn for br in blk.rbr_conv]
        if blk.rbr_scale is not None:
            out.append(blk.rbr_scale.bn)
        if blk.rbr_skip is not None:
            out.append(blk.rbr_skip)
        return out

    for blk32, blk64 in zip(model.all_blocks(), m64.all_blocks()):
        c = _round_sig(1.0 / float(blk64.branch_sum(x).std()))
        for bn in bns(blk32) + bns(blk64):
            bn.weight.mul_(c)
            bn.bias.mul_(c)
        x = blk64(x)
    feats = m64.gap(x).flatten(1)
    z = feats @ m64.linear.weight.t()
    model.linear.weight.mul_(_round_sig(LOGIT_STD_TARGET / float(z.std())))


# ---------------------------------------------------------------------------------------------
# file writers
# ---------------------------------------------------------------------------------------------
def timm_name(key):
    k = key
    k = re.sub(r"^stage0\.", "stem.", k)
    k = re.sub(r"^stage([1-4])\.(\d+)\.", lambda m: "stages.%d.%s." % (int(m.group(1)) - 1, m.group(2)), k)
    k = re.sub(r"^linear\.", "head.fc.", k)
    k = k.replace(".rbr_conv.", ".conv_kxk.")
    k = k.replace(".rbr_scale.", ".conv_scale.")
    k = k.replace(".rbr_skip.", ".identity.")
    k = k.replace(".se.reduce.", ".attn.fc1.")
    k = k.replace(".se.expand.", ".attn.fc2.")
    return k


_ST_DTYPES = {torch.float32: ("F32", "<f4"), torch.float64: ("F64", "<f8"), torch.int64: ("I64", "<i8"),
              torch.float16: ("F16", "<f2"), torch.int32: ("I32", "<i4")}


def write_safetensors(tensors, path, metadata=None):
    """safetensors layout: u64 LE header length N, N bytes of JSON (keys sorted, padded with spaces to a
    multiple of 8), then the raw little-endian data; data_offsets are relative to the data start."""
    header = {}
    if metadata is not None:
        header["__metadata__"] = metadata
    blobs, off = [], 0
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        st_dtype, np_dtype = _ST_DTYPES[t.dtype]
        raw = t.numpy().astype(np_dtype, copy=False).tobytes(order="C")
        header[name] = {"dtype": st_dtype, "shape": list(t.shape), "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    hjson = json.dumps(header, sort_keys=True, separators=(",", ":")).encode("utf-8")
    hjson += b" " * ((8 - len(hjson) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hjson)))
        f.write(hjson)
        for b in blobs:
            f.write(b)


def read_safetensors(path):
    """Minimal reader used to self-check the writer."""
    with open(path, "rb") as f:
        data = f.read()
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    base = 8 + n
    out = {}
    rev = {v[0]: v[1] for v in _ST_DTYPES.values()}
    for k, v in header.items():
        if k == "__metadata__":
            continue
        a, b = v["data_offsets"]
        out[k] = np.frombuffer(data[base + a:base + b], dtype=rev[v["dtype"]]).reshape(v["shape"])
    return out


def save_npy(path, arr):
    np.save(path, np.ascontiguousarray(arr, dtype=np.float32))


# ---------------------------------------------------------------------------------------------
def make(name, out, seed):
    cfg = CONFIGS[name]
    t0 = time.time()
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    kw = {k: v for k, v in cfg.items() if k != "input_shape"}
    model = mo.MobileOne(**kw).eval()
    randomize(model, g)

    x32 = torch.randn(*cfg["input_shape"], generator=g)          # golden input
    xcal = torch.randn(*cfg["input_shape"], generator=g)         # calibration input
    calibrate(model, xcal)

    os.makedirs(out, exist_ok=True)
    # unfused state_dict, saved BEFORE fusing
    sd_unfused = model.state_dict()
    torch.save(sd_unfused, os.path.join(out, "unfused.pth.tar"))

    # float64 golden of the unfused model (exact promotion of the stored float32 weights)
    m64 = copy.deepcopy(model).double().eval()
    x64 = x32.double()
    with torch.no_grad():
        feats = m64.forward_features(x64)
        logits64 = m64.linear(m64.gap(feats[-1]).flatten(1))

    # fuse in float64 (exact check), then store the float32-rounded fused weights
    f64 = mo.reparameterize_model(m64)
    with torch.no_grad():
        logits_f64_exact = f64(x64)
    scale = float(logits64.abs().max())
    d_exact = float((logits_f64_exact - logits64).abs().max())
    assert d_exact <= 1e-9 * max(scale, 1.0), "fused/unfused mismatch %g (max|logit| %g)" % (d_exact, scale)

    fused32 = copy.deepcopy(f64).float()
    sd_fused = fused32.state_dict()
    torch.save(sd_fused, os.path.join(out, "fused.pth.tar"))
    with torch.no_grad():
        logits_fused = copy.deepcopy(fused32).double()(x64)
    d_f32 = float((logits_fused - logits64).abs().max())
    # also the plain float32 forward of the unfused net, for tolerance guidance
    with torch.no_grad():
        logits32 = model(x32)
    d_32 = float((logits32.double() - logits64).abs().max())

    # timm-named safetensors
    for tag, sd in (("unfused", sd_unfused), ("fused", sd_fused)):
        renamed = collections.OrderedDict((timm_name(k), v) for k, v in sd.items())
        assert len(renamed) == len(sd), "timm renaming collided"
        p = os.path.join(out, "timm_%s.safetensors" % tag)
        write_safetensors(renamed, p, metadata={"format": "pt"})
        back = read_safetensors(p)
        assert set(back) == set(renamed)
        for k, v in renamed.items():
            assert np.array_equal(back[k], v.numpy()), k

    # reload check of the .pth.tar files
    for tag, sd in (("unfused", sd_unfused), ("fused", sd_fused)):
        back = torch.load(os.path.join(out, "%s.pth.tar" % tag))
        assert list(back) == list(sd) and all(torch.equal(back[k], sd[k]) for k in sd)

    save_npy(os.path.join(out, "input.npy"), x32.numpy())
    save_npy(os.path.join(out, "logits.npy"), logits64.numpy())
    save_npy(os.path.join(out, "logits_fused.npy"), logits_fused.numpy())
    for i, f in enumerate(feats):
        save_npy(os.path.join(out, "features_%d.npy" % i), f.numpy())

    train_params = mo.count_params(model)
    fused_params = mo.count_params(fused32)
    conf = {
        "name": name,
        "channels": cfg["channels"],
        "blocks": cfg["blocks"],
        "k": cfg["k"],
        "se_pairs": cfg["se_pairs"],
        "num_classes": cfg["num_classes"],
        "in_channels": cfg["in_channels"],
        "stem_stride": cfg["stem_stride"],
        "input_shape": cfg["input_shape"],
        "fused_params": fused_params,
        "train_params": train_params,
        "torch_version": torch.__version__,
        "seed": seed,
        "logits_std": float(logits64.std()),
        "logits_max_abs": scale,
        "max_abs_diff_fused64_vs_unfused64": d_exact,
        "max_abs_diff_fused_f32weights_vs_unfused64": d_f32,
        "feature_shapes": [list(f.shape) for f in feats],
    }
    with open(os.path.join(out, "config.json"), "w") as fh:
        json.dump(conf, fh, indent=2)
        fh.write("\n")

    feat_std = ", ".join("%.3g" % float(f.std()) for f in feats)
    total = sum(os.path.getsize(os.path.join(out, fn)) for fn in os.listdir(out))
    print("%s: logits std %.3f max|logit| %.3f | feature std [%s]" % (name, conf["logits_std"], scale, feat_std))
    print("  fused(f64 exact) vs unfused f64: %.3g | fused(f32 weights) in f64: %.3g | unfused f32 forward: %.3g"
          % (d_exact, d_f32, d_32))
    print("  params fused %d train %d | %d files, %.1f KB | %.1fs -> %s"
          % (fused_params, train_params, len(os.listdir(out)), total / 1024, time.time() - t0, out))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", required=True, choices=sorted(CONFIGS))
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    make(a.config, a.out, a.seed)


if __name__ == "__main__":
    main()
