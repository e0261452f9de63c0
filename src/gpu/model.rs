//! A checkpoint on the GPU and its forward pass: [`GpuModel::infer`] plans a pass once per
//! shape (`plan.rs`), records and submits it, and reads the results back (`readback.rs`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use super::buffers::Sizes;
use super::context::{lock, scoped, AdapterInfo, GpuContext};
use super::error::GpuError;
use super::plan::Workspace;
use super::weights::{storage_buffer, GpuWeights};
use crate::checkpoint::{Checkpoint, ModelConfig};
use crate::geometry::{image_part, Geometry, PositionTable};

/// A checkpoint on the GPU: weights uploaded once, and the buffers of the last pass kept for
/// the next one of the same shape.
#[derive(Debug)]
pub struct GpuModel {
    context: GpuContext,
    config: ModelConfig,
    weights: GpuWeights,
    /// Position embeddings per patch grid, (tokens, hidden), on the device.
    positions: PositionTable<wgpu::Buffer>,
    /// The buffers of the last pass, taken by a pass and put back after it.
    workspace: Mutex<Option<Workspace>>,
    /// Whether passes record per-kernel timestamps (where the device has them).
    kernel_timing: AtomicBool,
}

/// One forward pass's results.
#[derive(Clone, Debug, PartialEq)]
pub struct GpuOutput {
    /// (batch, classes)
    pub logits: Vec<f32>,
    /// One per layer, each (batch, heads, tokens, tokens).
    pub attentions: Vec<Vec<f32>>,
    /// Patch grid (rows, cols) the tokens come from.
    pub patch_grid: (usize, usize),
    /// CLS, and the distillation token if any, precede the patches.
    pub prefix_tokens: usize,
    pub batch: usize,
    pub heads: usize,
    /// prefix_tokens + rows·cols
    pub tokens: usize,
    /// GPU milliseconds per kernel kind ("im2col", "gemm", "attention", "softmax",
    /// "layer_norm"), in order of first use, when the device has TIMESTAMP_QUERY (and timing
    /// is on, see [`GpuModel::set_kernel_timing`]).
    pub kernel_ms: Option<Vec<(String, f64)>>,
}

impl GpuOutput {
    /// Logits of image `image`: (classes,); empty past the batch.
    pub fn image_logits(&self, image: usize) -> &[f32] {
        image_part(&self.logits, self.batch, image)
    }

    /// Attention probabilities of image `image` in layer `layer`: (heads, tokens, tokens);
    /// empty past the batch or the layers.
    pub fn image_attention(&self, layer: usize, image: usize) -> &[f32] {
        self.attentions
            .get(layer)
            .map_or(&[], |probs| image_part(probs, self.batch, image))
    }
}

impl GpuModel {
    /// Creates a [`GpuContext`] and uploads `checkpoint` into it.
    pub async fn new(checkpoint: &Checkpoint) -> Result<Self, GpuError> {
        Self::with_context(&GpuContext::new().await?, checkpoint).await
    }

    /// Uploads every weight of `checkpoint` once (linear weights transposed to (in, out)).
    pub async fn with_context(
        context: &GpuContext,
        checkpoint: &Checkpoint,
    ) -> Result<Self, GpuError> {
        let shared = &context.shared;
        shared.health.check()?;
        let cfg = &checkpoint.config;
        let weights = scoped(&shared.device, &shared.health, || {
            Ok(GpuWeights::upload(&shared.device, checkpoint))
        })
        .await?;
        Ok(Self {
            context: context.clone(),
            config: cfg.clone(),
            weights,
            positions: PositionTable::new(cfg, &checkpoint.weights.pos_embed.data),
            workspace: Mutex::new(None),
            kernel_timing: AtomicBool::new(true),
        })
    }

    pub fn adapter_info(&self) -> &AdapterInfo {
        self.context.adapter_info()
    }

    pub fn context(&self) -> &GpuContext {
        &self.context
    }

    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// Turns per-kernel GPU timing ([`GpuOutput::kernel_ms`]) on or off; on by default where
    /// the device has timestamp queries. Timing records every dispatch in its own compute pass,
    /// which costs a little on fast GPUs; turn it off for production runs.
    pub fn set_kernel_timing(&self, enabled: bool) {
        self.kernel_timing.store(enabled, Ordering::Relaxed);
    }

