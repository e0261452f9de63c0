//! What every kernel shares: a compute pipeline whose bind group 0 is one uniform parameter
//! block (binding 0) followed by storage buffers (bindings 1…), and how to bind and
//! dispatch it.

use std::num::NonZeroU64;

use wgpu::{BindGroup, BindGroupLayout, Buffer, BufferBinding, ComputePipeline, Device};

/// How a kernel accesses one of its storage buffers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Access {
    /// `array<f32>`, read-only.
    Read,
    /// `array<vec4<f32>>`, read-only: bound ranges must hold at least one vec4.
    ReadVec4,
    /// `array<f32>`, read-write.
    ReadWrite,
}

/// A compiled kernel and the layout of its bind group.
#[derive(Debug)]
pub(super) struct Kernel {
    pub name: &'static str,
    pub pipeline: ComputePipeline,
    layout: BindGroupLayout,
    /// Size of the kernel's parameter block, in bytes.
    params_size: u64,
}

impl Kernel {
    /// Compiles `source`'s entry point `name`. `storage` lists bindings 1… in order; binding 0
    /// is a uniform block of `params_size` bytes.
    pub fn new(
        device: &Device,
        source: wgpu::ShaderModuleDescriptor<'_>,
        name: &'static str,
        params_size: usize,
        storage: &[Access],
    ) -> Self {
        let params_size = params_size as u64;
        let mut entries = vec![wgpu::BindGroupLayoutEntry {
            binding: 0,
            visibility: wgpu::ShaderStages::COMPUTE,
            ty: wgpu::BindingType::Buffer {
                ty: wgpu::BufferBindingType::Uniform,
                has_dynamic_offset: false,
                min_binding_size: NonZeroU64::new(params_size),
            },
            count: None,
        }];
        entries.extend(storage.iter().zip(1u32..).map(|(access, binding)| {
            wgpu::BindGroupLayoutEntry {
                binding,
                visibility: wgpu::ShaderStages::COMPUTE,
                ty: wgpu::BindingType::Buffer {
                    ty: wgpu::BufferBindingType::Storage {
                        read_only: *access != Access::ReadWrite,
                    },
                    has_dynamic_offset: false,
                    min_binding_size: NonZeroU64::new(if *access == Access::ReadVec4 {
                        16
                    } else {
                        4
                    }),
                },
                count: None,
            }
        }));
        let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some(name),
            entries: &entries,
        });
        let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some(name),
            bind_group_layouts: &[Some(&layout)],
            immediate_size: 0,
        });
        let module = device.create_shader_module(source);
        let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(name),
            layout: Some(&pipeline_layout),
            module: &module,
            entry_point: Some(name),
            compilation_options: wgpu::PipelineCompilationOptions {
                constants: &[],
                // Every kernel writes its workgroup memory before reading it.
                zero_initialize_workgroup_memory: false,
            },
            cache: None,
        });
        Self {
            name,
            pipeline,
            layout,
            params_size,
        }
    }

    /// A bind group: the parameter block at `params_offset` in `params`, then `storage` as
    /// bindings 1… (same order as given to [`Kernel::new`]).
    pub fn bind(
        &self,
        device: &Device,
        label: &str,
        params: &Buffer,
        params_offset: u64,
        storage: &[BufferBinding<'_>],
    ) -> BindGroup {
        let mut entries = vec![wgpu::BindGroupEntry {
            binding: 0,
            resource: wgpu::BindingResource::Buffer(BufferBinding {
                buffer: params,
                offset: params_offset,
                size: NonZeroU64::new(self.params_size),
            }),
        }];
        entries.extend(
            storage
                .iter()
                .zip(1u32..)
                .map(|(binding, index)| wgpu::BindGroupEntry {
                    binding: index,
                    resource: wgpu::BindingResource::Buffer(binding.clone()),
                }),
        );
        device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(label),
            layout: &self.layout,
            entries: &entries,
        })
    }
}

/// Part of a buffer as a binding: `len` bytes from `offset` (a multiple of the storage
/// offset alignment).
pub(super) fn region(buffer: &Buffer, offset: u64, len: u64) -> BufferBinding<'_> {
    BufferBinding {
        buffer,
        offset,
        size: NonZeroU64::new(len),
    }
}

/// A 1-D count of workgroups laid out on a 2-D grid no side of which exceeds `max_side`;
/// kernels number them `y · x_count + x` and skip the excess. None if even that is too many.
pub(super) fn grid_2d(count: u32, max_side: u32) -> Option<[u32; 3]> {
    let x = count.clamp(1, max_side.max(1));
    let y = count.div_ceil(x).max(1);
    (y <= max_side).then_some([x, y, 1])
}

#[cfg(test)]
mod tests {
    use super::grid_2d;

    #[test]
    fn grid_covers_count() {
        assert_eq!(grid_2d(10, 65535), Some([10, 1, 1]));
        assert_eq!(grid_2d(70000, 65535), Some([65535, 2, 1]));
        assert_eq!(grid_2d(0, 65535), Some([1, 1, 1]));
        assert_eq!(grid_2d(u32::MAX, 4), None);
    }
}
