#!/usr/bin/python3
"""Write the committed seed corpus for FuzzReadIDX (small valid IDX files,
raw and gzip, and broken ones) in `go test fuzz v1` form.
Run: cd data/testdata && python3 make_fuzz_seeds.py"""
import gzip
import os
import struct

out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fuzz", "FuzzReadIDX")
os.makedirs(out, exist_ok=True)


def idx(dims, data, code=0x08):
    return bytes([0, 0, code, len(dims)]) + b"".join(struct.pack(">I", d) for d in dims) + bytes(data)


def gz(b):
    return gzip.compress(b, mtime=0)


images = idx([3, 4, 5], [(i * 7) % 256 for i in range(60)])
labels = idx([6], [0, 1, 2, 9, 9, 3])
seeds = {
    "images_raw": images,
    "images_gz": gz(images),
    "labels_gz": gz(labels),
    "empty_set": idx([0, 28, 28], []),
    "truncated_data": images[:-1],
    "truncated_header": images[:9],
    "trailing": images + b"\x01",
    "bad_magic": b"PK\x03\x04" + images[4:],
    "float_type": idx([1], [0, 0, 0, 0], code=0x0D),
    "huge_claim": bytes([0, 0, 8, 3]) + b"\xff" * 8 + struct.pack(">I", 2) + b"\x01",
    "gz_truncated": gz(images)[:-12],
    "gz_corrupt": gz(images)[:10] + b"\x07" + gz(images)[11:],
    "empty": b"",
    # 3.6e9 images of 0x65281: no data, but a label file of that count would be huge.
    "huge_count_zero_size": idx([3640652848, 0, 65281], []),
}


def go_quote(b):
    s = []
    for c in b:
        ch = chr(c)
        if ch == '"' or ch == "\\":
            s.append("\\" + ch)
        elif 0x20 <= c < 0x7F:
            s.append(ch)
        else:
            s.append("\\x%02x" % c)
    return '"' + "".join(s) + '"'


for name, b in seeds.items():
    with open(os.path.join(out, name), "w") as f:
        f.write("go test fuzz v1\n[]byte(%s)\n" % go_quote(b))
