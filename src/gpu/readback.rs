//! Recording a planned pass and reading its results back: the dispatches in one compute
//! pass (or, when profiling, each in its own pass between timestamp queries), the copies into
//! one `MAP_READ` buffer, and unpacking that buffer once it is mapped.

use wgpu::{Buffer, BufferUsages, CommandEncoder, Device};

use super::buffers::Sizes;
use super::context::Kernels;
use super::dispatch::Step;
use super::error::GpuError;

/// Timestamp queries around every dispatch.
#[derive(Debug)]
struct Profiler {
    query_set: wgpu::QuerySet,
    resolve: Buffer,
    count: u32,
    /// Nanoseconds per tick.
    period: f32,
}

/// The readback buffer and where things are in it: logits, then every layer's probabilities
/// (`layer_stride` apart), then the timestamps.
#[derive(Debug)]
pub(super) struct Readback {
    /// MAP_READ copy of logits, probabilities and timestamps.
    staging: Buffer,
    sizes: Sizes,
    layers: usize,
    /// Present when the device has timestamp queries.
    profiler: Option<Profiler>,
}

/// What one pass read back.
pub(super) struct Readout {
    /// (B, classes)
    pub logits: Vec<f32>,
    /// One per layer, each (B, H, T, T).
    pub attentions: Vec<Vec<f32>>,
    /// GPU milliseconds per kernel kind, in order of first use, when the pass was timed.
    pub kernel_ms: Option<Vec<(String, f64)>>,
}

impl Readback {
    /// The staging buffer for a pass of `sizes` over `layers` layers, and the timestamp
    /// queries where the device has them (`timestamp_period`, ns per tick).
    pub fn new(
        device: &Device,
        sizes: Sizes,
        layers: usize,
        timestamp_period: Option<f32>,
    ) -> Self {
        let profiler = timestamp_period.map(|period| {
            let count = sizes.timestamp_queries;
            Profiler {
                query_set: device.create_query_set(&wgpu::QuerySetDescriptor {
                    label: Some("kernel_timestamps"),
                    ty: wgpu::QueryType::Timestamp,
                    count,
                }),
                resolve: device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("kernel_timestamps_resolve"),
                    size: u64::from(count) * 8,
                    usage: BufferUsages::QUERY_RESOLVE | BufferUsages::COPY_SRC,
                    mapped_at_creation: false,
                }),
                count,
                period,
            }
        });
        let size = match profiler {
            Some(_) => sizes.readback(),
            None => sizes.readback_timestamps,
        };
        let staging = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("readback"),
            size,
            usage: BufferUsages::MAP_READ | BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        Self {
            staging,
            sizes,
            layers,
            profiler,
        }
    }

    pub fn staging(&self) -> &Buffer {
        &self.staging
    }

    fn profiler(&self, timed: bool) -> Option<&Profiler> {
        self.profiler.as_ref().filter(|_| timed)
    }

    /// Encodes `steps`: in one compute pass, or with `timed` (and a device with timestamp
    /// queries) each in its own pass between two timestamps.
    pub fn encode_steps(
        &self,
        encoder: &mut CommandEncoder,
        steps: &[Step],
        kernels: &Kernels,
        timed: bool,
    ) {
        match self.profiler(timed) {
            Some(profiler) => {
                for (i, step) in steps.iter().enumerate() {
                    let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                        label: Some(&step.label),
                        timestamp_writes: Some(wgpu::ComputePassTimestampWrites {
                            query_set: &profiler.query_set,
                            beginning_of_pass_write_index: Some(2 * i as u32),
                            end_of_pass_write_index: Some(2 * i as u32 + 1),
                        }),
                    });
                    step.encode(&mut pass, kernels);
                }
            }
            None => {
                let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                    label: Some("vit_forward"),
                    timestamp_writes: None,
                });
                for step in steps {
                    step.encode(&mut pass, kernels);
                }
            }
        }
    }

    /// Copies the logits, the probabilities and (when `timed`) the timestamps into the
    /// staging buffer.
    pub fn copy_results(
        &self,
        encoder: &mut CommandEncoder,
        logits: &Buffer,
        probs: &Buffer,
        timed: bool,
    ) {
        let s = &self.sizes;
        encoder.copy_buffer_to_buffer(logits, 0, &self.staging, 0, s.logits);
        encoder.copy_buffer_to_buffer(probs, 0, &self.staging, s.readback_probs, s.probs);
        if let Some(profiler) = self.profiler(timed) {
            encoder.resolve_query_set(&profiler.query_set, 0..profiler.count, &profiler.resolve, 0);
            encoder.copy_buffer_to_buffer(
                &profiler.resolve,
                0,
                &self.staging,
                s.readback_timestamps,
                u64::from(profiler.count) * 8,
            );
        }
    }

    /// Unpacks the mapped staging buffer: logits (B·classes), every layer's probabilities
    /// (B·H·T·T each) and, when the pass was `timed`, milliseconds per kind of `steps`.
    /// Unmaps it.
    pub fn read(&self, steps: &[Step], timed: bool) -> Result<Readout, GpuError> {
        let s = &self.sizes;
        let view = self
            .staging
            .slice(..)
            .get_mapped_range()
            .map_err(|e| GpuError::Map(e.to_string()))?;
        let bytes: &[u8] = &view;
        let logits = f32s(&bytes[..s.logits as usize]);
        let attentions = (0..self.layers)
            .map(|l| {
                let start = (s.readback_probs + l as u64 * s.layer_stride) as usize;
                f32s(&bytes[start..start + s.layer_probs as usize])
            })
            .collect();
        let kernel_ms = self.profiler(timed).map(|profiler| {
            let start = s.readback_timestamps as usize;
            let ticks: Vec<u64> = bytes[start..start + profiler.count as usize * 8]
                .chunks_exact(8)
                .map(|c| u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
                .collect();
            let mut totals: Vec<(String, f64)> = Vec::new();
            for (step, pair) in steps.iter().zip(ticks.chunks_exact(2)) {
                let ms = pair[1].saturating_sub(pair[0]) as f64 * f64::from(profiler.period) / 1e6;
                match totals.iter_mut().find(|(kind, _)| kind == step.kind) {
                    Some((_, total)) => *total += ms,
                    None => totals.push((step.kind.to_string(), ms)),
                }
            }
            totals
        });
        drop(view);
        self.staging.unmap();
        Ok(Readout {
            logits,
            attentions,
            kernel_ms,
        })
    }
}

/// Little-endian f32s out of bytes (mapped memory need not be 4-byte aligned for `cast_slice`).
fn f32s(bytes: &[u8]) -> Vec<f32> {
    match bytemuck::try_cast_slice::<u8, f32>(bytes) {
        Ok(values) => values.to_vec(),
        Err(_) => bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
    }
}
