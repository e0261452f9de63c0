// Row softmax in place: one workgroup per row. One pass finds the row's maximum and its sum
// of exponentials together (each invocation keeps a running maximum and rescales its sum
// when the maximum grows; partial results are merged the same way by a workgroup tree
// reduction), a second pass writes exp(x − max) / sum: two reads and one write per value.
// Dispatched by softmax.rs; rows are numbered across a 2-D grid of workgroups
// (workgroup_id.y · num_workgroups.x + workgroup_id.x) so more than 65535 rows fit.

// KEEP IN SYNC with `SoftmaxParams` in params.rs.
struct SoftmaxParams {
    rows: u32,
    cols: u32,
    row_stride: u32,
    offset: u32,
}

// KEEP IN SYNC with ROW_WORKGROUP_SIZE in params.rs.
const WORKGROUP_SIZE: u32 = 64u;

// Row count, row length, where rows start.
@group(0) @binding(0) var<uniform> p: SoftmaxParams;
// The scores, replaced by probabilities: row r at offset + r·row_stride.
@group(0) @binding(1) var<storage, read_write> x: array<f32>;

var<workgroup> partial_max: array<f32, WORKGROUP_SIZE>;
var<workgroup> partial_sum: array<f32, WORKGROUP_SIZE>;

// Below every score, and far enough from the f32 limit that subtracting a score stays finite.
const LOWEST: f32 = -3.0e38;

@compute @workgroup_size(WORKGROUP_SIZE)
fn softmax(
    @builtin(local_invocation_index) lane: u32,
    @builtin(workgroup_id) wid: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
) {
    // Uniform across the workgroup, so returning early keeps the barriers uniform.
    let row = wid.y * groups.x + wid.x;
    if (row >= p.rows) {
        return;
    }
    let base = p.offset + row * p.row_stride;

    // Running (max, Σ exp(x − max)) over this invocation's values.
    var m = LOWEST;
    var s = 0.0;
    for (var j = lane; j < p.cols; j += WORKGROUP_SIZE) {
        let v = x[base + j];
        let next = max(m, v);
        s = s * exp(m - next) + exp(v - next);
        m = next;
    }
    partial_max[lane] = m;
    partial_sum[lane] = s;
    workgroupBarrier();
    for (var step = WORKGROUP_SIZE / 2u; step > 0u; step >>= 1u) {
        if (lane < step) {
            let m_a = partial_max[lane];
            let m_b = partial_max[lane + step];
            let merged = max(m_a, m_b);
            partial_sum[lane] = partial_sum[lane] * exp(m_a - merged)
                + partial_sum[lane + step] * exp(m_b - merged);
            partial_max[lane] = merged;
        }
        workgroupBarrier();
    }
    let row_max = partial_max[0];
    let inv = 1.0 / partial_sum[0];

    for (var j = lane; j < p.cols; j += WORKGROUP_SIZE) {
        x[base + j] = exp(x[base + j] - row_max) * inv;
    }
}
