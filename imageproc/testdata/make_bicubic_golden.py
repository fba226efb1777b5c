#!/usr/bin/python3
"""Golden files for PIL's BICUBIC resize (torchvision's Resize(..., BICUBIC)
on a PIL image), from the images make_golden.py wrote:
    cd imageproc/testdata && /usr/bin/python3 make_bicubic_golden.py
Writes golden/bicubic_<image>_<w>x<h>.npy (uint8 (H, W, 3)) and
bicubic_cases.json.
"""
import json
import os

import numpy as np
from PIL import Image

here = os.path.dirname(os.path.abspath(__file__))
cases = []
for name, w, h in [("rgb300x200.png", 108, 72), ("rgb300x200.png", 333, 222), ("rgb199x257.png", 64, 82),
                   ("rgb77x101.bmp", 230, 301), ("gray150x100.png", 45, 30)]:
    img = Image.open(os.path.join(here, "images", name)).convert("RGB")
    r = np.asarray(img.resize((w, h), Image.BICUBIC), dtype=np.uint8)
    out = "bicubic_%s_%dx%d.npy" % (name.replace(".", "_"), w, h)
    np.save(os.path.join(here, "golden", out), r)
    cases.append(dict(image=name, w=w, h=h, npy=out))
with open(os.path.join(here, "bicubic_cases.json"), "w") as f:
    json.dump(dict(PIL=Image.__version__, cases=cases), f, indent=1)
