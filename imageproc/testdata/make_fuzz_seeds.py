#!/usr/bin/python3
"""Write the committed seed corpus for FuzzDecodePreprocess (tiny images in
every registered format plus a few broken ones) in `go test fuzz v1` form.
Run: cd imageproc/testdata && /usr/bin/python3 make_fuzz_seeds.py"""
import io
import os
import struct
import zlib

import numpy as np
from PIL import Image

out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fuzz", "FuzzDecodePreprocess")
os.makedirs(out, exist_ok=True)
rng = np.random.default_rng(7)
rgb = Image.fromarray(rng.integers(0, 256, size=(7, 9, 3), dtype=np.uint8))


def enc(im, fmt, **kw):
    b = io.BytesIO()
    im.save(b, fmt, **kw)
    return b.getvalue()


def png_header(w, h):
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))


seeds = {
    "png_rgb": enc(rgb, "PNG"),
    "png_rgba": enc(rgb.convert("RGBA"), "PNG"),
    "png_pal": enc(rgb.quantize(5), "PNG", transparency=1),
    "png_gray16": enc(Image.fromarray(rng.integers(0, 65536, size=(5, 6), dtype=np.uint16)), "PNG"),
    "jpeg_420": enc(rgb.resize((13, 11)), "JPEG", quality=80, subsampling=2),
    "jpeg_gray": enc(rgb.convert("L"), "JPEG"),
    "jpeg_cmyk": enc(rgb.convert("CMYK"), "JPEG"),
    "gif": enc(rgb, "GIF"),
    "bmp": enc(rgb, "BMP"),
    "tiff": enc(rgb, "TIFF"),
    "webp_lossless": enc(rgb, "WEBP", lossless=True),
    "webp_lossy": enc(rgb, "WEBP", quality=50),
    "png_truncated": enc(rgb, "PNG")[:40],
    "png_huge_header": png_header(100000, 100000),
    "empty": b"",
}
for name, data in seeds.items():
    lit = "".join(chr(c) if 32 <= c < 127 and chr(c) not in '"\\' else "\\x%02x" % c for c in data)
    with open(os.path.join(out, name), "w") as f:
        f.write('go test fuzz v1\n[]byte("%s")\n' % lit)
print(len(seeds), "seeds")
