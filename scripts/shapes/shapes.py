#!/usr/bin/env python3
"""Procedural "shapes" data set for the vit-lens demo model.

Every image shows exactly ONE filled shape of one of eight classes, in this
index order::

    0 circle, 1 square, 2 triangle, 3 star, 4 cross, 5 ring, 6 pentagon, 7 arrow

at a random position (always fully inside the image), size (circumscribed
diameter 12-40 % of the image side), rotation and colour, over a cluttered
background: a linear or radial colour gradient, low-frequency colour noise,
soft blotches, and distractor strokes that are deliberately NOT shapes (open
straight lines, open arcs, scribbles and thin open polylines).  The shape's
colour is chosen to contrast with the background under it.  Shapes and
strokes are drawn on a 4x supersampled canvas and box-downsampled, so edges
are anti-aliased.  Everything is defined in normalized coordinates, so the
same seed gives the same scene at any size (only the per-pixel noise grain
depends on the size).

Everything is deterministic given a ``numpy.random.Generator``.

As a module::

    import numpy as np
    from shapes import render, CLASSES
    rgb, mask, label = render(np.random.default_rng(0), 224)
    # rgb: uint8 [224,224,3], mask: bool [224,224] (the shape's pixels),
    # label: int index into CLASSES

As a command line tool::

    python3 scripts/shapes/shapes.py --seed 7 --count 96 --size 224 \\
        --out /tmp/shapes [--format png|jpg] [--quality 90]

writes ``/tmp/shapes/index.json`` =
``{"classes": [...], "items": [{"image": "000.png", "mask": "000_mask.png",
"label": 0}, ...]}`` plus the RGB images and the 0/255 mask PNGs.  The CLI
cycles through the classes (item i has label i % 8) so sets are balanced.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

CLASSES = ["circle", "square", "triangle", "star", "cross", "ring", "pentagon", "arrow"]
SUPERSAMPLE = 4


# ---------------------------------------------------------------- shapes ---

def _regular(n: int, start_deg: float = 90.0) -> np.ndarray:
    a = np.deg2rad(start_deg) + np.arange(n) * 2 * np.pi / n
    return np.stack([np.cos(a), np.sin(a)], 1)


def _star(points: int = 5, inner: float = 0.42) -> np.ndarray:
    a = np.deg2rad(90.0) + np.arange(2 * points) * np.pi / points
    r = np.where(np.arange(2 * points) % 2 == 0, 1.0, inner)
    return np.stack([r * np.cos(a), r * np.sin(a)], 1)


def _cross(t: float = 0.3) -> np.ndarray:
    return np.array([
        (t, 1), (t, t), (1, t), (1, -t), (t, -t), (t, -1),
        (-t, -1), (-t, -t), (-1, -t), (-1, t), (-t, t), (-t, 1),
    ], dtype=float) / math.hypot(1, t)


def _arrow(shaft: float = 0.22, head_x: float = 0.15, head: float = 0.62) -> np.ndarray:
    return np.array([
        (-1.0, -shaft), (head_x, -shaft), (head_x, -head), (1.0, 0.0),
        (head_x, head), (head_x, shaft), (-1.0, shaft),
    ])


# Unit outlines (circumradius ~1, centred on the origin); y points down in
# image space but that only mirrors the shapes, which all have a mirror axis.
POLYGONS = {
    "square": _regular(4, 45.0),
    "triangle": _regular(3, 90.0),
    "pentagon": _regular(5, 90.0),
    "star": _star(),
    "cross": _cross(),
    "arrow": _arrow(),
}


# ------------------------------------------------------------ background ---

def _rand_colour(rng: np.random.Generator) -> np.ndarray:
    return rng.uniform(0, 255, 3).astype(np.float32)


def _grid(size: int):
    c = (np.arange(size, dtype=np.float32) + 0.5) / size
    return c[None, :], c[:, None]  # x (row vector), y (column vector)


def _background(rng: np.random.Generator, size: int, clutter: float = 1.0) -> np.ndarray:
    x, y = _grid(size)
    c0, c1 = _rand_colour(rng), _rand_colour(rng)
    if rng.random() < 0.55:  # linear gradient
        th = rng.uniform(0, 2 * np.pi)
        t = x * math.cos(th) + y * math.sin(th)
        lo = min(0.0, math.cos(th)) + min(0.0, math.sin(th))
        hi = max(0.0, math.cos(th)) + max(0.0, math.sin(th))
        t = (t - lo) / (hi - lo)
    else:  # radial gradient
        cx, cy = rng.uniform(-0.2, 1.2, 2)
        rad = rng.uniform(0.4, 1.2)
        t = np.clip(np.sqrt((x - cx) ** 2 + (y - cy) ** 2) / rad, 0, 1)
    img = c0[None, None, :] + t[..., None] * (c1 - c0)[None, None, :]

    # low-frequency colour noise
    g = int(rng.integers(2, 9))
    amp = rng.uniform(0, 70) * clutter
    grid = rng.uniform(0, 255, (g, g, 3)).astype(np.uint8)
    low = np.asarray(Image.fromarray(grid).resize((size, size), Image.BICUBIC), np.float32)
    img = img + (low - 127.5) * (amp / 127.5)

    # soft blotches (separable Gaussians, never crisp figures)
    for _ in range(int(rng.integers(0, 6))):
        cx, cy = rng.uniform(0, 1, 2)
        sx, sy = rng.uniform(0.05, 0.25, 2)
        a = rng.uniform(0.15, 0.55) * clutter
        col = _rand_colour(rng)
        w = (np.exp(-((x - cx) ** 2) / (2 * sx * sx)) * np.exp(-((y - cy) ** 2) / (2 * sy * sy)) * a)
        img = img + w[..., None] * (col - img)
    return img


def _backdrop(vr: np.random.Generator, size: int, kind: str) -> np.ndarray:
    """A calm training-only background (``_variety``) in place of the cluttered one:
    ``flat`` is one colour with fine grain; ``field`` is an out-of-focus colour field,
    random colour grids at three coarseness levels, upsampled and blurred, summed and
    stretched to the full range, as a blurred photo behind a drawing looks."""
    if kind == "flat":
        img = np.broadcast_to(_rand_colour(vr), (size, size, 3)).astype(np.float32)
        return img + vr.normal(0, vr.uniform(1, 6), (size, size, 1)).astype(np.float32)
    img = np.zeros((size, size, 3), np.float32)
    for g in (int(vr.integers(2, 4)), int(vr.integers(4, 8)), int(vr.integers(8, 16))):
        grid = vr.uniform(0, 255, (g, g, 3)).astype(np.uint8)
        up = Image.fromarray(grid).resize((size, size), Image.BICUBIC)
        up = np.asarray(up.filter(ImageFilter.GaussianBlur(0.4 * size / g)), np.float32)
        img += vr.uniform(0.3, 1.0) * (up - 127.5)
    lo, hi = img.min((0, 1)), img.max((0, 1))
    return (img - lo) / np.maximum(hi - lo, 1e-3) * vr.uniform(150, 255) + vr.uniform(0, 60)


def _stroke_layer(rng: np.random.Generator, size: int, n: int) -> np.ndarray:
    """Alpha [size,size] float32 of n open distractor strokes."""
    S = size * SUPERSAMPLE
    canvas = Image.new("L", (S, S), 0)
    d = ImageDraw.Draw(canvas)
    for _ in range(n):
        kind = rng.integers(0, 4)
        w = max(1, int(round(rng.uniform(0.004, 0.022) * S)))
        if kind == 0:  # straight open line
            p = rng.uniform(-0.1, 1.1, 4) * S
            d.line([(p[0], p[1]), (p[2], p[3])], fill=255, width=w)
        elif kind == 1:  # open arc (at most 250 degrees, never a ring)
            cx, cy = rng.uniform(0, 1, 2)
            r = rng.uniform(0.05, 0.45)
            start = rng.uniform(0, 360)
            span = rng.uniform(30, 250)
            box = [(cx - r) * S, (cy - r) * S, (cx + r) * S, (cy + r) * S]
            d.arc(box, start, start + span, fill=255, width=w)
        elif kind == 2:  # scribble: smooth random walk
            k = int(rng.integers(8, 24))
            pos = rng.uniform(0, 1, 2)
            ang = rng.uniform(0, 2 * np.pi)
            step = rng.uniform(0.02, 0.06)
            pts = []
            for _ in range(k):
                pts.append((pos[0] * S, pos[1] * S))
                ang += rng.normal(0, 0.7)
                pos = pos + step * np.array([math.cos(ang), math.sin(ang)])
            d.line(pts, fill=255, width=max(1, w // 2), joint="curve")
        else:  # thin open zig-zag polyline: 2-4 segments, turns <= 75 deg,
            # so it can never close into a triangle or other figure
            k = int(rng.integers(2, 5))
            pos = rng.uniform(0, 1, 2)
            ang = rng.uniform(0, 2 * np.pi)
            pts = [(pos[0] * S, pos[1] * S)]
            for _ in range(k):
                seg = rng.uniform(0.1, 0.5)
                pos = pos + seg * np.array([math.cos(ang), math.sin(ang)])
                pts.append((pos[0] * S, pos[1] * S))
                ang += rng.uniform(-1.3, 1.3)
            d.line(pts, fill=255, width=max(1, w // 2), joint="curve")
    small = canvas.reduce(SUPERSAMPLE)
    return np.asarray(small, np.float32) / 255.0


# ----------------------------------------------------------------- shape ---

VARIETY_MAX_DIAM = 0.55  # largest shape of a `_variety` style, share of the side


@dataclasses.dataclass(frozen=True)
class Variety:
    """Training-only styling for ``render`` (see ``_variety``): ``share`` of the images
    are drawn in another style; ``backdrops``, ``broad`` and ``line_share`` tune those.
    The default draws none, and every seeded set is unchanged."""
    share: float = 0.0
    backdrops: bool = False
    broad: bool = False
    line_share: float | None = None


def _variety(vr: np.random.Generator, name: str, opts: Variety) -> dict:
    """Training-only variation (``render(..., variety=Variety(share, ...))``): another drawing style
    (a filled figure with a contrasting border, or for the classes other than circle
    and ring only an outline), other proportions (star depth, cross arm width, arrow
    shaft and head), a slight stretch, larger sizes and calmer backgrounds: less clutter,
    and with ``backdrops`` in three of five images a ``_backdrop`` (a flat colour or an
    out-of-focus colour field) under the strokes.

    ``broad`` widens it further: thinner rings, figures up to ``BROAD_MAX_DIAM`` of the
    side, and in half of the bordered or outlined figures a line laid inside the edge
    that may be as wide as the figure's arms, so that a border can leave only a sliver
    of the fill (a wide border on a thin cross leaves a four-pointed star of fill).

    ``line_share`` (0-1), when given, is the chance that the figure is bordered or
    outlined rather than filled, in place of an even choice of the styles."""
    styles = ["filled", "bordered"] + ([] if name in ("circle", "ring") else ["outlined"])
    if name == "star":
        outline = _star(5, vr.uniform(0.30, 0.58))
    elif name == "cross":
        outline = _cross(vr.uniform(0.16, 0.42))
    elif name == "arrow":
        outline = _arrow(vr.uniform(0.10, 0.30), vr.uniform(-0.15, 0.40), vr.uniform(0.40, 0.80))
    elif name in ("circle", "ring"):
        outline = _regular(96)
    else:
        outline = POLYGONS[name]
    squash = 0.1 if name in ("circle", "ring") else 0.2
    var = {
        "style": styles[int(vr.integers(0, len(styles)))],
        "outline": outline,
        "stretch": float(vr.uniform(1 - squash, 1 + squash)),
        "edge": float(vr.uniform(0.015, 0.07)),  # border or outline width, share of the side
        "clutter": float(vr.uniform(0.0, 1.0)) if vr.random() < 0.5 else 1.0,
        # drawn only when asked for, so the random stream without backdrops is unchanged
        "backdrop": (["clutter", "clutter", "field", "field", "flat"][int(vr.integers(0, 5))]
                     if opts.backdrops else "clutter"),
        # also drawn only when asked for
        **(_broad(vr) if opts.broad else {}),
    }
    if opts.line_share is not None:  # drawn last, so the stream without it is unchanged
        lines = styles[1:]
        var["style"] = (lines[int(vr.integers(0, len(lines)))] if vr.random() < opts.line_share
                        else "filled")
    return var


BROAD_MAX_DIAM = 0.62  # largest shape with ``broad`` variety, share of the side


def _broad(vr: np.random.Generator) -> dict:
    return {
        "inner": float(vr.uniform(0.45, 0.86)),  # ring hole, share of the outer radius
        "max_diam": BROAD_MAX_DIAM,
        "inset": bool(vr.random() < 0.5),  # the line lies inside the edge, not on it
        "edge": float(vr.uniform(0.012, 0.07)),
    }


def _place(rng: np.random.Generator, v: np.ndarray, margin: float) -> np.ndarray:
    """A random centre keeping the outline v (centred on the origin, in image units)
    inside the image with `margin` to spare; returns that centre."""
    lo, hi = v.min(0), v.max(0)
    cx = rng.uniform(margin - lo[0], 1 - margin - hi[0])
    cy = rng.uniform(margin - lo[1], 1 - margin - hi[1])
    return np.array([cx, cy])


def _rotate(v: np.ndarray, rot: float, r: float) -> np.ndarray:
    c, s = math.cos(rot), math.sin(rot)
    return v @ np.array([[c, s], [-s, c]]) * r


def _shape_alpha(rng: np.random.Generator, size: int, name: str, min_diam: float = 0.12,
                 var: dict | None = None):
    """(fill alpha, edge alpha or None) as float32 [size,size]; the edge is the border or
    outline line of a ``_variety`` style."""
    S = size * SUPERSAMPLE
    diam = rng.uniform(min_diam, 0.40 if var is None else var.get("max_diam", VARIETY_MAX_DIAM))
    r = diam / 2
    rot = rng.uniform(0, 2 * np.pi)
    inner = rng.uniform(0.45, 0.68)  # ring only
    if var is not None and "inner" in var:
        inner = var["inner"]
    margin = 1.5 / size
    canvas = Image.new("L", (S, S), 0)
    d = ImageDraw.Draw(canvas)
    if var is not None:
        v = _rotate(var["outline"] * np.array([var["stretch"], 1.0 / var["stretch"]]), rot, r)
        centre = _place(rng, v, margin)
        rings = [v] + ([v * inner] if name == "ring" else [])
        paths = [[tuple(p) for p in (ring + centre) * S] for ring in rings]
        for i, pts in enumerate(paths):
            d.polygon(pts, fill=255 if i == 0 else 0)
        fill = np.asarray(canvas.reduce(SUPERSAMPLE), np.float32) / 255.0
        if var["style"] == "filled":
            return fill, None
        edge_canvas = Image.new("L", (S, S), 0)
        e = ImageDraw.Draw(edge_canvas)
        inset = var.get("inset", False)
        # an inset line is drawn twice as wide on the edge and cut to the figure
        line = 2 * var["edge"] if inset else min(var["edge"], 0.4 * r)
        width = max(SUPERSAMPLE, int(round(line * S)))
        for pts in paths:
            e.line(pts + pts[:2], fill=255, width=width, joint="curve")
        edge = np.asarray(edge_canvas.reduce(SUPERSAMPLE), np.float32) / 255.0
        return fill, (np.minimum(edge, fill) if inset else edge)
    if name in ("circle", "ring"):
        cx, cy = _place(rng, np.array([[-r, -r], [r, r]]), margin)
        d.ellipse([(cx - r) * S, (cy - r) * S, (cx + r) * S, (cy + r) * S], fill=255)
        if name == "ring":
            ri = r * inner
            d.ellipse([(cx - ri) * S, (cy - ri) * S, (cx + ri) * S, (cy + ri) * S], fill=0)
    else:
        v = _rotate(POLYGONS[name], rot, r)
        d.polygon([tuple(p) for p in (v + _place(rng, v, margin)) * S], fill=255)
    return np.asarray(canvas.reduce(SUPERSAMPLE), np.float32) / 255.0, None


def _contrasting(rng: np.random.Generator, ref: np.ndarray, min_dist: float = 120.0) -> np.ndarray:
    lum = np.array([0.299, 0.587, 0.114], np.float32)
    best, best_d = None, -1.0
    for _ in range(40):
        col = _rand_colour(rng)
        dist = float(np.linalg.norm(col - ref))
        dl = abs(float((col - ref) @ lum))
        score = min(dist, 2.2 * dl)
        if score >= min_dist:
            return col
        if score > best_d:
            best, best_d = col, score
    # fall back: push the best candidate away from the reference luminance
    lr = float(ref @ lum)
    return np.full(3, 20.0 if lr > 127 else 235.0, np.float32) if best_d < 60 else best


def render(rng: np.random.Generator, size: int, label: int | None = None, difficulty: float = 1.0,
           variety: Variety = Variety()):
    """Render one image. Returns (rgb uint8 [size,size,3], mask bool [size,size], label).

    ``difficulty`` < 1 (a training curriculum) fades the clutter and keeps shapes
    larger; at the default 1.0 the output is the full data set (same random
    stream either way).  ``variety`` (training only) draws ``variety.share`` of the
    images in a ``_variety`` style; at the default share 0 the random stream, and so
    every seeded set, is unchanged.
    The mask of a bordered or outlined figure is its whole region, interior included.
    """
    d = float(np.clip(difficulty, 0.0, 1.0))
    if label is None:
        label = int(rng.integers(0, len(CLASSES)))
    name = CLASSES[label]
    noise_seed = int(rng.integers(0, 2**63 - 1))
    var, vr = None, None
    if variety.share > 0:
        vr = np.random.default_rng(int(rng.integers(0, 2**63 - 1)))
        if vr.random() < variety.share:
            var = _variety(vr, name, variety)
    clutter = d if var is None else d * var["clutter"]

    if var is not None and var["backdrop"] != "clutter":
        img = _backdrop(vr, size, var["backdrop"])
    else:
        img = _background(rng, size, clutter)
    for _ in range(int(rng.integers(1, 3))):  # up to two stroke colours
        n = int(rng.integers(1, 6))
        a = _stroke_layer(rng, size, n) * (rng.uniform(0.6, 1.0) * clutter)
        col = _rand_colour(rng)
        img = img + a[..., None] * (col - img)

    alpha, edge = _shape_alpha(rng, size, name, 0.12 + 0.2 * (1 - d), var)
    mask = (alpha if edge is None else np.maximum(alpha, edge)) >= 0.5
    # local background under (and just around) the shape
    ref = np.clip(img[mask], 0, 255).mean(0) if mask.any() else np.clip(img, 0, 255).mean((0, 1))
    c1 = _contrasting(rng, ref)
    if rng.random() < 0.3:  # two-tone linear fill
        c2 = np.clip(c1 + rng.uniform(-45, 45, 3), 0, 255).astype(np.float32)
        if min(np.linalg.norm(c2 - ref), 999) < 100:
            c2 = c1
        x, y = _grid(size)
        th = rng.uniform(0, 2 * np.pi)
        t = (x * math.cos(th) + y * math.sin(th))
        t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
        fill = c1[None, None, :] + t[..., None] * (c2 - c1)[None, None, :]
    else:
        fill = c1[None, None, :]
    if var is not None and var["style"] == "outlined":
        img = img + edge[..., None] * (fill - img)
    else:
        img = img + alpha[..., None] * (fill - img)
        if edge is not None:  # a border that stands out from the fill and the background
            border = _contrasting(vr, c1 if vr.random() < 0.7 else ref)
            img = img + edge[..., None] * (border - img)

    nrng = np.random.default_rng(noise_seed)
    sigma = nrng.uniform(0, 10)
    img = img + nrng.normal(0, 1, (size, size, 3)).astype(np.float32) * sigma
    rgb = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    return rgb, mask, label


def render_batch(rng: np.random.Generator, size: int, n: int, difficulty: float = 1.0,
                 variety: Variety = Variety()):
    """n images as (uint8 [n,size,size,3], bool [n,size,size], int64 [n])."""
    imgs = np.empty((n, size, size, 3), np.uint8)
    masks = np.empty((n, size, size), bool)
    labels = np.empty(n, np.int64)
    for i in range(n):
        imgs[i], masks[i], labels[i] = render(rng, size, difficulty=difficulty, variety=variety)
    return imgs, masks, labels


def write_set(out: str, seed: int, count: int, size: int, fmt: str = "png", quality: int = 90,
              fast_png: bool = False):
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(seed)
    width = max(3, len(str(count - 1)))
    # The same pixels either way; the smallest files take three times as long to write.
    png = {"compress_level": 1} if fast_png else {"optimize": True}
    items = []
    for i in range(count):
        rgb, mask, label = render(rng, size, label=i % len(CLASSES))
        stem = f"{i:0{width}d}"
        img_name = f"{stem}.{fmt}"
        if fmt == "jpg":
            Image.fromarray(rgb).save(os.path.join(out, img_name), quality=quality)
        else:
            Image.fromarray(rgb).save(os.path.join(out, img_name), **png)
        Image.fromarray(mask.astype(np.uint8) * 255).convert("1").save(
            os.path.join(out, f"{stem}_mask.png"), **png)
        items.append({"image": img_name, "mask": f"{stem}_mask.png", "label": int(label)})
    with open(os.path.join(out, "index.json"), "w") as f:
        json.dump({"classes": CLASSES, "seed": seed, "size": size, "items": items}, f, indent=1)
        f.write("\n")
    return items


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--count", type=int, required=True)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--out", required=True)
    ap.add_argument("--format", choices=["png", "jpg"], default="png")
    ap.add_argument("--quality", type=int, default=90, help="JPEG quality")
    ap.add_argument("--fast-png", action="store_true",
                    help="write PNGs quickly (larger files, the same pixels)")
    a = ap.parse_args(argv)
    write_set(a.out, a.seed, a.count, a.size, a.format, a.quality, a.fast_png)
    print(f"wrote {a.count} images to {a.out}")


if __name__ == "__main__":
    sys.exit(main())
