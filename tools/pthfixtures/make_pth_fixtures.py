#!/usr/bin/python3
"""Write tiny torch.save checkpoints used as golden files by format/pth tests.

Run with Debian's torch (1.13):

    /usr/bin/python3 tools/pthfixtures/make_pth_fixtures.py

Each checkpoint NAME.pth gets a NAME.json next to it holding the state_dict
the Go loader must return: {"keys": [...], "tensors": {key: {"shape": [...],
"data": [...]}}} with values already converted to float32 (row-major).
"""
import collections
import json
import os
import sys

import torch

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "format", "pth", "testdata")


def expected(sd):
    keys = list(sd.keys())
    tensors = {}
    for k, v in sd.items():
        f = v.detach().to(torch.float32).contiguous()
        tensors[k] = {"shape": list(f.shape), "data": [float(x) for x in f.reshape(-1).tolist()]}
    return {"keys": keys, "tensors": tensors}


def plain_state_dict():
    torch.manual_seed(0)
    m = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 1), torch.nn.BatchNorm2d(2))
    with torch.no_grad():
        m[1].running_mean.copy_(torch.tensor([0.5, -0.25]))
        m[1].num_batches_tracked.fill_(7)
    sd = m.state_dict()  # OrderedDict with _metadata, int64 0-dim num_batches_tracked
    sd["half"] = torch.tensor([1.5, -2.0, 65504.0, 0.0009765625], dtype=torch.float16)
    sd["bf16"] = torch.tensor([[1.0, -3.5], [0.0078125, 256.0]], dtype=torch.bfloat16)
    sd["double"] = torch.tensor([[0.1, 0.2, 0.3]], dtype=torch.float64)
    sd["int32"] = torch.tensor([-3, 0, 5], dtype=torch.int32)
    sd["uint8"] = torch.tensor([0, 200, 255], dtype=torch.uint8)
    sd["bool"] = torch.tensor([True, False, True])
    # non-contiguous: a transposed (3, 2) view of a (2, 3) storage
    sd["transposed"] = torch.arange(6, dtype=torch.float32).reshape(2, 3).t()
    # a base tensor and a strided view into the same storage with an offset
    base = torch.arange(12, dtype=torch.float32).reshape(3, 4) / 4
    sd["shared.base"] = base
    sd["shared.view"] = base[1:, 1:3]  # offset 5, stride (4, 1)
    sd["empty"] = torch.zeros(0, 3)
    return sd


def main():
    os.makedirs(OUT, exist_ok=True)
    written = []

    def save(name, obj, sd, **kw):
        path = os.path.join(OUT, name + ".pth")
        torch.save(obj, path, **kw)
        if sd is not None:
            with open(os.path.join(OUT, name + ".json"), "w") as f:
                json.dump(expected(sd), f, indent=1)
                f.write("\n")
        written.append(path)

    sd = plain_state_dict()
    save("plain", sd, sd)

    inner = collections.OrderedDict()
    inner["fc.weight"] = torch.nn.Parameter(torch.tensor([[1.0, 2.0], [3.0, 4.0]]))
    inner["fc.bias"] = torch.tensor([0.5, -0.5])
    wrapper = {"state_dict": inner, "epoch": 3, "arch": "tiny",
               "optimizer": {"state": {}, "param_groups": [{"lr": 0.1, "params": [0, 1]}]}}
    save("wrapped", wrapper, inner)

    # protocol 4 exercises SHORT_BINUNICODE, MEMOIZE, STACK_GLOBAL and FRAME.
    p4 = collections.OrderedDict()
    p4["a"] = torch.tensor([[1.0, 2.0, 3.0]])
    p4["b.num_batches_tracked"] = torch.tensor(12345678901)
    save("proto4", p4, p4, pickle_protocol=4)

    # legacy (torch < 1.6) non-zip serialization: Load must reject it clearly.
    save("legacy", collections.OrderedDict(x=torch.ones(2)), None, _use_new_zipfile_serialization=False)

    for p in written:
        print(p, os.path.getsize(p))


if __name__ == "__main__":
    sys.exit(main())
