#!/usr/bin/env python3
"""Checks `vit-lens classify` against transformers / timm on checkpoints and images the test
suite never sees.

    python3 tests/fixtures/make_reference.py --full-size /tmp/fullsize
    python3 scripts/check_unseen.py /tmp/fullsize [--vit-lens target/release/vit-lens] [--gpu]

For each DeiT-Ti-size checkpoint (transformers and timm layouts, plain and distilled):
1. `--pixels` (the reference input) vs the library's own logits and rollout
   (reference.safetensors): max |difference| and whether the top-5 is identical;
2. `--image` on new images drawn here with Pillow (PNG, JPEG, WebP, several sizes) vs
   transformers' own image processor + model (default and PIL processors) or timm's eval
   transform + model: top-1 agreement;
3. with --gpu: `--backend gpu` vs `--backend cpu` on the same images (logits, rollout, top-5).
Needs torch, transformers, timm, numpy, pillow and safetensors from PyPI.
"""

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
NAMES = ["deit_tiny_hf", "deit_tiny_timm", "deit_tiny_distilled_hf", "deit_tiny_distilled_timm"]


def classify(binary, model, *args):
    out = subprocess.run([str(binary), "classify", "--model", str(model), "--json", *args],
                         check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def make_images(folder: Path) -> list[Path]:
    from PIL import Image, ImageDraw, ImageFilter

    rng = np.random.default_rng(2026)
    paths = []
    for i, (w, h, fmt) in enumerate([(640, 480, "JPEG"), (300, 500, "PNG"), (1024, 768, "JPEG"),
                                     (224, 224, "PNG"), (257, 199, "WEBP"), (800, 800, "PNG")]):
        base = (rng.random((h, w, 3)) * 40 + np.linspace(0, 200, w)[None, :, None]).astype(np.uint8)
        img = Image.fromarray(base).filter(ImageFilter.GaussianBlur(2))
        draw = ImageDraw.Draw(img)
        for _ in range(6):
            x0, y0 = rng.integers(0, w - 20), rng.integers(0, h - 20)
            draw.ellipse([x0, y0, x0 + rng.integers(10, w // 2), y0 + rng.integers(10, h // 2)],
                         fill=tuple(int(c) for c in rng.integers(0, 255, 3)))
        path = folder / f"img{i}.{fmt.lower()}"
        img.save(path, fmt, **({"quality": 90} if fmt == "JPEG" else {}))
        paths.append(path)
    return paths


def library_runner(model_dir: Path):
    """(name → preprocess+forward) pairs of the checkpoint's own library."""
    import torch

    if (model_dir / "preprocessor_config.json").exists():
        import transformers

        model = transformers.AutoModelForImageClassification.from_pretrained(model_dir).eval()
        processors = {"transformers default": transformers.AutoImageProcessor.from_pretrained(model_dir),
                      "transformers pil": transformers.AutoImageProcessor.from_pretrained(model_dir, backend="pil")}
        return {name: (lambda img, p=p: model(pixel_values=p(images=img, return_tensors="pt")["pixel_values"]).logits[0])
                for name, p in processors.items()}
    import timm

    model = timm.create_model(f"local-dir:{model_dir}", pretrained=True).eval()
    transform = timm.data.create_transform(**timm.data.resolve_data_config({}, model=model))
    return {"timm": lambda img: model(transform(img).unsqueeze(0))[0]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path, help="folder written by make_reference.py --full-size")
    parser.add_argument("--vit-lens", type=Path, default=REPO / "target" / "release" / "vit-lens")
    parser.add_argument("--gpu", action="store_true", help="also compare --backend gpu with --backend cpu")
    args = parser.parse_args()

    import torch
    from PIL import Image
    from safetensors.numpy import load_file, save_file

    torch.set_num_threads(2)
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        images = make_images(tmp)
        for name in NAMES:
            model = args.root / name
            ref = load_file(str(model / "reference.safetensors"))
            save_file({"pixel_values": ref["pixel_values"][:1].astype(np.float32)}, str(tmp / "px.safetensors"))
            out = classify(args.vit_lens, model, "--pixels", str(tmp / "px.safetensors"), "--backend", "cpu")
            dl = np.abs(np.array(out["logits"]) - ref["logits"][0]).max()
            dr = np.abs(np.array(out["rollout"]["layers"]) - ref["rollout.mean.0.0"]).max()
            top5 = [t["index"] for t in out["top"]] == list(np.argsort(-ref["logits"][0])[:5])
            ok &= dl <= 1e-3 and dr <= 1e-4 and top5
            print(f"{name:26} --pixels: max|Δlogit| {dl:.1e}  max|Δrollout| {dr:.1e}  top-5 identical {top5}")

            runners = library_runner(model)
            agree = total = 0
            for path in images:
                ours = classify(args.vit_lens, model, "--image", str(path), "--backend", "cpu")
                img = Image.open(path).convert("RGB")
                with torch.no_grad():
                    for run in runners.values():
                        agree += int(np.argmax(run(img).numpy())) == ours["top"][0]["index"]
                        total += 1
                if args.gpu:
                    gpu = classify(args.vit_lens, model, "--image", str(path), "--backend", "gpu")
                    gl = np.abs(np.array(gpu["logits"]) - np.array(ours["logits"])).max()
                    gr = np.abs(np.array(gpu["rollout"]["layers"]) - np.array(ours["rollout"]["layers"])).max()
                    same = [t["index"] for t in gpu["top"]] == [t["index"] for t in ours["top"]]
                    ok &= gl <= 1e-3 and gr <= 1e-4 and same
                    print(f"{'':26} {path.name:10} gpu vs cpu: max|Δlogit| {gl:.1e}  max|Δrollout| {gr:.1e}  top-5 identical {same}")
            ok &= agree == total
            print(f"{name:26} --image: top-1 agrees with {', '.join(runners)} on {agree}/{total}")
    print("all checks passed" if ok else "SOME CHECKS FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
