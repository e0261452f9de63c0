// Patches out of images: (batch, channels, height, width) pixels → rows of
// (channels·patch·patch) values, one row per patch in (image, grid row, grid column) order,
// values in (channel, y, x) order — the layout of a PyTorch conv weight (hidden, C, P, P)
// read as (hidden, C·P·P). One invocation per output value. Dispatched by im2col.rs.
// Pixels beyond the last whole patch are ignored, as a stride-P convolution does.

// KEEP IN SYNC with `Im2colParams` in params.rs.
struct Im2colParams {
    batch: u32,
    channels: u32,
    height: u32,
    width: u32,
    patch_size: u32,
    grid_h: u32,
    grid_w: u32,
    total: u32,
}

// KEEP IN SYNC with ELEMENTWISE_WORKGROUP_SIZE in params.rs.
const WORKGROUP_SIZE: u32 = 256u;

// Geometry.
@group(0) @binding(0) var<uniform> p: Im2colParams;
// Pixels (batch, channels, height, width).
@group(0) @binding(1) var<storage, read> pixels: array<f32>;
// Patch rows (batch·grid_h·grid_w, channels·patch·patch).
@group(0) @binding(2) var<storage, read_write> patches: array<f32>;

@compute @workgroup_size(WORKGROUP_SIZE)
fn im2col(
    @builtin(local_invocation_index) lane: u32,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
) {
    let index = (wid.y * groups.x + wid.x) * WORKGROUP_SIZE + lane;
    if (index >= p.total) {
        return;
    }
    let pp = p.patch_size * p.patch_size;
    let row_len = p.channels * pp;
    let patch_row = index / row_len;
    let within = index % row_len;
    let channel = within / pp;
    let ky = (within % pp) / p.patch_size;
    let kx = within % p.patch_size;
    let patches_per_image = p.grid_h * p.grid_w;
    let image = patch_row / patches_per_image;
    let cell = patch_row % patches_per_image;
    let y = (cell / p.grid_w) * p.patch_size + ky;
    let x = (cell % p.grid_w) * p.patch_size + kx;
    patches[index] = pixels[((image * p.channels + channel) * p.height + y) * p.width + x];
}
