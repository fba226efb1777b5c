"""Writes golden safetensors files for the Go tests, without the safetensors
package: only struct, json and numpy, mimicking the reference Rust layout
(8-byte little-endian header length; compact UTF-8 JSON with __metadata__
first, then tensors in data order as {"dtype","shape","data_offsets"};
header padded with spaces to a multiple of 8; then the data buffer).

Run once with numpy installed (python3 make.py); the outputs are committed.
"""
import json
import struct

import numpy as np

DT = {np.dtype("<f4"): "F32", np.dtype("<f2"): "F16", np.dtype("<f8"): "F64",
      np.dtype("<i8"): "I64", np.dtype("<i4"): "I32"}


def save(path, tensors, metadata=None):
    """tensors: list of (name, array, dtype-name or None) in data order."""
    header = {}
    if metadata:
        header["__metadata__"] = metadata
    offset = 0
    blobs = []
    for name, arr, dt in tensors:
        raw = np.ascontiguousarray(arr).tobytes()
        header[name] = {"dtype": dt or DT[arr.dtype], "shape": list(arr.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
        blobs.append(raw)
    h = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def base(n):
    # 0.25*i - 0.5: exact in every float type used here.
    return np.arange(n, dtype=np.float32) * np.float32(0.25) - np.float32(0.5)


# Values whose float16 rounding is interesting.
rounding = np.array([
    0.1, 1 / 3, -2 / 3, 1 + 2**-11, 1 + 3 * 2**-11, 65504, 65519, 65520, 70000,
    -1e6, 2**-24, 2**-25, 2**-25 * 1.0000001, 3 * 2**-25, 1e-8, -3e-8,
    (1023.5) * 2**-24, 6.1e-5, 0.0, -0.0, np.inf, -np.inf, np.nan, 1e-40,
], dtype=np.float32)

# Same-dtype files, names sorted: the layout the Rust library produces.
names = sorted(["a.weight", "b.bias", "c.scalar", "d.empty", "Z.upper",
                "r.rounding", "\u00e9.accent"])
arrays = {
    "a.weight": base(6).reshape(2, 3),
    "b.bias": base(3),
    "c.scalar": np.array(2.5, dtype=np.float32),
    "d.empty": np.zeros((0, 4), dtype=np.float32),
    "Z.upper": base(2) + np.float32(10),
    "r.rounding": rounding,
    "\u00e9.accent": base(24).reshape(1, 2, 3, 4),
}
meta = {"format": "pt", "note": "\u00b5<&> \"quoted\"\\"}
save("f32.safetensors", [(n, arrays[n], None) for n in names], meta)
with np.errstate(over="ignore"):  # 70000 overflows to inf on purpose
    save("f16.safetensors", [(n, arrays[n].astype(np.float16), None) for n in names], meta)
save("f32_nometa.safetensors", [(n, arrays[n], None) for n in ["a.weight", "b.bias"]])

# Every readable dtype, in a data order that is not name order.
bf16 = (base(4).view(np.uint32) >> 16).astype(np.uint16)  # exact: values need <8 mantissa bits
save("mixed.safetensors", [
    ("m.f64", base(4).astype(np.float64).reshape(2, 2), None),
    ("k.f16", base(3).astype(np.float16), None),
    ("z.f32", base(2), None),
    ("a.bf16", bf16, "BF16"),
    ("i.i64", np.array([-3, 0, 7, 2**40], dtype=np.int64), None),
    ("j.i32", np.array([[-5], [123456]], dtype=np.int32), None),
], {"format": "mixed"})
