#!/usr/bin/env python3
""""Other hands" shape test set: the same 8 classes drawn by different code.

The training generator (``shapes.py``) fills PIL polygons on a supersampled
canvas over gradient/noise/stroke clutter.  This script instead rasterises
its own signed-distance functions with numpy (anti-aliasing by a one-pixel
linear ramp on the distance), with shape proportions that differ from the
generator (star inner radius, cross arm width, arrow head size, slightly
stretched figures), in three styles:

* ``filled``   - a solid figure,
* ``outlined`` - only a thick outline (never used for circle/ring, where an
  outlined circle would *be* a ring),
* ``bordered`` - a filled figure with a contrasting thick border,

over backgrounds the generator never produces: ``plain`` colours, ``paper``
(cream, fine grain and faint large-scale mottling) and ``photo`` (colour noise
blurred at several scales, like an out-of-focus photo), with no distractor
strokes, and at other sizes (diameter 20-60 % of the side).

Run::

    python3 scripts/shapes/other_hands.py [--out tests/fixtures/shapes/other_hands] \\
        [--seed 4242] [--per-class 6] [--size 224]

Writes JPEG (quality 92) images, 0/255 mask PNGs (the figure's region:
interior included, also for outlined figures) and ``index.json`` in the same
format as ``shapes.py`` (items additionally carry ``style`` and
``background``).
"""

from __future__ import annotations

import argparse
import json
import math
import os

import numpy as np
from PIL import Image, ImageFilter

CLASSES = ["circle", "square", "triangle", "star", "cross", "ring", "pentagon", "arrow"]


# ------------------------------------------------------------------ SDFs ---

def sdf_polygon(px, py, verts):
    """Signed distance (negative inside) from points to a closed polygon."""
    d = np.full(px.shape, np.inf)
    inside = np.zeros(px.shape, bool)
    n = len(verts)
    for i in range(n):
        ax, ay = verts[i]
        bx, by = verts[(i + 1) % n]
        ex, ey = bx - ax, by - ay
        wx, wy = px - ax, py - ay
        t = np.clip((wx * ex + wy * ey) / (ex * ex + ey * ey), 0, 1)
        dx, dy = wx - ex * t, wy - ey * t
        d = np.minimum(d, dx * dx + dy * dy)
        # even-odd crossing test
        cond = (ay > py) != (by > py)
        xint = ax + (py - ay) * ex / np.where(ey == 0, 1e-12, ey)
        inside ^= cond & (px < xint)
    return np.where(inside, -1, 1) * np.sqrt(d)


def outline(name, rng):
    """Polygon vertices (unit circumradius) or ('circle'/'ring', params)."""
    if name == "square":
        a = np.deg2rad(45) + np.arange(4) * np.pi / 2
        return np.stack([np.cos(a), np.sin(a)], 1)
    if name == "triangle":
        a = np.deg2rad(-90) + np.arange(3) * 2 * np.pi / 3
        return np.stack([np.cos(a), np.sin(a)], 1)
    if name == "pentagon":
        a = np.deg2rad(-90) + np.arange(5) * 2 * np.pi / 5
        return np.stack([np.cos(a), np.sin(a)], 1)
    if name == "star":
        inner = rng.uniform(0.36, 0.5)
        a = np.deg2rad(-90) + np.arange(10) * np.pi / 5
        r = np.where(np.arange(10) % 2 == 0, 1.0, inner)
        return np.stack([r * np.cos(a), r * np.sin(a)], 1)
    if name == "cross":
        t = rng.uniform(0.22, 0.36)
        v = np.array([(t, 1), (t, t), (1, t), (1, -t), (t, -t), (t, -1), (-t, -1), (-t, -t),
                      (-1, -t), (-1, t), (-t, t), (-t, 1)], float)
        return v / math.hypot(1, t)
    if name == "arrow":
        sw = rng.uniform(0.15, 0.28)   # shaft half width
        hw = rng.uniform(0.5, 0.75)    # head half width
        hx = rng.uniform(0.0, 0.35)    # where the head starts
        return np.array([(-1, -sw), (hx, -sw), (hx, -hw), (1, 0), (hx, hw), (hx, sw), (-1, sw)], float)
    raise ValueError(name)


