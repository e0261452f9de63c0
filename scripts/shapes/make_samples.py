#!/usr/bin/env python3
"""Regenerate the app's sample images and the committed held-out shape sets.

    python3 scripts/shapes/make_samples.py

* ``assets/samples/<class>.jpg``: eight 224 px generated images (seed 900003),
  one per class; for each class the first draw whose shape covers at least 4 %
  of the image is kept, so the sample row shows clearly visible shapes.  JPEG
  quality 90.  ``assets/samples/index.json`` lists them for the app.
* ``tests/fixtures/shapes/heldout``: equivalent to
  ``python3 scripts/shapes/shapes.py --seed 900002 --count 48 --size 224
  --out tests/fixtures/shapes/heldout --format jpg --quality 90``
* ``tests/fixtures/shapes/other_hands``: ``python3 scripts/shapes/other_hands.py``

Seeds 900001-900003 are never used by ``train.py``'s training stream.
"""
import json
import os
import sys

import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import shapes  # noqa: E402
import other_hands  # noqa: E402


def main():
    out = os.path.join(ROOT, "assets", "samples")
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(900003)
    order = ["star", "circle", "ring", "triangle", "arrow", "cross", "square", "pentagon"]
    for name in order:
        while True:
            rgb, mask, label = shapes.render(rng, 224, label=shapes.CLASSES.index(name))
            if mask.mean() >= 0.04:
                break
        Image.fromarray(rgb).save(os.path.join(out, f"{name}.jpg"), quality=90)
    with open(os.path.join(out, "index.json"), "w") as f:
        json.dump({"samples": [{"file": f"{n}.jpg", "label": n} for n in order]}, f, indent=1)
        f.write("\n")
    shapes.write_set(os.path.join(ROOT, "tests", "fixtures", "shapes", "heldout"), 900002, 48, 224, "jpg", 90)
    other_hands.main(["--out", os.path.join(ROOT, "tests", "fixtures", "shapes", "other_hands")])


if __name__ == "__main__":
    main()
