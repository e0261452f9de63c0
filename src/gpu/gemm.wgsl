// Batched, strided GEMM with a fused epilogue:
//     C = alpha · act(A·B + bias) + R        A (m, k), B (k, n), C and R (m, n), f32
// for every batch entry z of the dispatch (workgroup_id.z). Dispatched by gemm.rs.
//
// Tiling: one workgroup of WORKGROUP_SIDE² = 64 invocations computes a TILE×TILE = 64×64
// block of C; each invocation holds an 8×8 block in registers (sixteen vec4 accumulators).
// The shared dimension is walked TILE_K = 16 at a time: the A and B tiles are staged in
// workgroup memory (8 KiB) with coalesced loads — vec4 loads when the host says the operand
// is 16-byte aligned (FLAG_A_VEC4 / FLAG_B_VEC4), scalar loads otherwise — then, per k,
// every invocation reads two vec4 of A and two of B and does 64 multiply-adds.
// Loads outside A or B read zero; stores outside C are skipped, so any m, n, k work.

// KEEP IN SYNC with `GemmParams` in params.rs (field order, 4-byte fields, padding).
struct GemmParams {
    m: u32,
    n: u32,
    k: u32,
    flags: u32,
    lda: u32,
    ldb: u32,
    ldc: u32,
    ldr: u32,
    a_offset: u32,
    b_offset: u32,
    c_offset: u32,
    r_offset: u32,
    a_stride_outer: u32,
    a_stride_inner: u32,
    b_stride_outer: u32,
    b_stride_inner: u32,
    c_stride_outer: u32,
    c_stride_inner: u32,
    r_stride_outer: u32,
    r_stride_inner: u32,
    batch_inner: u32,
    alpha: f32,
    _pad0: u32,
    _pad1: u32,
}

// KEEP IN SYNC with GEMM_TILE, GEMM_TILE_K and GEMM_WORKGROUP_SIDE in params.rs.
const TILE: u32 = 64u;
const TILE_K: u32 = 16u;
const WORKGROUP_SIDE: u32 = 8u;
// vec4 columns per tile row.
const TILE_VEC: u32 = 16u;
// KEEP IN SYNC with `gemm_flags` in params.rs.
const FLAG_BIAS: u32 = 1u;
const FLAG_GELU_ERF: u32 = 2u;
const FLAG_GELU_TANH: u32 = 4u;
const FLAG_RESIDUAL: u32 = 8u;
const FLAG_TRANS_B: u32 = 16u;
const FLAG_A_VEC4: u32 = 32u;
const FLAG_B_VEC4: u32 = 64u;

// Shapes and strides of this dispatch.
@group(0) @binding(0) var<uniform> p: GemmParams;
// A: element (row, k) at a_base + row·lda + k.
@group(0) @binding(1) var<storage, read> a: array<f32>;
// The same buffer as vec4s, read with FLAG_A_VEC4 (a_base, lda and k multiples of 4).
@group(0) @binding(2) var<storage, read> a4: array<vec4<f32>>;
// B: element (k, col) at b_base + k·ldb + col, or b_base + col·ldb + k with FLAG_TRANS_B.
@group(0) @binding(3) var<storage, read> b: array<f32>;
// The same buffer as vec4s, read with FLAG_B_VEC4 (b_base, ldb and the contiguous
// dimension — n, or k with FLAG_TRANS_B — multiples of 4).
@group(0) @binding(4) var<storage, read> b4: array<vec4<f32>>;
// bias[col], read only with FLAG_BIAS.
@group(0) @binding(5) var<storage, read> bias: array<f32>;
// R: element (row, col) at r_base + row·ldr + col, read only with FLAG_RESIDUAL.
@group(0) @binding(6) var<storage, read> residual: array<f32>;
// C: element (row, col) at c_base + row·ldc + col.
@group(0) @binding(7) var<storage, read_write> c: array<f32>;

// a_tile[k·TILE_VEC + row/4][row%4] = A(row0 + row, k0 + k)
var<workgroup> a_tile: array<vec4<f32>, 256>;
// b_tile[k·TILE_VEC + col/4][col%4] = B(k0 + k, col0 + col)
var<workgroup> b_tile: array<vec4<f32>, 256>;

