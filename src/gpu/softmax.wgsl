// Row softmax in place: one workgroup per row, max and sum by workgroup tree reductions.
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

var<workgroup> partial: array<f32, WORKGROUP_SIZE>;

// Tree reduction of `partial` (max when `take_max`, else sum); every invocation gets the result.
fn reduce(value: f32, lane: u32, take_max: bool) -> f32 {
    partial[lane] = value;
    workgroupBarrier();
    for (var step = WORKGROUP_SIZE / 2u; step > 0u; step >>= 1u) {
        if (lane < step) {
            let other = partial[lane + step];
            partial[lane] = select(partial[lane] + other, max(partial[lane], other), take_max);
        }
        workgroupBarrier();
    }
    let total = partial[0];
    // Everyone has read the result before `partial` is reused.
    workgroupBarrier();
    return total;
}

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

    var local_max = -3.4028235e38;
    for (var j = lane; j < p.cols; j += WORKGROUP_SIZE) {
        local_max = max(local_max, x[base + j]);
    }
    let row_max = reduce(local_max, lane, true);

    var local_sum = 0.0;
    for (var j = lane; j < p.cols; j += WORKGROUP_SIZE) {
        let e = exp(x[base + j] - row_max);
        x[base + j] = e;
        local_sum += e;
    }
    let inv = 1.0 / reduce(local_sum, lane, false);

    for (var j = lane; j < p.cols; j += WORKGROUP_SIZE) {
        x[base + j] *= inv;
    }
}
