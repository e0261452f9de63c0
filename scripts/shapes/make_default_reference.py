#!/usr/bin/env python3
"""Reference outputs of the built-in model (assets/model) on the sample images, computed by
transformers on PyTorch: the test `tests/default_model.rs` checks vit-lens against them.

    python3 scripts/shapes/make_default_reference.py

Writes ``tests/fixtures/shapes/default_reference.json``: for each sample in
``assets/samples/index.json``, the file, its label, the logits (float32 run of the f16
weights) and the last layer's attention rollout (mean fusion, discard 0, CLS row over the
patches), with the ``pixel_values`` produced by the checkpoint's own (PIL) image processor.
"""
import json
import os

import numpy as np
import torch
from PIL import Image
from transformers import ViTForImageClassification, ViTImageProcessorPil

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def rollout_last(attentions):
    res = None
    for a in attentions:
        a = a[0].double().mean(0)
        a = (a + torch.eye(a.shape[-1], dtype=a.dtype)) / 2
        a = a / a.sum(-1, keepdim=True)
        res = a if res is None else a @ res
    return res[0, 1:].tolist()


def main():
    model_dir = os.path.join(ROOT, "assets", "model")
    model = ViTForImageClassification.from_pretrained(
        model_dir, attn_implementation="eager", dtype=torch.float32).eval()
    proc = ViTImageProcessorPil.from_pretrained(model_dir)
    samples = json.load(open(os.path.join(ROOT, "assets", "samples", "index.json")))["samples"]
    out = []
    for s in samples:
        img = Image.open(os.path.join(ROOT, "assets", "samples", s["file"])).convert("RGB")
        pv = proc(images=img, return_tensors="pt")["pixel_values"].float()
        with torch.no_grad():
            o = model(pixel_values=pv, output_attentions=True)
        out.append({
            "file": s["file"],
            "label": s["label"],
            "logits": o.logits[0].tolist(),
            "predicted": model.config.id2label[int(o.logits[0].argmax())],
            "rollout_last": rollout_last(o.attentions),
        })
    path = os.path.join(ROOT, "tests", "fixtures", "shapes", "default_reference.json")
    with open(path, "w") as f:
        json.dump({"model": "assets/model", "samples": out}, f, indent=1)
        f.write("\n")
    right = sum(o["predicted"] == o["label"] for o in out)
    print(f"wrote {path}: {right}/{len(out)} samples classified as their label")


if __name__ == "__main__":
    main()
