//! The buffers of one forward pass: their sizes for a [`Geometry`], checked against the
//! device's limits before anything is allocated, and the activation buffers themselves.

use wgpu::{Buffer, BufferUsages, Device};

use super::error::GpuError;
use crate::geometry::Geometry;

/// Alignment of buffer offsets that are bound or resolved into (the WebGPU maximum of
/// `min_storage_buffer_offset_alignment`, and the query-resolve alignment).
pub(super) const OFFSET_ALIGN: u64 = 256;
/// WGSL indexes storage arrays with u32: keep every bound buffer below 4 GiB.
const U32_INDEXABLE_BYTES: u64 = u32::MAX as u64;

pub(super) fn align_up(value: u64, align: u64) -> u64 {
    value.div_ceil(align) * align
}

/// Dispatches of one pass: `2 + 9·layers + 1 + heads` (the table in `plan.rs`).
pub(super) fn dispatch_count(g: &Geometry) -> usize {
    2 + 9 * g.layers + 1 + if g.distilled { 2 } else { 1 }
}

/// Byte sizes of one pass's buffers, f32 throughout.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct Sizes {
    /// (B, C, h, w); `u64::MAX` when the count overflows.
    pub pixels: u64,
    /// (B·gh·gw, C·P·P)
    pub patches: u64,
    /// (B·T, D): x, x', the normalized rows and the attention context.
    pub tokens: u64,
    /// (B·T, 3D)
    pub qkv: u64,
    /// (B·T, M)
    pub mlp: u64,
    /// (B·prefix, D): the final norm of the prefix rows.
    pub prefix_out: u64,
    /// (B, classes)
    pub logits: u64,
    /// One layer's attention probabilities, (B, H, T, T).
    pub layer_probs: u64,
    /// Distance between layers in the probabilities buffer (bindable offsets).
    pub layer_stride: u64,
    /// Every layer's probabilities.
    pub probs: u64,
    /// Where the probabilities start in the readback buffer, after the logits.
    pub readback_probs: u64,
    /// Where the timestamps start in the readback buffer, after the probabilities.
    pub readback_timestamps: u64,
    /// Timestamp queries of one pass when profiling: a begin and an end per dispatch.
    pub timestamp_queries: u32,
}

impl Sizes {
    pub fn new(g: &Geometry) -> Self {
        let f32s = |values: u64| values * 4;
        let b = g.batch as u64;
        let rows = b * g.tokens as u64;
        let d = g.hidden as u64;
        let t = g.tokens as u64;
        let layer_probs = f32s(b * g.heads as u64 * t * t);
        let layer_stride = align_up(layer_probs, OFFSET_ALIGN);
        let probs = layer_stride * g.layers as u64;
        let logits = f32s(b * g.classes as u64);
        let readback_probs = align_up(logits, OFFSET_ALIGN);
        Self {
            pixels: g
                .pixel_count()
                .map_or(u64::MAX, |n| (n as u64).saturating_mul(4)),
            patches: f32s(b * g.patches() as u64 * g.patch_in as u64),
            tokens: f32s(rows * d),
            qkv: f32s(rows * 3 * d),
            mlp: f32s(rows * g.mlp as u64),
            prefix_out: f32s(b * g.prefix as u64 * d),
            logits,
            layer_probs,
            layer_stride,
            probs,
            readback_probs,
            readback_timestamps: readback_probs + probs,
            timestamp_queries: 2 * dispatch_count(g) as u32,
        }
    }

    /// The readback buffer: logits, probabilities and room for the timestamps.
    pub fn readback(&self) -> u64 {
        self.readback_timestamps + u64::from(self.timestamp_queries) * 8
    }

