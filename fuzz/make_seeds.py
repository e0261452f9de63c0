#!/usr/bin/env python3
"""Writes the seed corpus under fuzz/seeds/<target>/ (deterministic; run from anywhere).

Seeds are small valid inputs: the repo's test fixtures, plus "micro" checkpoints (hidden 4,
1 layer, 4x4 px, patch 2) whose few hundred bytes let the fuzzer reach the model code fast.
A checkpoint seed is `config.json`, 0xFF, [`preprocessor_config.json`, 0xFF,]
`model.safetensors` (see fuzz/src/lib.rs).
"""
import json
import shutil
import struct
from pathlib import Path

FUZZ = Path(__file__).resolve().parent
REPO = FUZZ.parent
MODELS = REPO / "tests" / "fixtures" / "models"
IMAGES = REPO / "tests" / "fixtures" / "images"
SEEDS = FUZZ / "seeds"
SEP = b"\xff"


def safetensors(tensors, dtype="F32"):
    """tensors: list of (name, shape). Values are a fixed small ramp."""
    header, data = {}, bytearray()
    for name, shape in tensors:
        count = 1
        for d in shape:
            count *= d
        values = [((i * 7) % 11 - 5) / 10.0 for i in range(count)]
        if dtype == "F32":
            raw = struct.pack(f"<{count}f", *values)
        else:  # F16
            raw = struct.pack(f"<{count}e", *values)
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    head = json.dumps(header, separators=(",", ":")).encode()
    head += b" " * (-len(head) % 8)
    return struct.pack("<Q", len(head)) + head + bytes(data)


