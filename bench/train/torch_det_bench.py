"""PyTorch's side of the SSDLite training-throughput comparison (Debian's torch 1.13, torchvision 0.14).

Times forward + SSD loss + backward + SGD step of torchvision's SSD class with an SSDLiteHead on the MobileOne
reference backbone (tools/reference/make_det_golden.py's MobileOneSSDBackbone: stage3 and stage4 maps plus
torchvision's SSDLite extra blocks), the configurations of train/ssd_bench_test.go, on random images with two
boxes each, and prints one JSON line. The images are already at the network's size (GeneralizedRCNNTransform's
resize is then the identity, as on the Go side where the batch is resized before the step).

    /usr/bin/python3 bench/train/torch_det_bench.py --config canvases-128 --threads 2 --steps 5
"""
import argparse
import json
import os
import sys
import time
from functools import partial

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "tools", "reference"))
import torch  # noqa: E402
import torch.nn as tnn  # noqa: E402
from torchvision.models.detection.anchor_utils import DefaultBoxGenerator  # noqa: E402
from torchvision.models.detection.ssd import SSD  # noqa: E402
from torchvision.models.detection.ssdlite import SSDLiteHead  # noqa: E402
import mobileone_ref as mo  # noqa: E402
from make_det_golden import MobileOneSSDBackbone  # noqa: E402

CONFIGS = {  # as train/ssd_bench_test.go
    "s0-320": dict(channels=[48, 48, 128, 256, 1024], blocks=[2, 8, 10, 1], k=4, width=1.0, size=320, batch=16, classes=91),
    "canvases-128": dict(channels=[32, 32, 64, 128, 256], blocks=[1, 2, 4, 1], k=2, width=0.5, size=128, batch=16, classes=11),
}
p = argparse.ArgumentParser()
p.add_argument("--config", required=True, choices=sorted(CONFIGS))
p.add_argument("--threads", type=int, default=2)
p.add_argument("--steps", type=int, default=5)
p.add_argument("--warmup", type=int, default=1)
a = p.parse_args()
c = CONFIGS[a.config]
torch.set_num_threads(a.threads)
torch.manual_seed(0)
norm = partial(tnn.BatchNorm2d, eps=0.001, momentum=0.03)
net = mo.MobileOne(channels=c["channels"], blocks=c["blocks"], k=c["k"], num_classes=1)
bb = MobileOneSSDBackbone(net, c["width"], norm)
gen = DefaultBoxGenerator([[2, 3] for _ in range(6)], min_ratio=0.2, max_ratio=0.95)
head = SSDLiteHead(bb.out_channels, gen.num_anchors_per_location(), c["classes"], norm)
s = c["size"]
model = SSD(bb, gen, (s, s), c["classes"], head=head, image_mean=[0.0] * 3, image_std=[1.0] * 3).train()
opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=4e-5)
x = [torch.randn(3, s, s) for _ in range(c["batch"])]
targets = []
for i in range(c["batch"]):
    f = (i % 5) / 10
    targets.append(dict(boxes=torch.tensor([[f * s, f * s, (f + 0.3) * s, (f + 0.4) * s], [0.5 * s, 0.1 * s, 0.9 * s, 0.6 * s]]),
                        labels=torch.tensor([1 + i % (c["classes"] - 1), 1 + (i + 3) % (c["classes"] - 1)])))
times = []
for i in range(a.warmup + a.steps):
    t0 = time.perf_counter()
    opt.zero_grad()
    losses = model(x, targets)
    (losses["bbox_regression"] + losses["classification"]).backward()
    opt.step()
    if i >= a.warmup:
        times.append(time.perf_counter() - t0)
times.sort()
med = times[len(times) // 2]
print(json.dumps({"engine": "pytorch " + torch.__version__, "config": a.config, "threads": a.threads, "batch": c["batch"],
                  "median_ms": med * 1e3, "min_ms": times[0] * 1e3, "images_per_s": c["batch"] / med}))
