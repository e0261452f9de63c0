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
import io
import json
import math
import os
import sys
import time

import numpy as np
from PIL import Image

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
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--lr-end", type=float, default=2e-5)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--wd", type=float, default=0.05)
    ap.add_argument("--smoothing", type=float, default=0.0)
    ap.add_argument("--attn-weight", type=float, default=1.0,
                    help="weight of the CLS-attention supervision loss (0 turns it off)")
    ap.add_argument("--start-difficulty", type=float, default=0.0)
    ap.add_argument("--promote-at", type=float, default=0.85,
                    help="raise the data difficulty by 0.1 when the running accuracy exceeds this")
    ap.add_argument("--full-at", type=float, default=0.7,
                    help="fraction of the training time by which the difficulty reaches 1")
    ap.add_argument("--hard-frac", type=float, default=0.0,
                    help="share of each batch drawn from the pool in proportion to each image's last loss")
    ap.add_argument("--variety", type=float, default=0.0,
                    help="share of training images drawn in another style (shapes.render(variety=...))")
    ap.add_argument("--backdrops", action="store_true",
                    help="let variety images use a flat or out-of-focus colour-field background")
    ap.add_argument("--broad", action="store_true",
                    help="widen the variety styles: thinner rings, larger figures, borders and "
                         "outlines inside the edge as wide as the arms")
    ap.add_argument("--line-share", type=float, default=None,
                    help="chance that a variety figure is bordered or outlined (default: an even "
                         "choice of the styles)")
    ap.add_argument("--jpeg", type=float, default=0.0,
                    help="share of training images passed through JPEG at quality 50-95")
    ap.add_argument("--bf16", action="store_true", help="bfloat16 autocast for the forward pass")
    ap.add_argument("--pool", type=int, default=2048)
    ap.add_argument("--fresh", type=int, default=24, help="new images per step")
    ap.add_argument("--reserve-minutes", type=float, default=4.0, help="kept for export + evaluation")
    ap.add_argument("--checkpoint-minutes", type=float, default=5.0,
                    help="how often latest.pt is written in --work")
    ap.add_argument("--resume", default=None,
                    help="carry on a run cut off before its end from its latest.pt (same arguments)")
    ap.add_argument("--init", default=None,
                    help="start from the weights of a checkpoint train.py saved (a second stage)")
    ap.add_argument("--eval-count", type=int, default=500)
    ap.add_argument("--work", default="/tmp/shapes-train")
    ap.add_argument("--log-every", type=int, default=20)
    ap.add_argument("--final-name", default="final.pt", help="checkpoint file written in --work at the end")
    ap.add_argument("--bench", action="store_true")
    args = ap.parse_args(argv)
    for name in ("variety", "line_share", "hard_frac", "jpeg"):
        v = getattr(args, name)
        if v is not None and not 0.0 <= v <= 1.0:
            ap.error(f"--{name.replace('_', '-')} is a share: give a value from 0 to 1 (got {v:g})")
    return args


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
        attn_implementation="eager",  # training reads the attention probabilities
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