// erf by Abramowitz & Stegun 7.1.26, |error| ≤ 1.5e-7 (the CPU path uses the same formula).
fn erf_approx(x: f32) -> f32 {
    let ax = abs(x);
    let t = 1.0 / (1.0 + 0.3275911 * ax);
    let poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
    let y = 1.0 - poly * exp(-ax * ax);
    return select(-y, y, x >= 0.0);
}

fn gelu_erf(x: f32) -> f32 {
    return 0.5 * x * (1.0 + erf_approx(x * 0.70710678118654752));
}

// tanh(u) = 1 − 2/(e^{2u} + 1): saturates cleanly to ±1 where e^{2u} overflows or vanishes.
fn gelu_tanh(x: f32) -> f32 {
    let u = 0.7978845608028654 * (x + 0.044715 * x * x * x);
    let th = 1.0 - 2.0 / (exp(2.0 * u) + 1.0);
    return 0.5 * x * (1.0 + th);
}

// Epilogue for one output element.
fn finish(acc: f32, row: u32, col: u32, r_base: u32) -> f32 {
    var v = acc;
    if ((p.flags & FLAG_BIAS) != 0u) {
        v += bias[col];
    }
    if ((p.flags & FLAG_GELU_ERF) != 0u) {
        v = gelu_erf(v);
    } else if ((p.flags & FLAG_GELU_TANH) != 0u) {
        v = gelu_tanh(v);
    }
    v *= p.alpha;
    if ((p.flags & FLAG_RESIDUAL) != 0u) {
        v += residual[r_base + row * p.ldr + col];
    }
    return v;
}

// Stores one row of four consecutive columns of an invocation's block.
fn store_row(acc: vec4<f32>, row: u32, col: u32, c_base: u32, r_base: u32) {
    if (row >= p.m) {
        return;
    }
    for (var j = 0u; j < 4u; j++) {
        let cj = col + j;
        if (cj < p.n) {
            c[c_base + row * p.ldc + cj] = finish(acc[j], row, cj, r_base);
        }
    }
}

// Branch-free operand reads: outside the matrix they read index 0 (always valid) and
// return zero, so no invocation diverges around a load.
fn a_at(row: u32, k: u32, a_base: u32) -> f32 {
    let inside = row < p.m && k < p.k;
    return select(0.0, a[select(0u, a_base + row * p.lda + k, inside)], inside);
}

// A(row, k .. k+4); needs FLAG_A_VEC4 (k is a multiple of 4, so the quad is all in or out).
fn a4_at(row: u32, k: u32, a_base: u32) -> vec4<f32> {
    let inside = row < p.m && k < p.k;
    return select(vec4<f32>(0.0), a4[select(0u, (a_base + row * p.lda + k) / 4u, inside)], inside);
}

// B(k, col), stored (k, n) or, with FLAG_TRANS_B, (n, k).
fn b_at(k: u32, col: u32, b_base: u32) -> f32 {
    let inside = k < p.k && col < p.n;
    let stored = select(b_base + k * p.ldb + col, b_base + col * p.ldb + k, (p.flags & FLAG_TRANS_B) != 0u);
    return select(0.0, b[select(0u, stored, inside)], inside);
}

// B(k, col .. col+4) stored (k, n), or B(k .. k+4, col) stored (n, k); needs FLAG_B_VEC4.
fn b4_at(k: u32, col: u32, b_base: u32) -> vec4<f32> {
    let inside = k < p.k && col < p.n;
    let stored = select(b_base + k * p.ldb + col, b_base + col * p.ldb + k, (p.flags & FLAG_TRANS_B) != 0u);
    return select(vec4<f32>(0.0), b4[select(0u, stored / 4u, inside)], inside);
}

