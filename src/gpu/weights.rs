//! Every weight of a checkpoint, uploaded once into storage buffers.

use wgpu::util::DeviceExt;
use wgpu::{Buffer, Device};

use crate::checkpoint::{Checkpoint, Linear, Norm};

/// A storage buffer holding `data`, labelled.
pub(super) fn storage_buffer(device: &Device, label: &str, data: &[f32]) -> Buffer {
    buffer_with(device, label, data, wgpu::BufferUsages::STORAGE)
}

/// Zero-padded to whole vec4s, so every buffer can also be bound as `array<vec4<f32>>`.
fn buffer_with(device: &Device, label: &str, data: &[f32], usage: wgpu::BufferUsages) -> Buffer {
    let mut padded = data.to_vec();
    padded.resize(data.len().div_ceil(4).max(1) * 4, 0.0);
    device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: Some(label),
        contents: bytemuck::cast_slice(&padded),
        usage,
    })
}

/// A linear layer on the device.
#[derive(Debug)]
pub(super) struct GpuLinear {
    /// The weight transposed to (in, out), row-major, so it is a plain GEMM B operand.
    pub weight_t: Buffer,
    /// (out,)
    pub bias: Option<Buffer>,
    pub in_features: usize,
    pub out_features: usize,
}

impl GpuLinear {
    /// `weight` is PyTorch's (out, in) row-major; `in_features` is given explicitly because the
    /// patch embedding's conv weight (hidden, C, P, P) is read as (hidden, C·P·P).
    fn upload(device: &Device, label: &str, linear: &Linear, in_features: usize) -> Self {
        let out_features = linear.weight.shape.first().copied().unwrap_or(0);
        let weight = &linear.weight.data;
        let mut transposed = vec![0f32; weight.len()];
        for (o, row) in weight.chunks_exact(in_features.max(1)).enumerate() {
            for (i, &w) in row.iter().enumerate() {
                transposed[i * out_features + o] = w;
            }
        }
        Self {
            weight_t: storage_buffer(device, &format!("{label}.weight_t"), &transposed),
            bias: linear
                .bias
                .as_ref()
                .map(|b| storage_buffer(device, &format!("{label}.bias"), &b.data)),
            in_features,
            out_features,
        }
    }
}

/// A LayerNorm's affine parameters on the device, each (hidden,).
#[derive(Debug)]
pub(super) struct GpuNorm {
    pub weight: Buffer,
    pub bias: Buffer,
}

impl GpuNorm {
    fn upload(device: &Device, label: &str, norm: &Norm) -> Self {
        Self {
            weight: storage_buffer(device, &format!("{label}.weight"), &norm.weight.data),
            bias: storage_buffer(device, &format!("{label}.bias"), &norm.bias.data),
        }
    }
}

/// One encoder block.
#[derive(Debug)]
pub(super) struct GpuBlock {
    pub norm1: GpuNorm,
    /// (hidden, 3·hidden): columns q, then k, then v.
    pub qkv: GpuLinear,
    pub proj: GpuLinear,
    pub norm2: GpuNorm,
    pub fc1: GpuLinear,
    pub fc2: GpuLinear,
}

/// The whole model's weights.
#[derive(Debug)]
pub(super) struct GpuWeights {
    /// (channels·patch·patch, hidden)
    pub patch_embed: GpuLinear,
    /// (prefix_tokens, hidden): CLS (and the distillation token) plus their position
    /// embeddings, ready to copy in front of every image's patch tokens.
    pub prefix_rows: Buffer,
    pub blocks: Vec<GpuBlock>,
    pub norm: GpuNorm,
    pub head: GpuLinear,
    pub head_dist: Option<GpuLinear>,
    /// Bound where a kernel's optional operand (bias, residual) is not used.
    pub unused: Buffer,
}

impl GpuWeights {
    pub fn upload(device: &Device, checkpoint: &Checkpoint) -> Self {
        let cfg = &checkpoint.config;
        let w = &checkpoint.weights;
        let d = cfg.hidden_size;
        let patch_in = cfg.num_channels * cfg.patch_size * cfg.patch_size;

        let mut prefix = w.cls_token.data.clone();
        if let Some(dist) = &w.dist_token {
            prefix.extend_from_slice(&dist.data);
        }
        for (value, pos) in prefix.iter_mut().zip(&w.pos_embed.data) {
            *value += pos;
        }

        let blocks = w
            .blocks
            .iter()
            .enumerate()
            .map(|(i, b)| GpuBlock {
                norm1: GpuNorm::upload(device, &format!("blocks.{i}.norm1"), &b.norm1),
                qkv: GpuLinear::upload(device, &format!("blocks.{i}.qkv"), &b.qkv, d),
                proj: GpuLinear::upload(device, &format!("blocks.{i}.proj"), &b.proj, d),
                norm2: GpuNorm::upload(device, &format!("blocks.{i}.norm2"), &b.norm2),
                fc1: GpuLinear::upload(device, &format!("blocks.{i}.fc1"), &b.fc1, d),
                fc2: GpuLinear::upload(
                    device,
                    &format!("blocks.{i}.fc2"),
                    &b.fc2,
                    cfg.intermediate_size,
                ),
            })
            .collect();
        Self {
            patch_embed: GpuLinear::upload(device, "patch_embed", &w.patch_embed, patch_in),
            prefix_rows: buffer_with(
                device,
                "prefix_rows",
                &prefix,
                wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
            ),
            blocks,
            norm: GpuNorm::upload(device, "norm", &w.norm),
            head: GpuLinear::upload(device, "head", &w.head, d),
            head_dist: w
                .head_dist
                .as_ref()
                .map(|h| GpuLinear::upload(device, "head_dist", h, d)),
            unused: storage_buffer(device, "unused", &[0.0; 4]),
        }
    }
}
