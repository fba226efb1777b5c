#!/usr/bin/python3
"""Regenerate the imageproc golden files from torchvision itself.

Run with Debian's interpreter, which has torch/torchvision/PIL:
    cd imageproc/testdata && /usr/bin/python3 make_golden.py

Writes small deterministic test images into images/, and into golden/:
  * <case>.npy  float32 (C, H, W): the torchvision eval pipeline
        PIL.Image.open(f).convert('RGB' or 'L') -> Resize(S, BILINEAR)
        -> CenterCrop(C) -> ToTensor() -> Normalize(mean, std)
  * <case>.npy  uint8 (H, W[, 3]): PIL's own img.convert(...).resize((w, h),
        BILINEAR)
and cases.json describing every case for the Go test.
Versions used are recorded in cases.json.
"""
import io
import json
import os

import numpy as np
import PIL
import PIL.features
import torch
import torchvision
from PIL import Image
from torchvision import transforms

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)

here = os.path.dirname(os.path.abspath(__file__))
imdir = os.path.join(here, "images")
gdir = os.path.join(here, "golden")
os.makedirs(imdir, exist_ok=True)
os.makedirs(gdir, exist_ok=True)
rng = np.random.default_rng(20240611)


def scene(w, h, channels=3):
    """Smooth gradients + noise + sharp edges, uint8 (h, w, channels)."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    out = np.empty((h, w, channels))
    for c in range(channels):
        g = 127 + 100 * np.sin(x / (7.0 + 5 * c) + y / (11.0 + 3 * c))
        g += 60 * (x / w) - 30 * (y / h)
        g += rng.normal(0, 18, size=(h, w))
        # sharp edges: a checker block, a bright bar and a dark disc
        g[(((x // 9) + (y // 9)) % 2 == 0) & (x < w / 3) & (y < h / 2)] = 255 if c != 1 else 0
        g[(np.abs(x - 0.7 * w) < 2.5)] = 250 - 100 * c
        g[((x - 0.6 * w) ** 2 + (y - 0.7 * h) ** 2) < (min(w, h) / 6) ** 2] = 5 + 40 * c
        out[..., c] = g
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


images = {}


def add(name, data, fmt, **save):
    path = os.path.join(imdir, name)
    with open(path, "wb") as f:
        f.write(data)
    images[name] = fmt


def save(im, name, fmt, **kw):
    b = io.BytesIO()
    im.save(b, fmt, **kw)
    add(name, b.getvalue(), fmt)


save(Image.fromarray(scene(300, 200)), "rgb300x200.png", "PNG")
save(Image.fromarray(scene(199, 257)), "rgb199x257.png", "PNG")
rgba = scene(64, 64, 4)
rgba[:8, :, 3] = 0  # fully transparent rows that still carry colour
rgba[8:16, :, 3] = 1
save(Image.fromarray(rgba, "RGBA"), "rgba64x64.png", "PNG")
save(Image.fromarray(scene(150, 100, 1)[..., 0], "L"), "gray150x100.png", "PNG")
pal = Image.fromarray(scene(120, 90)).quantize(colors=37, method=Image.Quantize.MEDIANCUT)
save(pal, "pal120x90.png", "PNG", transparency=3)
save(pal, "pal120x90.gif", "GIF")
save(Image.fromarray(scene(77, 101)), "rgb77x101.bmp", "BMP")
save(Image.fromarray(scene(160, 120)), "q90_444_160x120.jpg", "JPEG", quality=90, subsampling=0)
save(Image.fromarray(scene(161, 121)), "q90_420_161x121.jpg", "JPEG", quality=90, subsampling=2)
save(Image.fromarray(scene(130, 97)), "q85_422_130x97.jpg", "JPEG", quality=85, subsampling=1)
save(Image.fromarray(scene(143, 99)), "q80_143x99.webp", "WEBP", quality=80)
save(Image.fromarray(scene(96, 64)), "q70_96x64.webp", "WEBP", quality=70)
save(Image.fromarray(scene(50, 40)), "lossless50x40.webp", "WEBP", lossless=True)
rgba_w = scene(70, 52, 4)
rgba_w[..., 3] = np.linspace(0, 255, 70).astype(np.uint8)[None, :]
save(Image.fromarray(rgba_w, "RGBA"), "alpha_q80_70x52.webp", "WEBP", quality=80)

cases = []


def pipeline(name, S, C, gray=False):
    tf = transforms.Compose([
        transforms.Resize(S, interpolation=transforms.InterpolationMode.BILINEAR),
        transforms.CenterCrop(C),
        transforms.ToTensor(),
        transforms.Normalize(MEAN[:1] if gray else MEAN, STD[:1] if gray else STD),
    ])
    with open(os.path.join(imdir, name), "rb") as f:
        img = Image.open(f).convert("L" if gray else "RGB")
    t = tf(img)
    assert t.dtype == torch.float32
    out = "%s_S%d_C%d%s.npy" % (name.replace(".", "_"), S, C, "_gray" if gray else "")
    np.save(os.path.join(gdir, out), t.numpy())
    cases.append(dict(kind="pipeline", image=name, format=images[name], S=S, C=C, gray=gray, npy=out))


def resize(name, w, h, gray=False):
    with open(os.path.join(imdir, name), "rb") as f:
        img = Image.open(f).convert("L" if gray else "RGB")
    r = np.asarray(img.resize((w, h), Image.BILINEAR), dtype=np.uint8)
    out = "%s_resize_%dx%d%s.npy" % (name.replace(".", "_"), w, h, "_gray" if gray else "")
    np.save(os.path.join(gdir, out), r)
    cases.append(dict(kind="resize", image=name, format=images[name], w=w, h=h, gray=gray, npy=out))


def short(name, S):
    with open(os.path.join(imdir, name), "rb") as f:
        w, h = Image.open(f).size
    s, l = (w, h) if w <= h else (h, w)
    nl = int(S * l / s)
    return (S, nl) if w <= h else (nl, S)


for name in images:
    pipeline(name, 72, 64)
    resize(name, *short(name, 72))
# decoded pixels without any resampling (size unchanged)
for name in images:
    if not name.startswith("rgb"):
        with open(os.path.join(imdir, name), "rb") as f:
            resize(name, *Image.open(f).size)
# round-half-even crop offsets (97-64)/2 = 16.5 -> 16 and 0.5 -> 0
pipeline("rgb300x200.png", 65, 64)
# zero padding: 50x64 and 51x65 resized images, crop 64
pipeline("rgb199x257.png", 50, 64)
pipeline("rgb199x257.png", 51, 64)
# gray pipeline (convert('L'))
pipeline("rgb300x200.png", 72, 64, gray=True)
pipeline("gray150x100.png", 72, 64, gray=True)
resize("pal120x90.png", 81, 67, gray=True)
# strong downscale, one-axis resizes, upscale
resize("rgb300x200.png", 37, 24)
resize("rgb300x200.png", 113, 200)
resize("rgb199x257.png", 199, 64)
resize("rgb199x257.png", 1, 1)
resize("rgba64x64.png", 200, 131)

with open(os.path.join(here, "cases.json"), "w") as f:
    json.dump(dict(versions=dict(torch=torch.__version__, torchvision=torchvision.__version__,
                                 PIL=PIL.__version__, numpy=np.__version__,
                                 libjpeg=PIL.features.version("jpg")),
                   mean=MEAN, std=STD, cases=cases), f, indent=1)
print(len(cases), "cases")