// Stages A(row0 .. row0+64, k0 .. k0+16) into a_tile; `t` is the local invocation index.
// Every invocation gathers 4×4 values (4 consecutive rows × 4 k) and writes them as 4 whole
// vec4s, so no workgroup store needs a dynamic component index.
fn load_a_tile(t: u32, row0: u32, k0: u32, a_base: u32) {
    if ((p.flags & FLAG_A_VEC4) != 0u) {
        // Invocation t: k quad t % 4 of rows 4·(t / 4) + {0..3}; 4 invocations cover a row.
        let k = k0 + 4u * (t % 4u);
        let quad = t / 4u;
        let r = row0 + 4u * quad;
        let v0 = a4_at(r, k, a_base);
        let v1 = a4_at(r + 1u, k, a_base);
        let v2 = a4_at(r + 2u, k, a_base);
        let v3 = a4_at(r + 3u, k, a_base);
        let slot = 4u * (t % 4u) * TILE_VEC + quad;
        a_tile[slot] = vec4<f32>(v0.x, v1.x, v2.x, v3.x);
        a_tile[slot + TILE_VEC] = vec4<f32>(v0.y, v1.y, v2.y, v3.y);
        a_tile[slot + 2u * TILE_VEC] = vec4<f32>(v0.z, v1.z, v2.z, v3.z);
        a_tile[slot + 3u * TILE_VEC] = vec4<f32>(v0.w, v1.w, v2.w, v3.w);
    } else {
        // Invocation t: k = t % 16 of row quads t / 16 + 4·j; 16 invocations cover a row.
        let kk = t % TILE_K;
        for (var j = 0u; j < 4u; j++) {
            let quad = t / TILE_K + 4u * j;
            let r = row0 + 4u * quad;
            a_tile[kk * TILE_VEC + quad] = vec4<f32>(
                a_at(r, k0 + kk, a_base),
                a_at(r + 1u, k0 + kk, a_base),
                a_at(r + 2u, k0 + kk, a_base),
                a_at(r + 3u, k0 + kk, a_base),
            );
        }
    }
}

// Stages B(k0 .. k0+16, col0 .. col0+64) into b_tile, likewise as whole vec4s.
fn load_b_tile(t: u32, col0: u32, k0: u32, b_base: u32) {
    let vec4_loads = (p.flags & FLAG_B_VEC4) != 0u;
    if ((p.flags & FLAG_TRANS_B) != 0u) {
        // Stored (n, k): read like A, one tile column per stored row.
        if (vec4_loads) {
            let k = k0 + 4u * (t % 4u);
            let quad = t / 4u;
            let col = col0 + 4u * quad;
            let v0 = b4_at(k, col, b_base);
            let v1 = b4_at(k, col + 1u, b_base);
            let v2 = b4_at(k, col + 2u, b_base);
            let v3 = b4_at(k, col + 3u, b_base);
            let slot = 4u * (t % 4u) * TILE_VEC + quad;
            b_tile[slot] = vec4<f32>(v0.x, v1.x, v2.x, v3.x);
            b_tile[slot + TILE_VEC] = vec4<f32>(v0.y, v1.y, v2.y, v3.y);
            b_tile[slot + 2u * TILE_VEC] = vec4<f32>(v0.z, v1.z, v2.z, v3.z);
            b_tile[slot + 3u * TILE_VEC] = vec4<f32>(v0.w, v1.w, v2.w, v3.w);
            return;
        }
        let kk = t % TILE_K;
        for (var j = 0u; j < 4u; j++) {
            let quad = t / TILE_K + 4u * j;
            let col = col0 + 4u * quad;
            b_tile[kk * TILE_VEC + quad] = vec4<f32>(
                b_at(k0 + kk, col, b_base),
                b_at(k0 + kk, col + 1u, b_base),
                b_at(k0 + kk, col + 2u, b_base),
                b_at(k0 + kk, col + 3u, b_base),
            );
        }
        return;
    }
    // Stored (k, n): invocation t reads column quad t % 16 of k = t / 16 + 4·j; 16
    // invocations cover one k's 64 columns.
    let quad = t % TILE_VEC;
    let col = col0 + 4u * quad;
    for (var j = 0u; j < 4u; j++) {
        let kk = t / TILE_VEC + 4u * j;
        let k = k0 + kk;
        var v: vec4<f32>;
        if (vec4_loads) {
            v = b4_at(k, col, b_base);
        } else {
            v = vec4<f32>(
                b_at(k, col, b_base),
                b_at(k, col + 1u, b_base),
                b_at(k, col + 2u, b_base),
                b_at(k, col + 3u, b_base),
            );
        }
        b_tile[kk * TILE_VEC + quad] = v;
    }
}