    /// Checks that a batch of `batch` images of `height`×`width` pixels fits the device's
    /// limits, without allocating anything.
    pub fn check_capacity(
        &self,
        batch: usize,
        height: usize,
        width: usize,
    ) -> Result<(), GpuError> {
        let geometry = Geometry::new(&self.config, batch, height, width)?;
        Sizes::new(&geometry).check_limits(batch, &self.context.shared.limits)
    }

    /// The largest batch of `height`×`width` images one pass can take (0 if not even one).
    pub fn max_batch(&self, height: usize, width: usize) -> usize {
        if self.check_capacity(1, height, width).is_err() {
            return 0;
        }
        let (mut fits, mut fails) = (1usize, 2usize);
        while fails < 1 << 24 && self.check_capacity(fails, height, width).is_ok() {
            fits = fails;
            fails *= 2;
        }
        while fails - fits > 1 {
            let mid = fits + (fails - fits) / 2;
            if self.check_capacity(mid, height, width).is_ok() {
                fits = mid;
            } else {
                fails = mid;
            }
        }
        fits
    }

    /// One forward pass of `batch` images, `pixels` (batch, channels, height, width),
    /// normalized, channel-major.
    ///
    /// Records one command stream for the whole pass, submits it once and reads back logits
    /// and every layer's attention probabilities through one mapped buffer. Natively it
    /// blocks in `Device::poll` until the GPU is done; on the web it only awaits. Inputs whose
    /// sides are not multiples of the patch size lose the pixels past the last whole patch;
    /// grids other than the checkpoint's get bicubically resized position embeddings.
    ///
    /// Errors: [`GpuError::Input`] for an empty batch, a wrong number of values or an image
    /// smaller than a patch; [`GpuError::TooLarge`] / [`GpuError::TooManyWorkgroups`] when a
    /// buffer or dispatch would exceed the device's limits (see [`GpuModel::max_batch`]);
    /// [`GpuError::DeviceLost`], [`GpuError::Validation`], [`GpuError::OutOfMemory`] and
    /// [`GpuError::Map`] when the GPU fails.
    pub async fn infer(
        &self,
        pixels: &[f32],
        batch: usize,
        height: usize,
        width: usize,
    ) -> Result<GpuOutput, GpuError> {
        let shared = &self.context.shared;
        let geometry = Geometry::new(&self.config, batch, height, width)?;
        geometry.check_pixels(pixels.len())?;
        Sizes::new(&geometry).check_limits(batch, &shared.limits)?;
        shared.health.check()?;

        let timed = self.kernel_timing.load(Ordering::Relaxed);
        let cached = lock(&self.workspace)
            .take()
            .filter(|w| w.geometry == geometry);
        let (sender, receiver) = futures_channel::oneshot::channel();
        let workspace = scoped(&shared.device, &shared.health, || {
            let workspace = match cached {
                Some(workspace) => workspace,
                None => {
                    let positions = self.positions.get(geometry.grid, |values| {
                        let (rows, cols) = geometry.grid;
                        let label = format!("pos_embed_{rows}x{cols}");
                        Ok::<_, GpuError>(storage_buffer(&shared.device, &label, values))
                    })?;
                    Workspace::new(shared, &self.weights, &positions, geometry)?
                }
            };
            shared
                .queue
                .write_buffer(workspace.pixels(), 0, bytemuck::cast_slice(pixels));
            let encoder = workspace.record(shared, timed);
            shared.queue.submit(Some(encoder.finish()));
            workspace
                .staging()
                .slice(..)
                .map_async(wgpu::MapMode::Read, move |result| {
                    // The receiver is gone only if the caller dropped the future.
                    let _ = sender.send(result);
                });
            Ok(workspace)
        })
        .await?;

        #[cfg(not(target_arch = "wasm32"))]
        shared
            .device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| shared.health.explain(GpuError::Map(e.to_string())))?;
        match receiver.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(shared.health.explain(GpuError::Map(e.to_string()))),
            Err(_) => {
                return Err(shared.health.explain(GpuError::Map(
                    "the mapping was dropped before it completed".to_string(),
                )))
            }
        }
        let readout = workspace.read(timed)?;
        shared.health.check()?;
        let g = &workspace.geometry;
        let output = GpuOutput {
            logits: readout.logits,
            attentions: readout.attentions,
            patch_grid: g.grid,
            prefix_tokens: g.prefix,
            batch: g.batch,
            heads: g.heads,
            tokens: g.tokens,
            kernel_ms: readout.kernel_ms,
        };
        *lock(&self.workspace) = Some(workspace);
        Ok(output)
    }
}
