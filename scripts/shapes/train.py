#!/usr/bin/env python3
"""Train the vit-lens default model: a DeiT-Ti-geometry ViT on procedural shapes.

One command reproduces ``assets/model/``::

    python3 scripts/shapes/train.py --out assets/model --minutes 50 --threads 1 --seed 0

What it does:

* builds a ``transformers.ViTForImageClassification`` (hidden 192, 3 heads,
  MLP 768, patch 16, qkv bias, LayerNorm eps 1e-12, 8 labels = the classes of
  ``shapes.py``; ``--layers`` encoder blocks, default 4),
* trains on images generated on the fly by ``shapes.py`` from a seeded stream
  (``SeedSequence([seed, 1])``; evaluation uses different seeds that training
  never sees), normalised exactly like the ViT image processor at inference
  (x/255, mean 0.5, std 0.5),
* phase 1 (first ~80 % of the time budget): 112 px images, ``image_size=112``
  (7x7 position grid); phase 2 (last ~20 %): the 7x7 patch position
  embeddings are bicubically interpolated to 14x14 (CLS embedding untouched)
  and training continues at 224 px,
* a curriculum: for the first ``--curriculum`` (40 %) of phase 1 the data
  difficulty ramps from ``--start-difficulty`` to 1 (fainter clutter, larger
  minimum shape size; see ``shapes.render(difficulty=...)``),
* AdamW (lr 1.5e-4), linear warm-up + cosine decay driven by elapsed wall time,
  cross-entropy with light label smoothing; every generated image is used
  ``--reuse`` times (once as drawn, then in the next step under a random
  flip/90-degree rotation, which never changes the class) to halve the
  generator cost,
* stops by the wall-clock budget (``--minutes``, including export and
  evaluation), exports Hugging Face layout into ``--out`` (config.json,
  preprocessor_config.json, f16 model.safetensors), evaluates the exported
  model on held-out 224 px images (accuracy, attention-rollout pointing game,
  rollout mass inside the mask) and writes ``--out/README.md`` and
  ``--out/train_log.txt``.

Checkpoints (full f32 state + optimizer) go to ``--work`` (default
/tmp/shapes-train) at the phase boundary and at the end.

``--bench`` only measures generator and training throughput and exits.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import shapes  # noqa: E402

EVAL_SEED = 900001          # python held-out evaluation (500 images)
FIXTURE_SEED = 900002       # tests/fixtures/shapes/heldout
SAMPLES_SEED = 900003       # assets/samples


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description="train the vit-lens shapes model")
    ap.add_argument("--out", default="assets/model")
    ap.add_argument("--minutes", type=float, default=50.0, help="total wall-clock budget incl. export+eval")
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1.5e-4)
    ap.add_argument("--curriculum", type=float, default=0.4,
                    help="fraction of phase 1 over which data difficulty ramps up to 1")
    ap.add_argument("--start-difficulty", type=float, default=0.15)
    ap.add_argument("--wd", type=float, default=0.05)
    ap.add_argument("--smoothing", type=float, default=0.05)
    ap.add_argument("--hi-frac", type=float, default=0.2, help="fraction of training time at 224 px")
    ap.add_argument("--reserve-minutes", type=float, default=3.0, help="kept for export + evaluation")
    ap.add_argument("--reuse", type=int, default=2, choices=[1, 2])
    ap.add_argument("--eval-count", type=int, default=500)
    ap.add_argument("--work", default="/tmp/shapes-train")
    ap.add_argument("--log-every", type=int, default=25)
    ap.add_argument("--bench", action="store_true")
    return ap.parse_args(argv)


ARGS = None
LOG = None


def log(msg: str):
    line = f"[{time.strftime('%H:%M:%S')}] {msg}"
    print(line, flush=True)
    if LOG is not None:
        with open(LOG, "a") as f:
            f.write(line + "\n")


# ------------------------------------------------------------------ model ---

def make_config(layers: int, image_size: int):
    from transformers import ViTConfig
    return ViTConfig(
        hidden_size=192, num_hidden_layers=layers, num_attention_heads=3,
        intermediate_size=768, hidden_act="gelu", hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0, initializer_range=0.02,
        layer_norm_eps=1e-12, image_size=image_size, patch_size=16,
        num_channels=3, qkv_bias=True, num_labels=len(shapes.CLASSES),
        id2label={i: n for i, n in enumerate(shapes.CLASSES)},
        label2id={n: i for i, n in enumerate(shapes.CLASSES)},
    )


def interpolate_pos(pe, new_grid: int):
    """[1, 1+g*g, D] -> [1, 1+n*n, D]: bicubic (align_corners=False) on the patch part."""
    import torch
    import torch.nn.functional as F
    cls, grid = pe[:, :1], pe[:, 1:]
    g = int(round(math.sqrt(grid.shape[1])))
    d = grid.shape[2]
    grid = grid.reshape(1, g, g, d).permute(0, 3, 1, 2)
    grid = F.interpolate(grid, size=(new_grid, new_grid), mode="bicubic", align_corners=False)
    grid = grid.permute(0, 2, 3, 1).reshape(1, new_grid * new_grid, d)
    return torch.cat([cls, grid], 1)


def to_tensor(imgs_u8):
    import torch
    x = torch.from_numpy(imgs_u8).permute(0, 3, 1, 2).float()
    return x.div_(127.5).sub_(1.0)  # (x/255 - 0.5) / 0.5


def d4(imgs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    out = np.empty_like(imgs)
    for i in range(len(imgs)):
        a = imgs[i]
        k = int(rng.integers(0, 8))
        if k & 4:
            a = a[:, ::-1]
        out[i] = np.rot90(a, k & 3)
    return out


def make_optimizer(model, lr, wd):
    import torch
    decay, no_decay = [], []
    for n, p in model.named_parameters():
        (no_decay if p.ndim < 2 or "position_embeddings" in n or "cls_token" in n else decay).append(p)
    return torch.optim.AdamW([
        {"params": decay, "weight_decay": wd},
        {"params": no_decay, "weight_decay": 0.0},
    ], lr=lr, betas=(0.9, 0.999))


# -------------------------------------------------------------- training ---

class Stream:
    """Fresh seeded images, each used `reuse` times (2nd time D4-transformed)."""

    def __init__(self, seed, batch, reuse):
        self.rng = np.random.default_rng(np.random.SeedSequence([seed, 1]))
        self.aug = np.random.default_rng(np.random.SeedSequence([seed, 2]))
        self.batch, self.reuse = batch, reuse
        self.prev = None
        self.gen_time = 0.0
        self.generated = 0

    def next(self, size, difficulty=1.0):
        t0 = time.time()
        n_new = self.batch // self.reuse
        imgs, _, labels = shapes.render_batch(self.rng, size, n_new, difficulty)
        self.generated += n_new
        if self.reuse == 2:
            if self.prev is None or self.prev[0].shape[1] != size:
                more, _, more_l = shapes.render_batch(self.rng, size, self.batch - n_new, difficulty)
                self.generated += len(more)
                self.prev = (more, more_l)
            old, old_l = self.prev
            self.prev = (imgs, labels)
            imgs = np.concatenate([imgs, d4(old, self.aug)[: self.batch - n_new]])
            labels = np.concatenate([labels, old_l[: self.batch - n_new]])
        self.gen_time += time.time() - t0
        return imgs, labels


def lr_at(phase, frac, step_in_phase, peak):
    if phase == 1:
        warm = min(1.0, (step_in_phase + 1) / 300)
        lo, hi = 0.1 * peak, peak
    else:
        warm = min(1.0, (step_in_phase + 1) / 30)
        lo, hi = 0.0, 0.3 * peak
    frac = min(max(frac, 0.0), 1.0)
    return warm * (lo + (hi - lo) * 0.5 * (1 + math.cos(math.pi * frac)))


def save_ckpt(path, model, opt, step, phase):
    import torch
    torch.save({"model": model.state_dict(), "config": model.config.to_dict(),
                "opt": opt.state_dict(), "step": step, "phase": phase}, path)
    log(f"checkpoint -> {path}")


def train(args):
    import torch
    import torch.nn.functional as F
    from transformers import ViTForImageClassification

    torch.manual_seed(args.seed)
    t_start = time.time()
    train_s = args.minutes * 60 - args.reserve_minutes * 60
    p1_s = train_s * (1 - args.hi_frac)
    model = ViTForImageClassification(make_config(args.layers, 112))
    model.train()
    nparam = sum(p.numel() for p in model.parameters())
    log(f"model: {args.layers} layers, {nparam/1e6:.2f} M params; budget {args.minutes} min "
        f"(train {train_s/60:.1f} min: 112 px until {p1_s/60:.1f} min, then 224 px)")
    opt = make_optimizer(model, args.lr, args.wd)
    stream = Stream(args.seed, args.batch, args.reuse)

    step, seen = 0, 0
    stats = {"loss": 0.0, "correct": 0, "n": 0, "t": time.time(), "gen": 0.0}
    ema_acc = None
    phase, phase_step, phase_t0, size = 1, 0, time.time(), 112
    summary = {}
    while True:
        el = time.time() - t_start
        if phase == 1 and el >= p1_s:
            summary["phase1"] = {"steps": step, "images": seen, "seconds": el}
            save_ckpt(os.path.join(args.work, "phase1_112.pt"), model, opt, step, 1)
            sd = model.state_dict()
            key = "vit.embeddings.position_embeddings"
            sd[key] = interpolate_pos(sd[key], 14)
            new = ViTForImageClassification(make_config(args.layers, 224))
            new.load_state_dict(sd, strict=True)
            new.train()
            old_state = {n: opt.state[p] for n, p in model.named_parameters() if p in opt.state}
            opt = make_optimizer(new, args.lr, args.wd)
            for n, p in new.named_parameters():
                st = old_state.get(n)
                if st is not None and st["exp_avg"].shape == p.shape:
                    opt.state[p] = st
            model = new
            phase, phase_step, phase_t0, size = 2, 0, time.time(), 224
            stream.prev = None
            log(f"=== phase 2: position embeddings 7x7 -> 14x14 bicubic, training at 224 px ===")
            stats.update(loss=0.0, correct=0, n=0, t=time.time(), gen=stream.gen_time)
        if el >= train_s:
            break
        if phase == 1:
            frac = el / p1_s
        else:
            frac = (el - (phase_t0 - t_start)) / max(train_s - (phase_t0 - t_start), 1.0)
        lr = lr_at(phase, frac, phase_step, args.lr)
        for g in opt.param_groups:
            g["lr"] = lr

        if phase == 1 and args.curriculum > 0:
            diff = min(1.0, args.start_difficulty + (1 - args.start_difficulty) * el / (args.curriculum * p1_s))
        else:
            diff = 1.0
        imgs, labels = stream.next(size, diff)
        x = to_tensor(imgs)
        y = torch.from_numpy(labels)
        logits = model(pixel_values=x).logits
        loss = F.cross_entropy(logits, y, label_smoothing=args.smoothing)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()

        step += 1
        phase_step += 1
        seen += len(y)
        correct = int((logits.argmax(1) == y).sum())
        stats["loss"] += float(loss) * len(y)
        stats["correct"] += correct
        stats["n"] += len(y)
        acc_b = correct / len(y)
        ema_acc = acc_b if ema_acc is None else 0.98 * ema_acc + 0.02 * acc_b
        if step % args.log_every == 0:
            dt = time.time() - stats["t"]
            gen = stream.gen_time - stats["gen"]
            log(f"step {step:6d} p{phase} {size}px diff {diff:.2f} el {el/60:5.1f}m lr {lr:.2e} "
                f"loss {stats['loss']/stats['n']:.4f} acc {stats['correct']/stats['n']:.3f} "
                f"ema_acc {ema_acc:.3f} | {stats['n']/dt:6.1f} img/s "
                f"(gen {gen/dt*100:4.1f}% of time) seen {seen} fresh {stream.generated}")
            stats.update(loss=0.0, correct=0, n=0, t=time.time(), gen=stream.gen_time)

    el = time.time() - t_start
    summary["total"] = {"steps": step, "images": seen, "fresh_images": stream.generated, "seconds": el}
    if "phase1" in summary:
        summary["phase2"] = {"steps": step - summary["phase1"]["steps"],
                             "images": seen - summary["phase1"]["images"],
                             "seconds": el - summary["phase1"]["seconds"]}
    log(f"training done: {step} steps, {seen} images ({stream.generated} freshly generated), {el/60:.1f} min")
    save_ckpt(os.path.join(args.work, f"final_{size}.pt"), model, opt, step, phase)
    if phase == 1:  # budget too small for phase 2: still export a 224 model
        sd = model.state_dict()
        key = "vit.embeddings.position_embeddings"
        sd[key] = interpolate_pos(sd[key], 14)
        model = ViTForImageClassification(make_config(args.layers, 224))
        model.load_state_dict(sd, strict=True)
    return model, summary


# ---------------------------------------------------------------- export ---

def export(model, out):
    import torch
    from safetensors import safe_open
    from safetensors.torch import save_file
    from transformers import ViTImageProcessorPil

    os.makedirs(out, exist_ok=True)
    model = model.eval().to(torch.float16)
    model.config.image_size = 224
    model.save_pretrained(out)
    st_path = os.path.join(out, "model.safetensors")
    with safe_open(st_path, "pt") as f:
        keys = list(f.keys())
        dtypes = {str(f.get_tensor(k).dtype) for k in keys}
    want = "vit.encoder.layer.0.attention.attention.query.weight"
    if want not in keys or dtypes != {"torch.float16"}:
        log(f"save_pretrained wrote unexpected keys/dtypes ({dtypes}); rewriting with classic names")
        sd = {k: v.detach().to(torch.float16).contiguous() for k, v in model.state_dict().items()}
        save_file(sd, st_path, metadata={"format": "pt"})
        with safe_open(st_path, "pt") as f:
            keys = list(f.keys())
    assert want in keys, keys[:10]
    for extra in ("generation_config.json",):
        p = os.path.join(out, extra)
        if os.path.exists(p):
            os.remove(p)
    proc = ViTImageProcessorPil(
        do_resize=True, size={"height": 224, "width": 224}, resample=2,
        do_rescale=True, rescale_factor=1 / 255, do_normalize=True,
        image_mean=[0.5, 0.5, 0.5], image_std=[0.5, 0.5, 0.5])
    proc.save_pretrained(out)
    total = sum(os.path.getsize(os.path.join(out, f)) for f in os.listdir(out))
    log(f"exported to {out}: {len(keys)} tensors, keys e.g. {want}; dir size {total/1e6:.2f} MB")
    return keys


# ------------------------------------------------------------ evaluation ---

def rollout(attentions):
    """attentions: list of [B,H,T,T] -> CLS-row rollout over patches [B, T-1]."""
    import torch
    res = None
    for a in attentions:
        a = a.float().mean(1)  # mean head fusion, discard ratio 0
        eye = torch.eye(a.shape[-1], dtype=a.dtype).expand_as(a)
        a = (a + eye) / 2
        a = a / a.sum(-1, keepdim=True)
        res = a if res is None else a @ res
    return res[:, 0, 1:]


def dilate(mask: np.ndarray, r: int) -> np.ndarray:
    """Square (Chebyshev) dilation by r pixels."""
    m = mask.copy()
    h, w = m.shape
    out = np.zeros_like(m)
    for dy in range(-r, r + 1):
        ys = slice(max(0, dy), h + min(0, dy))
        yd = slice(max(0, -dy), h + min(0, -dy))
        out[yd] |= m[ys]
    m2 = np.zeros_like(out)
    for dx in range(-r, r + 1):
        xs = slice(max(0, dx), w + min(0, dx))
        xd = slice(max(0, -dx), w + min(0, -dx))
        m2[:, xd] |= out[:, xs]
    return m2


def evaluate_arrays(model, pixel_values, labels, masks, batch=50):
    """pixel_values: float [N,3,224,224] normalised; masks: bool [N,224,224] or None."""
    import torch
    preds, hits, mass, area = [], [], [], []
    with torch.no_grad():
        for i in range(0, len(labels), batch):
            out = model(pixel_values=pixel_values[i:i + batch], output_attentions=True)
            preds.append(out.logits.argmax(1).numpy())
            if masks is None:
                continue
            r = rollout(out.attentions).numpy()  # [b,196]
            g = int(round(math.sqrt(r.shape[1])))
            p = 224 // g
            for j in range(r.shape[0]):
                m = masks[i + j]
                k = int(r[j].argmax())
                cy, cx = (k // g) * p + p // 2, (k % g) * p + p // 2
                hits.append(bool(dilate(m, p)[cy, cx]))
                frac_in = m.reshape(g, p, g, p).mean((1, 3)).reshape(-1)
                rn = r[j] / r[j].sum()
                mass.append(float((rn * frac_in).sum()))
                area.append(float(m.mean()))
    preds = np.concatenate(preds)
    res = {"n": int(len(labels)), "accuracy": float((preds == labels).mean())}
    conf = np.zeros((8, 8), int)
    for t, p_ in zip(labels, preds):
        conf[t, p_] += 1
    res["per_class_accuracy"] = {c: float(conf[i, i] / max(conf[i].sum(), 1)) for i, c in enumerate(shapes.CLASSES)}
    res["confusion"] = conf.tolist()
    if hits:
        res["pointing_game"] = float(np.mean(hits))
        res["rollout_mass_in_mask"] = float(np.mean(mass))
        res["mask_area_fraction"] = float(np.mean(area))
    return res


def evaluate(out, count):
    import torch
    from PIL import Image
    from transformers import ViTForImageClassification, ViTImageProcessorPil

    model = ViTForImageClassification.from_pretrained(out, attn_implementation="eager", dtype=torch.float32).eval()
    results = {}
    rng = np.random.default_rng(EVAL_SEED)
    imgs, masks, labels = [], [], []
    for i in range(count):
        a, m, l = shapes.render(rng, 224, label=i % 8)
        imgs.append(a); masks.append(m); labels.append(l)
    imgs, masks, labels = np.stack(imgs), np.stack(masks), np.array(labels)
    results["generated_224"] = evaluate_arrays(model, to_tensor(imgs), labels, masks)
    results["generated_224"]["seed"] = EVAL_SEED

    # the committed fixtures, through the real inference preprocessing
    proc = ViTImageProcessorPil.from_pretrained(out)
    root = os.path.join(os.path.dirname(os.path.dirname(HERE)), "tests", "fixtures", "shapes")
    for name in ("heldout", "other_hands"):
        d = os.path.join(root, name)
        idx = os.path.join(d, "index.json")
        if not os.path.exists(idx):
            continue
        items = json.load(open(idx))["items"]
        pil = [Image.open(os.path.join(d, it["image"])).convert("RGB") for it in items]
        pv = proc(images=pil, return_tensors="pt")["pixel_values"].float()
        lab = np.array([it["label"] for it in items])
        ms = None
        if all(it.get("mask") for it in items):
            ms = np.stack([np.asarray(Image.open(os.path.join(d, it["mask"])).convert("L").resize(
                (224, 224), Image.NEAREST)) > 127 for it in items])
        results[name] = evaluate_arrays(model, pv, lab, ms)
    return results


# ---------------------------------------------------------------- readme ---

def write_readme(out, args, summary, results, keys, wall_s):
    size = os.path.getsize(os.path.join(out, "model.safetensors"))
    g = results.get("generated_224", {})
    cmd = (f"python3 scripts/shapes/train.py --out {args.out} --minutes {args.minutes:g} "
           f"--layers {args.layers} --threads {args.threads} --seed {args.seed}")

    def fmt(r):
        s = f"accuracy **{r['accuracy']*100:.1f} %** (n={r['n']})"
        if "pointing_game" in r:
            s += (f", pointing game **{r['pointing_game']*100:.1f} %**, rollout mass in mask "
                  f"{r['rollout_mass_in_mask']*100:.1f} % vs mask area {r['mask_area_fraction']*100:.1f} %")
        return s

    lines = [
        "# vit-lens default model: ViT (DeiT-Ti geometry) trained on procedural shapes",
        "",
        "A small Vision Transformer that classifies one of eight simple shapes drawn on",
        "cluttered backgrounds. It is the app's embedded default model, so the demo means",
        "something offline: the attention-rollout heatmap should land on the shape.",
        "",
        "## Classes (index order)",
        "",
        " | ".join(f"{i} {c}" for i, c in enumerate(shapes.CLASSES)),
        "",
        "## Geometry",
        "",
        f"`ViTForImageClassification`: {args.layers} encoder layers, hidden 192, 3 heads, MLP 768,",
        "patch 16, image 224x224 (14x14 patches + CLS), qkv bias, LayerNorm eps 1e-12, GELU,",
        f"8 labels. Weights stored as float16 in `model.safetensors` ({size/1e6:.2f} MB,",
        f"{len(keys)} tensors, classic Hugging Face names such as",
        "`vit.encoder.layer.0.attention.attention.query.weight`).",
        "",
        "Preprocessing (`preprocessor_config.json`, the standard ViT image processor): resize to",
        "224x224 bilinear, rescale 1/255, normalise mean 0.5 / std 0.5.",
        "",
        "## Training",
        "",
        "```",
        cmd,
        "```",
        "",
        "Data: `scripts/shapes/shapes.py`, generated on the fly from a seeded stream",
        f"(`SeedSequence([{args.seed}, 1])`); each image is used twice (second time under a random",
        "flip / 90-degree rotation). Phase 1 trains at 112 px (7x7 position grid); for the",
        f"last {args.hi_frac*100:.0f} % of the time the position embeddings are bicubically",
        "interpolated to 14x14 and training continues at 224 px.",
        f"AdamW (lr {args.lr:g}, weight decay {args.wd:g}), warm-up + cosine by wall time,",
        f"batch {args.batch}, label smoothing {args.smoothing:g}, one CPU thread.",
        f"Curriculum: data difficulty (clutter strength, minimum shape size) ramps linearly from",
        f"{args.start_difficulty:g} to 1 over the first {args.curriculum*100:.0f} % of phase 1; afterwards full difficulty.",
        "(A first attempt at lr 5e-4 without curriculum stayed at chance for 2400 steps.)",
        "",
    ]
    t = summary.get("total", {})
    if "phase1" in summary:
        p1, p2 = summary["phase1"], summary.get("phase2", {})
        lines.append(f"- phase 1 (112 px): {p1['steps']} steps, {p1['images']} images, {p1['seconds']/60:.1f} min")
        if p2:
            lines.append(f"- phase 2 (224 px): {p2['steps']} steps, {p2['images']} images, {p2['seconds']/60:.1f} min")
    lines += [
        f"- total: {t.get('steps')} steps, {t.get('images')} images seen "
        f"({t.get('fresh_images')} distinct), training {t.get('seconds', 0)/60:.1f} min; "
        f"wall time incl. export + evaluation {wall_s/60:.1f} min",
        "- full log: `train_log.txt`",
        "",
        "## Held-out evaluation (224 px, exported f16 weights run in f32)",
        "",
    ]
    if g:
        lines.append(f"- generated, seed {EVAL_SEED} (never used in training): {fmt(g)}")
    if "heldout" in results:
        lines.append(f"- `tests/fixtures/shapes/heldout` (JPEG, seed {FIXTURE_SEED}, via the image processor): {fmt(results['heldout'])}")
    if "other_hands" in results:
        lines.append(f"- `tests/fixtures/shapes/other_hands` (different drawing code and styles): {fmt(results['other_hands'])}")
    if g:
        lines += ["", "Per-class accuracy (generated set): " +
                  ", ".join(f"{c} {v*100:.0f} %" for c, v in g["per_class_accuracy"].items())]
    lines += [
        "",
        "Pointing game: the argmax patch of the attention rollout (mean head fusion,",
        "discard ratio 0, A = (W + I) / 2 row-normalised, product over all layers, CLS row",
        "over the patches) counts as a hit when that patch's centre pixel lies inside the",
        "shape mask dilated by one patch (16 px, square structuring element). Rollout mass",
        "in mask: the rollout (normalised to sum 1) spread uniformly over each patch's",
        "16x16 pixels, summed over mask pixels; compare with the mask's area fraction.",
        "",
        "## License",
        "",
        "Same as the vit-lens project: MIT OR Apache-2.0. The weights were trained from",
        "scratch on synthetic data only.",
        "",
    ]
    with open(os.path.join(out, "README.md"), "w") as f:
        f.write("\n".join(lines))


# ----------------------------------------------------------------- bench ---

def bench(args):
    import torch
    import torch.nn.functional as F
    from transformers import ViTForImageClassification
    rng = np.random.default_rng(123)
    for size in (112, 224):
        n = 64 if size == 112 else 24
        t = time.time()
        shapes.render_batch(rng, size, n)
        log(f"generator {size} px: {n/(time.time()-t):.1f} img/s")
    for layers in sorted({4, args.layers, 6}):
        for size, steps in ((112, 6), (224, 3)):
            m = ViTForImageClassification(make_config(layers, size)).train()
            opt = make_optimizer(m, 1e-4, 0.05)
            x = torch.randn(args.batch, 3, size, size)
            y = torch.randint(0, 8, (args.batch,))
            for i in range(steps + 1):
                if i == 1:
                    t = time.time()
                loss = F.cross_entropy(m(pixel_values=x).logits, y)
                opt.zero_grad(); loss.backward(); opt.step()
            log(f"train {layers} layers {size} px batch {args.batch}: "
                f"{steps*args.batch/(time.time()-t):.1f} img/s (fwd+bwd+step)")


def main(argv=None):
    global ARGS, LOG
    args = ARGS = parse_args(argv)
    import torch
    torch.set_num_threads(args.threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass
    os.makedirs(args.work, exist_ok=True)
    if args.bench:
        bench(args)
        return
    os.makedirs(args.out, exist_ok=True)
    LOG = os.path.join(args.out, "train_log.txt")
    open(LOG, "w").close()
    t0 = time.time()
    log("args: " + json.dumps(vars(args)))
    log(f"torch {torch.__version__}, threads {torch.get_num_threads()}")
    model, summary = train(args)
    keys = export(model, args.out)
    del model
    results = {}
    try:
        results = evaluate(args.out, args.eval_count)
        for k, r in results.items():
            r2 = {kk: v for kk, v in r.items() if kk != "confusion"}
            log(f"eval {k}: " + json.dumps(r2))
            log(f"eval {k} confusion (rows=true): {r.get('confusion')}")
    except Exception as e:  # never lose the export because of the evaluation
        import traceback
        log("evaluation failed: " + "".join(traceback.format_exception(e)))
    wall = time.time() - t0
    with open(os.path.join(args.work, "summary.json"), "w") as f:
        json.dump({"summary": summary, "results": results, "wall_s": wall}, f, indent=1)
    write_readme(args.out, args, summary, results, keys, wall)
    log(f"all done in {wall/60:.1f} min")


if __name__ == "__main__":
    main()