    /// Checks every buffer of a pass of `batch` images against the device's limits.
    pub fn check_limits(&self, batch: usize, limits: &wgpu::Limits) -> Result<(), GpuError> {
        let binding_limit = limits
            .max_storage_buffer_binding_size
            .min(U32_INDEXABLE_BYTES)
            .min(limits.max_buffer_size);
        // (what, bytes, bound to a kernel as a whole)
        let buffers = [
            ("pixel", self.pixels, true),
            ("patch", self.patches, true),
            ("token", self.tokens, true),
            ("qkv", self.qkv, true),
            ("MLP", self.mlp, true),
            // Bound rounded up to whole vec4s.
            (
                "attention (one layer)",
                align_up(self.layer_probs, 16),
                true,
            ),
            ("attention", self.probs, false),
            ("readback", self.readback(), false),
        ];
        for (what, bytes, bound) in buffers {
            let limit = if bound {
                binding_limit
            } else {
                limits.max_buffer_size
            };
            if bytes > limit {
                return Err(GpuError::TooLarge {
                    what: what.to_string(),
                    batch,
                    bytes,
                    limit,
                });
            }
        }
        Ok(())
    }
}

/// The activation buffers of one pass. x and x' ping-pong so that no dispatch reads and
/// writes the same buffer.
#[derive(Debug)]
pub(super) struct Activations {
    /// (B, C, h, w) input, written by the queue before each submission.
    pub pixels: Buffer,
    pub patch_rows: Buffer,
    /// The residual stream x, (B·T, D); its prefix rows are copied in before each pass.
    pub x: Buffer,
    /// The residual stream after attention, x'.
    pub x_mid: Buffer,
    pub normed: Buffer,
    pub qkv: Buffer,
    pub context: Buffer,
    pub hidden: Buffer,
    /// Every layer's attention probabilities, `layer_stride` apart.
    pub probs: Buffer,
    pub prefix_out: Buffer,
    pub logits: Buffer,
    /// The CLS head's logits of a distilled model, before the other head adds its own.
    pub logits_cls: Buffer,
}

impl Activations {
    /// Allocates every buffer of `sizes` (checked with [`Sizes::check_limits`]).
    pub fn new(device: &Device, sizes: &Sizes) -> Self {
        let storage = |label: &str, bytes: u64, extra: BufferUsages| {
            device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size: align_up(bytes.max(16), 16),
                usage: BufferUsages::STORAGE | extra,
                mapped_at_creation: false,
            })
        };
        let none = BufferUsages::empty();
        Self {
            pixels: storage("pixels", sizes.pixels, BufferUsages::COPY_DST),
            patch_rows: storage("patches", sizes.patches, none),
            x: storage("x", sizes.tokens, BufferUsages::COPY_DST),
            x_mid: storage("x_mid", sizes.tokens, none),
            normed: storage("normed", sizes.tokens, none),
            qkv: storage("qkv", sizes.qkv, none),
            context: storage("context", sizes.tokens, none),
            hidden: storage("mlp_hidden", sizes.mlp, none),
            probs: storage("attention_probs", sizes.probs, BufferUsages::COPY_SRC),
            prefix_out: storage("prefix_out", sizes.prefix_out, none),
            logits: storage("logits", sizes.logits, BufferUsages::COPY_SRC),
            logits_cls: storage("logits_cls", sizes.logits, none),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::deit_tiny;

    fn sizes(batch: usize) -> Sizes {
        Sizes::new(&Geometry::new(&deit_tiny(), batch, 224, 224).expect("valid"))
    }

    #[test]
    fn sizes_of_deit_tiny() {
        let g = Geometry::new(&deit_tiny(), 2, 230, 224).expect("valid");
        assert_eq!(dispatch_count(&g), 112);
        let s = Sizes::new(&g);
        assert_eq!(s.layer_probs, 2 * 3 * 197 * 197 * 4);
        assert_eq!(s.layer_stride % OFFSET_ALIGN, 0);
        assert_eq!(s.timestamp_queries, 224);
    }

    #[test]
    fn limits_bound_the_batch() {
        let limits = wgpu::Limits::defaults();
        sizes(8)
            .check_limits(8, &limits)
            .expect("batch 8 fits WebGPU's default limits");
        match sizes(1000).check_limits(1000, &limits) {
            Err(GpuError::TooLarge {
                batch,
                bytes,
                limit,
                ..
            }) => {
                assert_eq!(batch, 1000);
                assert!(bytes > limit);
            }
            other => panic!("expected TooLarge, got {other:?}"),
        }
    }
}
