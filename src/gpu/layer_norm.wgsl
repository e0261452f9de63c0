// LayerNorm over the last dimension: one workgroup per row, mean then variance of the
// deviations (two passes, f32, biased variance as PyTorch), by workgroup tree reductions.
// Dispatched by layer_norm.rs; rows are numbered across a 2-D grid of workgroups.

// KEEP IN SYNC with `LayerNormParams` in params.rs.
struct LayerNormParams {
    rows: u32,
    cols: u32,
    group: u32,
    group_stride: u32,
    eps: f32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

// KEEP IN SYNC with ROW_WORKGROUP_SIZE in params.rs.
const WORKGROUP_SIZE: u32 = 64u;

// Row count, row length, which input rows, epsilon.
@group(0) @binding(0) var<uniform> p: LayerNormParams;
// Input rows: output row r reads row (r / group)·group_stride + r % group.
@group(0) @binding(1) var<storage, read> x: array<f32>;
// gamma (cols).
@group(0) @binding(2) var<storage, read> weight: array<f32>;
// beta (cols).
@group(0) @binding(3) var<storage, read> bias: array<f32>;
// Output rows, dense: (rows, cols).
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

var<workgroup> partial: array<f32, WORKGROUP_SIZE>;

// Tree sum of `value` over the workgroup; every invocation gets the result.
fn workgroup_sum(value: f32, lane: u32) -> f32 {
    partial[lane] = value;
    workgroupBarrier();
    for (var step = WORKGROUP_SIZE / 2u; step > 0u; step >>= 1u) {
        if (lane < step) {
            partial[lane] += partial[lane + step];
        }
        workgroupBarrier();
    }
    let total = partial[0];
    // Everyone has read the result before `partial` is reused.
    workgroupBarrier();
    return total;
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn layer_norm(
    @builtin(local_invocation_index) lane: u32,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
) {
    // Uniform across the workgroup, so returning early keeps the barriers uniform.
    let row = wid.y * groups.x + wid.x;
    if (row >= p.rows) {
        return;
    }
    let in_base = ((row / p.group) * p.group_stride + row % p.group) * p.cols;
    let out_base = row * p.cols;
    let inv_cols = 1.0 / f32(p.cols);

    var sum = 0.0;
    for (var j = lane; j < p.cols; j += WORKGROUP_SIZE) {
        sum += x[in_base + j];
    }
    let mean = workgroup_sum(sum, lane) * inv_cols;

    var squares = 0.0;
    for (var j = lane; j < p.cols; j += WORKGROUP_SIZE) {
        let d = x[in_base + j] - mean;
        squares += d * d;
    }
    let rstd = inverseSqrt(workgroup_sum(squares, lane) * inv_cols + p.eps);

    for (var j = lane; j < p.cols; j += WORKGROUP_SIZE) {
        y[out_base + j] = (x[in_base + j] - mean) * rstd * weight[j] + bias[j];
    }
}
