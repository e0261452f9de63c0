// LayerNorm over the last dimension: one workgroup per row. Mean and biased variance (as
// PyTorch) in one pass by Welford's update per invocation, merged by a workgroup tree
// reduction (Chan et al.'s pairwise formula), then a second pass normalizes: two reads of
// each value, all in f32.
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

// Per invocation: (count, mean, sum of squared deviations).
var<workgroup> partial_count: array<f32, WORKGROUP_SIZE>;
var<workgroup> partial_mean: array<f32, WORKGROUP_SIZE>;
var<workgroup> partial_m2: array<f32, WORKGROUP_SIZE>;

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

    var count = 0.0;
    var mean = 0.0;
    var m2 = 0.0;
    for (var j = lane; j < p.cols; j += WORKGROUP_SIZE) {
        let v = x[in_base + j];
        count += 1.0;
        let d = v - mean;
        mean += d / count;
        m2 += d * (v - mean);
    }
    partial_count[lane] = count;
    partial_mean[lane] = mean;
    partial_m2[lane] = m2;
    workgroupBarrier();
    for (var step = WORKGROUP_SIZE / 2u; step > 0u; step >>= 1u) {
        if (lane < step) {
            let n_a = partial_count[lane];
            let n_b = partial_count[lane + step];
            let n = n_a + n_b;
            // Both halves empty only past the end of a short row: nothing to merge.
            if (n > 0.0) {
                let delta = partial_mean[lane + step] - partial_mean[lane];
                partial_mean[lane] += delta * (n_b / n);
                partial_m2[lane] += partial_m2[lane + step] + delta * delta * (n_a * n_b / n);
                partial_count[lane] = n;
            }
        }
        workgroupBarrier();
    }
    let row_mean = partial_mean[0];
    let rstd = inverseSqrt(partial_m2[0] / f32(p.cols) + p.eps);

    for (var j = lane; j < p.cols; j += WORKGROUP_SIZE) {
        y[out_base + j] = (x[in_base + j] - row_mean) * rstd * weight[j] + bias[j];
    }
}
