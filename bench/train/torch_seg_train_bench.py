"""PyTorch's side of the segmentation training-throughput comparison (Debian's torch 1.13, torchvision 0.14).

Times forward + backward + SGD step of DeepLabV3 on a train-time MobileOne, as the Go benchmark
BenchmarkSegStep (train/seg_bench_test.go): the reference MobileOne (tools/reference/mobileone_ref.py) with S0's
widths at output stride 16 (stage4 dilated), torchvision's DeepLabHead(1024, classes) (ASPP rates 12/24/36, 256
channels, dropout 0.5), bilinear upsampling to the input, cross-entropy with ignore_index 255 on random masks,
SGD momentum 0.9, weight decay 1e-4, train mode. Prints one JSON line.

    /usr/bin/python3 bench/train/torch_seg_train_bench.py --threads 2 --size 128 --batch 8 --k 4
"""
import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "tools", "reference"))
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torchvision.models.segmentation.deeplabv3 import DeepLabHead  # noqa: E402
from mobileone_ref import MobileOne, zoo_channels  # noqa: E402

p = argparse.ArgumentParser()
p.add_argument("--threads", type=int, default=2)
p.add_argument("--size", type=int, default=128)
p.add_argument("--batch", type=int, default=8)
p.add_argument("--k", type=int, default=4)
p.add_argument("--classes", type=int, default=11)
p.add_argument("--steps", type=int, default=5)
p.add_argument("--warmup", type=int, default=1)
a = p.parse_args()

torch.set_num_threads(a.threads)
torch.manual_seed(0)


class DeepLabV3(nn.Module):
    def __init__(self, backbone, classifier):
        super().__init__()
        self.backbone, self.classifier = backbone, classifier

    def forward(self, x):
        f = self.backbone.forward_features(x)[-1]
        return F.interpolate(self.classifier(f), size=x.shape[-2:], mode="bilinear", align_corners=False)


bb = MobileOne(channels=zoo_channels((0.75, 1.0, 1.0, 2.0)), blocks=(2, 8, 10, 1), k=a.k, num_classes=1,
               output_stride=16)
del bb.linear
m = DeepLabV3(bb, DeepLabHead(bb.channels[4], a.classes)).train()
opt = torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
loss_fn = nn.CrossEntropyLoss(ignore_index=255)
x = torch.randn(a.batch, 3, a.size, a.size)
y = torch.randint(0, a.classes, (a.batch, a.size, a.size))
times = []
for i in range(a.warmup + a.steps):
    t0 = time.perf_counter()
    opt.zero_grad()
    loss = loss_fn(m(x), y)
    loss.backward()
    opt.step()
    if i >= a.warmup:
        times.append(time.perf_counter() - t0)
times.sort()
med = times[len(times) // 2]
print(json.dumps({"engine": "pytorch " + torch.__version__, "threads": a.threads, "batch": a.batch, "size": a.size,
                  "k": a.k, "median_ms": med * 1e3, "min_ms": times[0] * 1e3, "images_per_s": a.batch / med}))
