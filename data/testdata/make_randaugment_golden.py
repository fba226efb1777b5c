#!/usr/bin/python3
"""Write randaugment_pil.txt: PIL's results for the RandAugment ops (as
torchvision applies them to PIL images, nearest-neighbour geometry, fill 0)
on the test image of augment_test.go's testImage, for TestRandAugmentPIL.
Run: cd data/testdata && /usr/bin/python3 make_randaugment_golden.py (PIL 9.4)."""
import os

from PIL import Image, ImageEnhance, ImageOps

W, H = 11, 9


def test_image(nc):
    return bytes((x * 13 + y * 29 + c * 71 + (x * y) % 17) % 256
                 for y in range(H) for x in range(W) for c in range(nc))


CASES = [("ShearX", 0.27), ("ShearY", -0.2), ("TranslateX", -0.3), ("TranslateY", 0.25), ("Rotate", 23.0),
         ("Rotate", -30.0), ("Brightness", 0.6), ("Brightness", -0.4), ("Color", 0.8), ("Color", -0.7),
         ("Contrast", 0.5), ("Contrast", -0.6), ("Sharpness", 0.9), ("Sharpness", -0.9), ("Posterize", 5.0),
         ("Solarize", 128.0), ("Solarize", 178.5), ("AutoContrast", 0.0), ("Equalize", 0.0)]


def apply(img, op, mag):
    def aff(m):
        return img.transform(img.size, Image.AFFINE, m, resample=Image.NEAREST, fillcolor=0)
    if op == "ShearX":
        return aff((1, mag, 0, 0, 1, 0))
    if op == "ShearY":
        return aff((1, 0, 0, mag, 1, 0))
    if op == "TranslateX":
        return aff((1, 0, -int(mag * W), 0, 1, 0))
    if op == "TranslateY":
        return aff((1, 0, 0, 0, 1, -int(mag * H)))
    if op == "Rotate":
        return img.rotate(mag, resample=Image.NEAREST, fillcolor=0)
    if op in ("Brightness", "Color", "Contrast", "Sharpness"):
        return getattr(ImageEnhance, op)(img).enhance(1 + mag)
    if op == "Posterize":
        return ImageOps.posterize(img, int(mag))
    if op == "Solarize":
        return ImageOps.solarize(img, mag)
    if op == "AutoContrast":
        return ImageOps.autocontrast(img)
    if op == "Equalize":
        return ImageOps.equalize(img)
    raise ValueError(op)


with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "randaugment_pil.txt"), "w") as f:
    for mode, nc in (("RGB", 3), ("L", 1)):
        img = Image.frombytes(mode, (W, H), test_image(nc))
        for op, mag in CASES:
            f.write("%d %s %r %s\n" % (nc, op, mag, apply(img, op, mag).tobytes().hex()))
