#!/usr/bin/env python3
"""Side-by-side CPU benchmark: `vit-lens bench` against PyTorch eager on the same checkpoint.

    python3 scripts/bench_vs_pytorch.py [--model DIR] [--threads 1] [--batch 1] [--runs 30]

transformers checkpoints are timed in transformers, timm checkpoints in timm.
Without --model it writes a DeiT-Ti-size checkpoint (224 px, patch 16, 192 wide, 12 layers,
3 heads, 1000 classes; seeded random weights, transformers layout) to a temporary folder.
Both sides get the same thread count, batch size, warm-up and number of timed runs, and
report the median milliseconds per image. PyTorch is timed twice: as transformers runs by
default (SDPA attention, logits only) and with `output_attentions=True` (eager attention),
which is the work vit-lens always does, since rollout needs every layer's attention.

Needs: torch, transformers (PyPI) and a release build of vit-lens (built if missing).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def make_checkpoint(out: Path) -> None:
    import torch
    import transformers

    torch.manual_seed(1234)
    cfg = transformers.ViTConfig(
        hidden_size=192,
        num_hidden_layers=12,
        num_attention_heads=3,
        intermediate_size=768,
        image_size=224,
        patch_size=16,
        num_labels=1000,
    )
    transformers.ViTForImageClassification(cfg).eval().save_pretrained(out)


def is_timm(model_dir: Path) -> bool:
    return "architecture" in json.loads((model_dir / "config.json").read_text())


def time_pytorch(model_dir: Path, threads: int, batch: int, warmup: int, runs: int, attentions: bool) -> dict:
    """transformers for transformers checkpoints, timm for timm ones (timm: logits only)."""
    import torch

    torch.set_num_threads(threads)
    if is_timm(model_dir):
        import timm

        model = timm.create_model(f"local-dir:{model_dir}", pretrained=True).eval()
        size = model.pretrained_cfg["input_size"][-1]
        forward = model
    else:
        import transformers

        impl = "eager" if attentions else "sdpa"
        model = transformers.AutoModelForImageClassification.from_pretrained(
            model_dir, attn_implementation=impl
        ).eval()
        size = model.config.image_size
        forward = lambda x: model(x, output_attentions=attentions)  # noqa: E731
    x = torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(0))
    per_image = []
    with torch.inference_mode():
        start = time.perf_counter()
        forward(x)
        first = (time.perf_counter() - start) * 1e3 / batch
        for _ in range(warmup):
            forward(x)
        for _ in range(runs):
            start = time.perf_counter()
            forward(x)
            per_image.append((time.perf_counter() - start) * 1e3 / batch)
    return {
        "median_ms": statistics.median(per_image),
        "min_ms": min(per_image),
        "max_ms": max(per_image),
        "first_ms": first,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="checkpoint directory (default: a DeiT-Ti-size random one)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--vit-lens", type=Path, default=REPO / "target" / "release" / "vit-lens")
    args = parser.parse_args()

    if not args.vit_lens.exists():
        subprocess.run(["cargo", "build", "--release", "--bin", "vit-lens"], cwd=REPO, check=True)

    with tempfile.TemporaryDirectory() as tmp:
        model_dir = args.model
        if model_dir is None:
            model_dir = Path(tmp) / "deit-tiny-size"
            make_checkpoint(model_dir)
        env = dict(os.environ, RAYON_NUM_THREADS=str(args.threads))
        ours = json.loads(
            subprocess.run(
                [
                    str(args.vit_lens), "bench", "--model", str(model_dir), "--backend", "cpu",
                    "--threads", str(args.threads), "--batch", str(args.batch),
                    "--warmup", str(args.warmup), "--runs", str(args.runs), "--json",
                ],
                check=True, capture_output=True, text=True, env=env,
            ).stdout
        )
        timing = (model_dir, args.threads, args.batch, args.warmup, args.runs)
        rows = [("vit-lens cpu (logits + all attentions)", ours)]
        if is_timm(model_dir):
            rows.append(("pytorch eager, timm (logits only)", time_pytorch(*timing, False)))
        else:
            rows.append(("pytorch eager, sdpa (logits only)", time_pytorch(*timing, False)))
            rows.append(("pytorch eager, output_attentions", time_pytorch(*timing, True)))
    print(f"threads={args.threads} batch={args.batch} warmup={args.warmup} runs={args.runs}  (ms per image)")
    print(f"{'':42} {'median':>8} {'min':>8} {'max':>8} {'first':>8}")
    for name, r in rows:
        print(f"{name:42} {r['median_ms']:8.2f} {r['min_ms']:8.2f} {r['max_ms']:8.2f} {r['first_ms']:8.2f}")
    ratio = ours["median_ms"] / rows[1][1]["median_ms"]
    print(f"vit-lens / {rows[1][0]} median: {ratio:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