HIDDEN, MLP, PATCH, IMAGE, CLASSES = 4, 8, 2, 4, 2
TOKENS = (IMAGE // PATCH) ** 2 + 1


def hf_tensors(prefix, distilled):
    t = [
        (f"{prefix}.embeddings.cls_token", [1, 1, HIDDEN]),
        (f"{prefix}.embeddings.patch_embeddings.projection.weight", [HIDDEN, 3, PATCH, PATCH]),
        (f"{prefix}.embeddings.patch_embeddings.projection.bias", [HIDDEN]),
        (f"{prefix}.embeddings.position_embeddings", [1, TOKENS + distilled, HIDDEN]),
        (f"{prefix}.layernorm.weight", [HIDDEN]),
        (f"{prefix}.layernorm.bias", [HIDDEN]),
    ]
    if distilled:
        t.append((f"{prefix}.embeddings.distillation_token", [1, 1, HIDDEN]))
    layer = f"{prefix}.encoder.layer.0"
    for part in ["query", "key", "value"]:
        t += [(f"{layer}.attention.attention.{part}.weight", [HIDDEN, HIDDEN]),
              (f"{layer}.attention.attention.{part}.bias", [HIDDEN])]
    t += [
        (f"{layer}.attention.output.dense.weight", [HIDDEN, HIDDEN]),
        (f"{layer}.attention.output.dense.bias", [HIDDEN]),
        (f"{layer}.intermediate.dense.weight", [MLP, HIDDEN]),
        (f"{layer}.intermediate.dense.bias", [MLP]),
        (f"{layer}.output.dense.weight", [HIDDEN, MLP]),
        (f"{layer}.output.dense.bias", [HIDDEN]),
        (f"{layer}.layernorm_before.weight", [HIDDEN]),
        (f"{layer}.layernorm_before.bias", [HIDDEN]),
        (f"{layer}.layernorm_after.weight", [HIDDEN]),
        (f"{layer}.layernorm_after.bias", [HIDDEN]),
    ]
    heads = ["cls_classifier", "distillation_classifier"] if distilled else ["classifier"]
    for head in heads:
        t += [(f"{head}.weight", [CLASSES, HIDDEN]), (f"{head}.bias", [CLASSES])]
    return t


def hf_config(architecture, model_type):
    return {
        "architectures": [architecture],
        "model_type": model_type,
        "hidden_act": "gelu",
        "hidden_size": HIDDEN,
        "intermediate_size": MLP,
        "num_attention_heads": 2,
        "num_hidden_layers": 1,
        "num_channels": 3,
        "image_size": IMAGE,
        "patch_size": PATCH,
        "layer_norm_eps": 1e-12,
        "qkv_bias": True,
        "id2label": {"0": "a", "1": "b"},
    }


def timm_tensors():
    return [
        ("cls_token", [1, 1, HIDDEN]),
        ("pos_embed", [1, TOKENS, HIDDEN]),
        ("patch_embed.proj.weight", [HIDDEN, 3, PATCH, PATCH]),
        ("patch_embed.proj.bias", [HIDDEN]),
        ("blocks.0.norm1.weight", [HIDDEN]), ("blocks.0.norm1.bias", [HIDDEN]),
        ("blocks.0.attn.qkv.weight", [3 * HIDDEN, HIDDEN]), ("blocks.0.attn.qkv.bias", [3 * HIDDEN]),
        ("blocks.0.attn.proj.weight", [HIDDEN, HIDDEN]), ("blocks.0.attn.proj.bias", [HIDDEN]),
        ("blocks.0.norm2.weight", [HIDDEN]), ("blocks.0.norm2.bias", [HIDDEN]),
        ("blocks.0.mlp.fc1.weight", [MLP, HIDDEN]), ("blocks.0.mlp.fc1.bias", [MLP]),
        ("blocks.0.mlp.fc2.weight", [HIDDEN, MLP]), ("blocks.0.mlp.fc2.bias", [HIDDEN]),
        ("norm.weight", [HIDDEN]), ("norm.bias", [HIDDEN]),
        ("head.weight", [CLASSES, HIDDEN]), ("head.bias", [CLASSES]),
    ]


def timm_config():
    return {
        "architecture": "vit_tiny_patch16_224",
        "num_classes": CLASSES,
        "label_names": ["a", "b"],
        "model_args": {"img_size": [IMAGE, IMAGE], "patch_size": PATCH, "embed_dim": HIDDEN,
                       "depth": 1, "num_heads": 2, "mlp_ratio": 2.0, "num_classes": CLASSES,
                       "in_chans": 3},
        "pretrained_cfg": {"input_size": [3, IMAGE, IMAGE], "interpolation": "bicubic",
                           "crop_pct": 0.9, "crop_mode": "center",
                           "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]},
    }


MICRO_PREPROCESSOR = json.dumps({
    "do_resize": True, "size": {"height": IMAGE, "width": IMAGE}, "resample": 2,
    "do_rescale": True, "rescale_factor": 1 / 255, "do_normalize": True,
    "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5],
    "image_processor_type": "ViTImageProcessor",
}).encode()


def compact(obj):
    return json.dumps(obj, separators=(",", ":")).encode()


def micro_checkpoints():
    return {
        "micro_vit_hf": compact(hf_config("ViTForImageClassification", "vit")) + SEP
        + safetensors(hf_tensors("vit", 0)),
        "micro_vit_hf_preprocessor": compact(hf_config("ViTForImageClassification", "vit")) + SEP
        + MICRO_PREPROCESSOR + SEP + safetensors(hf_tensors("vit", 0), "F16"),
        "micro_deit_distilled_hf": compact(hf_config("DeiTForImageClassificationWithTeacher", "deit"))
        + SEP + safetensors(hf_tensors("deit", 1)),
        "micro_vit_timm": compact(timm_config()) + SEP + safetensors(timm_tensors()),
    }


def fixture_checkpoint(name):
    d = MODELS / name
    out = (d / "config.json").read_bytes() + SEP
    if (d / "preprocessor_config.json").exists():
        out += (d / "preprocessor_config.json").read_bytes() + SEP
    return out + (d / "model.safetensors").read_bytes()


def write(target, name, data):
    path = SEEDS / target / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def main():
    shutil.rmtree(SEEDS, ignore_errors=True)
    micro = micro_checkpoints()

    for name, data in micro.items():
        parts = 3 if name.endswith("_preprocessor") else 2
        write("safetensors", name, data.split(SEP, parts - 1)[-1])
        write("checkpoint", name, data)
        write("engine", name, data)
    write("safetensors", "tiny_vit_hf_bf16", (MODELS / "tiny_vit_hf_bf16/model.safetensors").read_bytes())
    write("safetensors", "random", (IMAGES / "random.bin").read_bytes())
    for name in ["tiny_vit_hf", "tiny_vit_timm", "tiny_deit_distilled_timm"]:
        write("checkpoint", name, fixture_checkpoint(name))
    for name in ["tiny_vit_hf_f16", "tiny_deit_distilled_hf"]:
        write("engine", name, fixture_checkpoint(name))

    configs = {
        "vit": (MODELS / "tiny_vit_hf/preprocessor_config.json").read_bytes(),
        "deit": (MODELS / "tiny_deit_hf/preprocessor_config.json").read_bytes(),
        "timm": (IMAGES / "timm_deit_tiny_pretrained_cfg.json").read_bytes(),
        "micro": MICRO_PREPROCESSOR,
    }
    images = ["tiny.png", "gray.png", "gray16.png", "rgba.png", "cmyk.jpg", "exif_rot6.jpg",
              "lossless.webp", "anim.gif", "huge_dims.png", "truncated.png"]
    for image in images:
        write("preprocess", f"micro_{image}", configs["micro"] + SEP + (IMAGES / image).read_bytes())
    for cfg in ["vit", "deit", "timm"]:
        write("preprocess", f"{cfg}_exif_rot6.jpg", configs[cfg] + SEP + (IMAGES / "exif_rot6.jpg").read_bytes())

    refs = [
        "facebook/deit-tiny-patch16-224", "owner/name@main", "google/vit-base-patch16-224@refs/pr/1",
        "timm/vit_tiny_patch16_224.augreg_in21k_ft_in1k",
        "https://huggingface.co/facebook/deit-tiny-patch16-224",
        "https://huggingface.co/facebook/deit-tiny-patch16-224/tree/main",
        "https://huggingface.co/owner/name/resolve/v1.0/model.safetensors",
        "https://huggingface.co/owner/name/blob/main/config.json?download=true#x",
        "https://hf-mirror.com/owner/name/resolve/main/config.json",
        "https://example.com/models/tiny/config.json",
        "http://localhost:8080/model/",
        "bert-base\nhttps://huggingface.co/",
        "owner/name\nhttp://127.0.0.1:9000",
    ]
    for i, ref in enumerate(refs):
        write("hub_ref", f"ref_{i:02}", ref.encode())

    backend = {"backend": "cpu", "label": "CPU · native", "fallback_reason": None}
    result = {"type": "result", "id": 1, "crop_width": 2, "crop_height": 2, "layers": 2, "heads": 2,
              "tokens": 5, "grid_rows": 2, "grid_cols": 2, "prefix_tokens": 1,
              "preprocess_ms": 1.5, "forward_ms": 2.5, "backend": backend}
    # Lengths (crop bytes, logits, attention values), then bytes that fill the buffers.
    lengths = struct.pack("<QQQ", 12, 3, 100)
    fill = struct.pack("<8f", 0.2, 0.1, 0.3, 0.15, 0.25, 0.5, 0.125, 0.375)
    messages = {
        "load_model": {"type": "load_model", "source": "facebook/deit-tiny-patch16-224",
                       "backend": "auto", "has_preprocessor": True},
        "set_backend": {"type": "set_backend", "backend": "gpu"},
        "classify": {"type": "classify", "id": 7},
        "inspect": {"type": "inspect", "id": None},
        "alive": {"type": "alive"},
        "status": {"type": "status", "message": "compiling WebGPU kernels"},
        "error": {"type": "error", "scope": "image", "message": "no pixels", "id": 3},
    }
    for name, message in messages.items():
        write("protocol", name, compact(message))
    write("protocol", "result", compact(result) + SEP + lengths + fill)
    distilled = dict(result, tokens=6, prefix_tokens=2, crop_width=3, crop_height=1)
    write("protocol", "result_distilled", compact(distilled) + SEP + struct.pack("<QQQ", 9, 2, 144) + fill)


if __name__ == "__main__":
    main()