def shape_sdf(name, size, rng, diam):
    """SDF in pixels for a random placement; returns (sdf, extra) with extra for rings."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float64) + 0.5
    r = diam * size / 2
    rot = rng.uniform(0, 2 * np.pi)
    stretch = rng.uniform(0.9, 1.1) if name not in ("circle", "ring") else 1.0
    if name in ("circle", "ring"):
        lo, hi = np.array([-r, -r]), np.array([r, r])
    else:
        v = outline(name, rng) * r
        v[:, 0] *= stretch
        c, s = math.cos(rot), math.sin(rot)
        v = v @ np.array([[c, s], [-s, c]])
        lo, hi = v.min(0), v.max(0)
    m = 3.0
    cx = rng.uniform(m - lo[0], size - m - hi[0])
    cy = rng.uniform(m - lo[1], size - m - hi[1])
    if name == "circle":
        return np.hypot(x - cx, y - cy) - r
    if name == "ring":
        thick = rng.uniform(0.18, 0.4) * r
        mid = r - thick / 2
        return np.abs(np.hypot(x - cx, y - cy) - mid) - thick / 2
    return sdf_polygon(x - cx, y - cy, v)


def coverage(sdf):
    return np.clip(0.5 - sdf, 0, 1)  # one-pixel linear ramp


# ----------------------------------------------------------- backgrounds ---

def bg_plain(rng, size):
    return np.ones((size, size, 3)) * rng.uniform(0, 255, 3)


def bg_paper(rng, size):
    base = np.array([rng.uniform(225, 250), rng.uniform(215, 240), rng.uniform(190, 225)])
    grain = rng.normal(0, 7, (size, size))
    grain = np.asarray(Image.fromarray(np.clip(grain + 128, 0, 255).astype(np.uint8)).filter(
        ImageFilter.GaussianBlur(0.6)), float) - 128
    mott = rng.normal(0, 1, (size, size))
    mott = np.asarray(Image.fromarray(np.clip(mott * 40 + 128, 0, 255).astype(np.uint8)).filter(
        ImageFilter.GaussianBlur(size / 10)), float) - 128
    return base + (grain * 1.5 + mott * 1.2)[..., None]


def bg_photo(rng, size):
    img = np.zeros((size, size, 3))
    for radius, amp in ((size / 5, 90), (size / 14, 45), (size / 40, 15)):
        n = rng.uniform(0, 255, (size, size, 3)).astype(np.uint8)
        b = np.asarray(Image.fromarray(n).filter(ImageFilter.GaussianBlur(radius)), float)
        b = (b - b.mean()) / (b.std() + 1e-6)
        img += b * amp
    return img + rng.uniform(60, 190, 3)


BACKGROUNDS = {"plain": bg_plain, "paper": bg_paper, "photo": bg_photo}
LUM = np.array([0.299, 0.587, 0.114])


def far_colour(rng, ref):
    """A colour whose luminance differs clearly from ref's."""
    lr = float(ref @ LUM)
    for _ in range(100):
        c = rng.uniform(0, 255, 3)
        if abs(float(c @ LUM) - lr) > 90:
            return c
    return np.full(3, 15.0 if lr > 127 else 240.0)


def draw(rng, size, name, style, bgname):
    img = BACKGROUNDS[bgname](rng, size)
    diam = rng.uniform(0.2, 0.6)
    sdf = shape_sdf(name, size, rng, diam)
    region = sdf <= 0
    ref = np.clip(img[region], 0, 255).mean(0)
    col = far_colour(rng, ref)
    w = max(3.0, rng.uniform(0.025, 0.06) * size)  # stroke width in px
    if style == "filled":
        a = coverage(sdf)
        img = img + a[..., None] * (col - img)
        mask = region
    elif style == "outlined":
        a = coverage(np.abs(sdf + w / 2) - w / 2)  # stroke just inside the edge
        img = img + a[..., None] * (col - img)
        mask = region
    else:  # bordered
        a = coverage(sdf)
        img = img + a[..., None] * (col - img)
        border = far_colour(rng, col)
        b = coverage(np.abs(sdf + w / 2) - w / 2)
        img = img + b[..., None] * (border - img)
        mask = region
    return np.clip(np.rint(img), 0, 255).astype(np.uint8), mask


def main(argv=None):
    ap = argparse.ArgumentParser(description="draw the other-hands shape test set")
    ap.add_argument("--out", default="tests/fixtures/shapes/other_hands")
    ap.add_argument("--seed", type=int, default=4242)
    ap.add_argument("--per-class", type=int, default=6)
    ap.add_argument("--size", type=int, default=224)
    a = ap.parse_args(argv)
    rng = np.random.default_rng(a.seed)
    os.makedirs(a.out, exist_ok=True)
    items = []
    bgs = list(BACKGROUNDS)
    i = 0
    for rep in range(a.per_class):
        for label, name in enumerate(CLASSES):
            if name in ("circle", "ring"):
                style = ["filled", "bordered"][rep % 2]
            else:
                style = ["filled", "outlined", "bordered"][rep % 3]
            bg = bgs[(rep + label) % 3]
            rgb, mask = draw(rng, a.size, name, style, bg)
            stem = f"{i:03d}"
            Image.fromarray(rgb).save(os.path.join(a.out, stem + ".jpg"), quality=92)
            Image.fromarray(mask.astype(np.uint8) * 255).convert("1").save(
                os.path.join(a.out, stem + "_mask.png"), optimize=True)
            items.append({"image": stem + ".jpg", "mask": stem + "_mask.png", "label": label,
                          "style": style, "background": bg})
            i += 1
    with open(os.path.join(a.out, "index.json"), "w") as f:
        json.dump({"classes": CLASSES, "seed": a.seed, "size": a.size, "items": items}, f, indent=1)
        f.write("\n")
    print(f"wrote {len(items)} images to {a.out}")


if __name__ == "__main__":
    main()