def sincos_2d(dim: int, grid: int):
    """Fixed 2-D sine-cosine position code [grid*grid, dim] (x then y), the init of the
    patch position embeddings: neighbouring patches start out similar."""
    import torch
    y, x = np.meshgrid(np.arange(grid), np.arange(grid), indexing="ij")
    omega = 1.0 / 10000 ** (np.arange(dim // 4) / (dim // 4))
    parts = []
    for coord in (x.reshape(-1, 1), y.reshape(-1, 1)):
        parts += [np.sin(coord * omega), np.cos(coord * omega)]
    return torch.tensor(np.concatenate(parts, 1), dtype=torch.float32)


class Pool:
    """A pool of generated images with masks. Each step replaces `fresh` of them with new
    images at the current difficulty and samples a batch under a random D4 transform (flips
    and quarter turns never change a shape's class)."""

    def __init__(self, seed, size, difficulty, variety=shapes.Variety(), jpeg=0.0):
        self.rng = np.random.default_rng(np.random.SeedSequence([seed, 1]))
        self.pick = np.random.default_rng(np.random.SeedSequence([seed, 2]))
        self.variety, self.jpeg = variety, jpeg
        t = time.time()
        self.x, self.m, self.y = self.render(size, difficulty)
        self.init_time = time.time() - t
        self.size, self.pos, self.generated, self.gen_time = size, 0, size, 0.0
        # last cross-entropy seen per image; NaN = not trained on yet
        self.loss = np.full(size, np.nan)

    def refresh(self, n, difficulty):
        t = time.time()
        x, m, y = self.render(n, difficulty)
        idx = (self.pos + np.arange(n)) % self.size
        self.x[idx], self.m[idx], self.y[idx] = x, m, y
        self.loss[idx] = np.nan
        self.pos = int((self.pos + n) % self.size)
        self.generated += n
        self.gen_time += time.time() - t

    def render(self, n, difficulty):
        x, m, y = shapes.render_batch(self.rng, 224, n, difficulty, self.variety)
        # what a photo or a download does to an image: JPEG at a random quality (the random
        # stream is only touched when the option is on, so runs without it are unchanged)
        if self.jpeg > 0:
            for i in range(n):
                if self.rng.random() < self.jpeg:
                    buf = io.BytesIO()
                    Image.fromarray(x[i]).save(buf, format="JPEG",
                                               quality=int(self.rng.integers(50, 96)))
                    x[i] = np.asarray(Image.open(buf).convert("RGB"))
        return x, m, y

    def batch(self, n, hard_frac=0.0):
        """n images: a `hard_frac` share drawn with probability proportional to the loss
        they last had (unseen images count as the hardest), the rest uniformly. Returns
        (images, masks, labels, pool indices)."""
        n_hard = int(round(n * hard_frac))
        idx = self.pick.integers(0, self.size, n - n_hard)
        if n_hard:
            seen = ~np.isnan(self.loss)
            top = float(self.loss[seen].max()) if seen.any() else 1.0
            w = np.where(seen, self.loss, top) + 1e-3
            hard = self.pick.choice(self.size, n_hard, replace=False, p=w / w.sum())
            idx = np.concatenate([idx, hard])
        x, m = self.x[idx], self.m[idx]
        k = int(self.pick.integers(0, 8))
        if k & 4:
            x, m = x[:, :, ::-1], m[:, :, ::-1]
        x = np.ascontiguousarray(np.rot90(x, k & 3, axes=(1, 2)))
        m = np.ascontiguousarray(np.rot90(m, k & 3, axes=(1, 2)))
        return x, m, self.y[idx], idx

    def update(self, idx, losses):
        self.loss[idx] = losses


def mask_targets(masks, patch=16):
    """Per-image distribution over patches: the mask's pixel share in each patch."""
    import torch
    b, h, w = masks.shape
    cover = masks.reshape(b, h // patch, patch, w // patch, patch).mean((2, 4)).reshape(b, -1)
    cover = torch.from_numpy(cover).float()
    return cover / cover.sum(1, keepdim=True).clamp_min(1e-6)


def save_ckpt(path, model, opt, step, state=None):
    """Weights, optimizer and, for `--resume`, where the run stands (`state`)."""
    import torch
    tmp = path + ".tmp"
    torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "step": step,
                "state": state or {}}, tmp)
    os.replace(tmp, path)  # a run cut off mid-write keeps the previous checkpoint
    log(f"checkpoint -> {path}")


def train(args):
    import torch
    import torch.nn.functional as F
    from transformers import ViTForImageClassification

    torch.manual_seed(args.seed)
    t_start = time.time()
    train_s = args.minutes * 60 - args.reserve_minutes * 60
    model = ViTForImageClassification(make_config(args.layers, 224))
    resumed = None
    if args.resume:
        resumed = torch.load(args.resume, weights_only=True)
        model.load_state_dict(resumed["model"])
        log(f"resuming {args.resume}: step {resumed['step']}, state {json.dumps(resumed['state'])}")
    elif args.init:
        model.load_state_dict(torch.load(args.init, weights_only=True)["model"])
        log(f"weights from {args.init}")
    else:
        with torch.no_grad():
            pe = model.vit.embeddings.position_embeddings
            pe[0, 1:] = 0.5 * sincos_2d(192, 14)
            pe[0, 0] = 0.0
    model.train()
    nparam = sum(p.numel() for p in model.parameters())
    log(f"model: {args.layers} layers, {nparam/1e6:.2f} M params; budget {args.minutes} min "
        f"(training {train_s/60:.1f} min)")
    opt = make_optimizer(model, args.lr, args.wd)
    difficulty = args.start_difficulty
    step, seen, ema_acc, generated = 0, 0, None, 0
    if resumed is not None:
        # Carry on the same schedule: the clock restarts at the saved training time, and the
        # pool is refilled from a stream that depends on the step, so no image repeats.
        opt.load_state_dict(resumed["opt"])
        st = resumed["state"]
        step, seen, ema_acc = resumed["step"], st["seen"], st["ema_acc"]
        difficulty, generated = st["difficulty"], st["generated"]
        t_start -= st["elapsed"]
    pool = Pool(args.seed if resumed is None else args.seed * 1_000_003 + step, args.pool,
                difficulty, shapes.Variety(args.variety, args.backdrops, args.broad, args.line_share),
                args.jpeg)
    pool.generated += generated
    log(f"pool of {args.pool} images generated in {pool.init_time:.0f} s")

    stats = {"loss": 0.0, "aux": 0.0, "correct": 0, "n": 0, "t": time.time(), "gen": 0.0}
    last_ckpt = time.time()
    while True:
        el = time.time() - t_start
        if el >= train_s:
            break
        frac = el / train_s
        warm = min(1.0, (step + 1) / args.warmup)
        lr = warm * (args.lr_end + (args.lr - args.lr_end) * 0.5 * (1 + math.cos(math.pi * frac)))
        for g in opt.param_groups:
            g["lr"] = lr
        # Curriculum: harder data once the model copes, and full difficulty by
        # `--full-at` of the time whatever happens.
        floor = min(1.0, frac / args.full_at)
        if ema_acc is not None and ema_acc > args.promote_at and step % 20 == 0:
            difficulty = min(1.0, difficulty + 0.1)
        difficulty = max(difficulty, floor)

        pool.refresh(args.fresh, difficulty)
        imgs, masks, labels, idx = pool.batch(args.batch, args.hard_frac)
        x, y = to_tensor(imgs), torch.from_numpy(labels).long()
        # bfloat16 autocast runs the matmuls at about twice the float32 speed on CPUs with
        # AVX512-BF16; weights, optimizer state and the losses stay float32.
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):
            out = model(pixel_values=x, output_attentions=args.attn_weight > 0)
        per_image = F.cross_entropy(out.logits.float(), y, label_smoothing=args.smoothing, reduction="none")
        loss = per_image.mean()
        pool.update(idx, per_image.detach().numpy())
        aux = torch.zeros(())
        if args.attn_weight > 0:
            # Attention supervision: every layer's CLS attention (mean over heads) should
            # put its mass on the shape's patches.
            target = mask_targets(masks)
            for att in out.attentions:
                cls_row = att[:, :, 0, 1:].float().mean(1)
                aux = aux - (target * torch.log(cls_row + 1e-6)).sum(1).mean()
            aux = aux / len(out.attentions)
        total = loss + args.attn_weight * aux
        opt.zero_grad(set_to_none=True)
        total.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()

        step += 1
        seen += len(y)
        correct = int((out.logits.argmax(1) == y).sum())
        stats["loss"] += float(loss.detach()) * len(y)
        stats["aux"] += float(aux.detach()) * len(y)
        stats["correct"] += correct
        stats["n"] += len(y)
        acc_b = correct / len(y)
        ema_acc = acc_b if ema_acc is None else 0.95 * ema_acc + 0.05 * acc_b
        if step % args.log_every == 0:
            dt = time.time() - stats["t"]
            gen = pool.gen_time - stats["gen"]
            log(f"step {step:6d} diff {difficulty:.2f} el {el/60:5.1f}m lr {lr:.2e} "
                f"loss {stats['loss']/stats['n']:.4f} attn {stats['aux']/stats['n']:.3f} "
                f"acc {stats['correct']/stats['n']:.3f} ema_acc {ema_acc:.3f} | "
                f"{stats['n']/dt:5.1f} img/s (gen {gen/dt*100:4.1f}%) seen {seen} fresh {pool.generated}")
            stats.update(loss=0.0, aux=0.0, correct=0, n=0, t=time.time(), gen=pool.gen_time)
        if time.time() - last_ckpt > args.checkpoint_minutes * 60:
            save_ckpt(os.path.join(args.work, "latest.pt"), model, opt, step, {
                "elapsed": time.time() - t_start, "seen": seen, "ema_acc": ema_acc,
                "difficulty": difficulty, "generated": pool.generated})
            last_ckpt = time.time()

    el = time.time() - t_start
    summary = {"total": {"steps": step, "images": seen, "fresh_images": pool.generated,
                         "seconds": el, "final_difficulty": difficulty}}
    log(f"training done: {step} steps, {seen} images ({pool.generated} generated), {el/60:.1f} min")
    save_ckpt(os.path.join(args.work, args.final_name), model, opt, step)
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
    cmd = "python3 scripts/shapes/train.py " + " ".join(sys.argv[1:])

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
        "`bash scripts/shapes/train_default.sh` reproduces this model from scratch; this",
        "export is the last stage it runs:",
        "",
        "```",
        cmd,
        "```",
        "",
        *([f"This stage starts from the weights of the previous one (`--init`); the logs of",
           "the earlier stages are `train_log_stage*.txt`.", ""] if args.init else []),
        "Data: `scripts/shapes/shapes.py` at 224 px, from a seeded stream",
        f"(`SeedSequence([{args.seed}, 1])`): a pool of {args.pool} images of which {args.fresh} are",
        "replaced by new ones every step; batches are drawn from the pool under a random flip /",
        "quarter turn (which never changes a shape's class).",
        "Position embeddings start as a 2-D sine-cosine code (x 0.5); the CLS embedding at 0.",
        f"AdamW (lr {args.lr:g} cosine to {args.lr_end:g} by wall time, {args.warmup} warm-up steps,",
        f"weight decay {args.wd:g}), batch {args.batch}, "
        f"{'one CPU thread' if args.threads == 1 else f'{args.threads} CPU threads'}"
        f"{', bfloat16 autocast for the forward pass (float32 weights and losses)' if args.bf16 else ''}.",
        *([f"Hard examples: {args.hard_frac*100:.0f} % of each batch is drawn from the pool in",
           "proportion to each image's last cross-entropy (images not yet trained on count as the",
           "hardest), the rest uniformly."] if args.hard_frac > 0 else []),
        *([f"Variety: {args.variety*100:.0f} % of the training images are drawn in another style",
           "(`shapes.render(variety=...)`: filled with a contrasting border, or only outlined;",
           "other star, cross and arrow proportions; a slight stretch; up to "
           + (f"{shapes.BROAD_MAX_DIAM * 100:.0f} % of the side; thinner rings; in half of the"
              " bordered or outlined figures a line inside the edge, as wide as the arms allow;"
              if args.broad else f"{shapes.VARIETY_MAX_DIAM * 100:.0f} % of the side;"),
           "calmer backgrounds" + (": less clutter, or in three of five a flat colour or an"
                                   " out-of-focus colour field)," if args.backdrops else "),"),
           *([f"{args.line_share * 100:.0f} % of these figures bordered or outlined, the rest filled,"]
             if args.line_share is not None else []),
           "so that the model knows a square by its outline and not only as",
           "a filled patch. The evaluation sets below never use it."] if args.variety > 0 else []),
        *([f"JPEG: {args.jpeg*100:.0f} % of the training images are saved and read back as JPEG at a",
           "quality drawn from 50–95, as photos and screenshots users drop usually are."]
          if args.jpeg > 0 else []),
        f"Curriculum: data difficulty (clutter strength, minimum shape size) starts at",
        f"{args.start_difficulty:g}, rises by 0.1 whenever the running accuracy exceeds",
        f"{args.promote_at:g}, and is 1 (the evaluation's) from {args.full_at*100:.0f} % of the time on.",
        "",
        f"Attention supervision (weight {args.attn_weight:g}): besides cross-entropy, the loss holds the",
        "cross-entropy between the shape's patch coverage (its mask pixels per patch, summed to 1)",
        "and each layer's CLS attention row over the patches (mean of the heads). The generator",
        "knows where the shape is, and telling the model where to look is what lets a",
        "from-scratch ViT leave chance level within this CPU budget (without it, 12.8k images at",
        "lr 3e-4 and 6.4k at lr 1e-3 stayed at chance). It also means the pointing game below",
        "measures how well that lesson generalises to unseen images, not an emergent property.",
        "",
    ]
    t = summary.get("total", {})
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
    if not args.resume:
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
