"""PyTorch's side of the training-throughput comparison (Debian's torch 1.13).

Times forward + backward + SGD step of the same MobileOne as the Go benchmark
(train/bench_test.go), in train mode, with label smoothing 0.1 and SGD momentum
0.9 / weight decay 1e-4, and prints one JSON line.

    /usr/bin/python3 bench/train/torch_train_bench.py --threads 2 --size 32 --batch 64 --k 4
With --bf16 the forward pass runs under CPU autocast to bfloat16 (the Go side's --bf16 rounds the
operands of its dense convolutions' matrix multiplies to bfloat16 instead).
"""
import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "tools", "reference"))
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
from mobileone_ref import MobileOne, zoo_channels  # noqa: E402

p = argparse.ArgumentParser()
p.add_argument("--threads", type=int, default=2)
p.add_argument("--size", type=int, default=32)
p.add_argument("--batch", type=int, default=64)
p.add_argument("--k", type=int, default=4)
p.add_argument("--in-channels", type=int, default=3)
p.add_argument("--stem-stride", type=int, default=2)
p.add_argument("--classes", type=int, default=10)
p.add_argument("--steps", type=int, default=10)
p.add_argument("--warmup", type=int, default=2)
p.add_argument("--bf16", action="store_true",
               help="torch.autocast('cpu', torch.bfloat16): convolutions and matrix multiplies in bfloat16 "
                    "(oneDNN; AMX where the build and CPU have it), the rest float32")
a = p.parse_args()

torch.set_num_threads(a.threads)
torch.manual_seed(0)
m = MobileOne(channels=zoo_channels((0.75, 1.0, 1.0, 2.0)), blocks=(2, 8, 10, 1), k=a.k,
              num_classes=a.classes, in_channels=a.in_channels, stem_stride=a.stem_stride).train()
opt = torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
loss_fn = nn.CrossEntropyLoss(label_smoothing=0.1)
x = torch.randn(a.batch, a.in_channels, a.size, a.size)
y = torch.randint(0, a.classes, (a.batch,))
times = []
for i in range(a.warmup + a.steps):
    t0 = time.perf_counter()
    opt.zero_grad()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=a.bf16):
        loss = loss_fn(m(x), y)
    loss.backward()
    opt.step()
    if i >= a.warmup:
        times.append(time.perf_counter() - t0)
times.sort()
med = times[len(times) // 2]
print(json.dumps({"engine": "pytorch " + torch.__version__, "threads": a.threads, "batch": a.batch, "size": a.size,
                  "k": a.k, "stem_stride": a.stem_stride, "in_channels": a.in_channels, "bf16": a.bf16,
                  "median_ms": med * 1e3, "min_ms": times[0] * 1e3, "images_per_s": a.batch / med}))