@compute @workgroup_size(WORKGROUP_SIDE, WORKGROUP_SIDE, 1)
fn gemm(
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(workgroup_id) wid: vec3<u32>,
) {
    let t = lid.y * WORKGROUP_SIDE + lid.x;
    let outer = wid.z / p.batch_inner;
    let inner = wid.z % p.batch_inner;
    let a_base = p.a_offset + outer * p.a_stride_outer + inner * p.a_stride_inner;
    let b_base = p.b_offset + outer * p.b_stride_outer + inner * p.b_stride_inner;
    let c_base = p.c_offset + outer * p.c_stride_outer + inner * p.c_stride_inner;
    let r_base = p.r_offset + outer * p.r_stride_outer + inner * p.r_stride_inner;
    let row0 = wid.y * TILE;
    let col0 = wid.x * TILE;

    // This invocation's 8×8 block: rows 4·lid.y + {0..3} and 32 + 4·lid.y + {0..3}, columns
    // likewise with lid.x, so neighbouring invocations read neighbouring vec4s of the tiles.
    // cR{0,1}: row R of the block, left and right column quads.
    var c00 = vec4<f32>(0.0);
    var c01 = vec4<f32>(0.0);
    var c10 = vec4<f32>(0.0);
    var c11 = vec4<f32>(0.0);
    var c20 = vec4<f32>(0.0);
    var c21 = vec4<f32>(0.0);
    var c30 = vec4<f32>(0.0);
    var c31 = vec4<f32>(0.0);
    var c40 = vec4<f32>(0.0);
    var c41 = vec4<f32>(0.0);
    var c50 = vec4<f32>(0.0);
    var c51 = vec4<f32>(0.0);
    var c60 = vec4<f32>(0.0);
    var c61 = vec4<f32>(0.0);
    var c70 = vec4<f32>(0.0);
    var c71 = vec4<f32>(0.0);

    for (var k0 = 0u; k0 < p.k; k0 += TILE_K) {
        load_a_tile(t, row0, k0, a_base);
        load_b_tile(t, col0, k0, b_base);
        workgroupBarrier();

        for (var kk = 0u; kk < TILE_K; kk++) {
            let top = a_tile[kk * TILE_VEC + lid.y];
            let bottom = a_tile[kk * TILE_VEC + lid.y + 8u];
            let left = b_tile[kk * TILE_VEC + lid.x];
            let right = b_tile[kk * TILE_VEC + lid.x + 8u];
            c00 += top.x * left;
            c01 += top.x * right;
            c10 += top.y * left;
            c11 += top.y * right;
            c20 += top.z * left;
            c21 += top.z * right;
            c30 += top.w * left;
            c31 += top.w * right;
            c40 += bottom.x * left;
            c41 += bottom.x * right;
            c50 += bottom.y * left;
            c51 += bottom.y * right;
            c60 += bottom.z * left;
            c61 += bottom.z * right;
            c70 += bottom.w * left;
            c71 += bottom.w * right;
        }
        workgroupBarrier();
    }

    let top = row0 + lid.y * 4u;
    let left = col0 + lid.x * 4u;
    store_row(c00, top + 0u, left, c_base, r_base);
    store_row(c01, top + 0u, left + 32u, c_base, r_base);
    store_row(c10, top + 1u, left, c_base, r_base);
    store_row(c11, top + 1u, left + 32u, c_base, r_base);
    store_row(c20, top + 2u, left, c_base, r_base);
    store_row(c21, top + 2u, left + 32u, c_base, r_base);
    store_row(c30, top + 3u, left, c_base, r_base);
    store_row(c31, top + 3u, left + 32u, c_base, r_base);
    store_row(c40, top + 32u, left, c_base, r_base);
    store_row(c41, top + 32u, left + 32u, c_base, r_base);
    store_row(c50, top + 33u, left, c_base, r_base);
    store_row(c51, top + 33u, left + 32u, c_base, r_base);
    store_row(c60, top + 34u, left, c_base, r_base);
    store_row(c61, top + 34u, left + 32u, c_base, r_base);
    store_row(c70, top + 35u, left, c_base, r_base);
    store_row(c71, top + 35u, left + 32u, c_base, r_base);
}
