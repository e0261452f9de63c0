//! Parameter blocks of every kernel, laid out exactly as the WGSL `struct`s that read them,
//! and the workgroup geometry each kernel is compiled with.
//!
//! KEEP IN SYNC: every struct here mirrors a `struct …Params` at the top of a `.wgsl` file in
//! this folder (same fields, same order, 4-byte scalars only, explicit padding to a multiple
//! of 16 bytes), and every constant mirrors a `const` there. The unit tests at the bottom check
//! the constants and struct sizes against the WGSL sources.

/// Side of a GEMM output tile (rows and columns), in elements. Mirrors `TILE` in `gemm.wgsl`.
pub const GEMM_TILE: u32 = 64;
/// Depth of one step through the shared dimension, in elements. Mirrors `TILE_K` in `gemm.wgsl`.
pub const GEMM_TILE_K: u32 = 16;
/// The GEMM workgroup is `GEMM_WORKGROUP_SIDE`² invocations, each computing an 8×8 block of
/// the tile. Mirrors `WORKGROUP_SIDE` and `@workgroup_size` in `gemm.wgsl`.
pub const GEMM_WORKGROUP_SIDE: u32 = GEMM_TILE / 8;
/// Invocations of a row kernel (softmax, LayerNorm): one workgroup per row.
/// Mirrors `WORKGROUP_SIZE` in `softmax.wgsl` and `layer_norm.wgsl`.
pub const ROW_WORKGROUP_SIZE: u32 = 64;
/// Invocations of an element-wise kernel (im2col). Mirrors `WORKGROUP_SIZE` in `im2col.wgsl`.
pub const ELEMENTWISE_WORKGROUP_SIZE: u32 = 256;
/// Workgroup memory the GEMM uses: an A and a B tile of `GEMM_TILE_K`×`GEMM_TILE` f32.
pub const GEMM_WORKGROUP_BYTES: u32 = 2 * GEMM_TILE_K * GEMM_TILE * 4;

/// `GemmParams::flags` bits. Mirror the `FLAG_*` constants in `gemm.wgsl`.
pub mod gemm_flags {
    /// Add `bias[column]`.
    pub const BIAS: u32 = 1;
    /// Apply GELU, exact (erf) form, after the bias.
    pub const GELU_ERF: u32 = 2;
    /// Apply GELU, tanh approximation, after the bias.
    pub const GELU_TANH: u32 = 4;
    /// Add the residual operand after scaling by `alpha`.
    pub const RESIDUAL: u32 = 8;
    /// B is stored transposed: element (k, n) at `n·ldb + k` instead of `k·ldb + n`.
    pub const TRANS_B: u32 = 16;
    /// A may be read as vec4s: its offsets, strides, `lda` and `k` are multiples of 4.
    pub const A_VEC4: u32 = 32;
    /// B may be read as vec4s: its offsets, strides, `ldb` and its contiguous dimension
    /// (`n`, or `k` with [`TRANS_B`]) are multiples of 4.
    pub const B_VEC4: u32 = 64;
}

/// One (batched) GEMM: for every batch index `z` in the dispatch's z dimension, with
/// `outer = z / batch_inner` and `inner = z % batch_inner`,
/// `C = alpha · act(A·B + bias) + R`, where A is (m, k), B is (k, n), C and R are (m, n).
///
/// Every operand is addressed as `offset + outer·stride_outer + inner·stride_inner` plus
/// `row·ld + column` (f32 elements), so one kernel serves the dense layers, the patch
/// embedding (one batch entry per image, writing after the prefix rows) and both attention
/// products straight on the fused qkv buffer (one batch entry per image and head).
///
/// KEEP IN SYNC with `struct GemmParams` in `gemm.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct GemmParams {
    pub m: u32,
    pub n: u32,
    pub k: u32,
    /// [`gemm_flags`] bits.
    pub flags: u32,
    pub lda: u32,
    pub ldb: u32,
    pub ldc: u32,
    pub ldr: u32,
    pub a_offset: u32,
    pub b_offset: u32,
    pub c_offset: u32,
    pub r_offset: u32,
    pub a_stride_outer: u32,
    pub a_stride_inner: u32,
    pub b_stride_outer: u32,
    pub b_stride_inner: u32,
    pub c_stride_outer: u32,
    pub c_stride_inner: u32,
    pub r_stride_outer: u32,
    pub r_stride_inner: u32,
    /// Batch entries per `outer` index (≥ 1).
    pub batch_inner: u32,
    pub alpha: f32,
    pub _pad0: u32,
    pub _pad1: u32,
}

/// Softmax over `rows` rows of `cols` values, in place; row `r` starts at
/// `offset + r·row_stride`. KEEP IN SYNC with `struct SoftmaxParams` in `softmax.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct SoftmaxParams {
    pub rows: u32,
    pub cols: u32,
    pub row_stride: u32,
    pub offset: u32,
}

/// LayerNorm of `rows` rows of `cols` values. Output row `r` reads input row
/// `(r / group)·group_stride + r % group` (so the final norm can read only the prefix tokens
/// of every image) and is written densely. KEEP IN SYNC with `struct LayerNormParams` in
/// `layer_norm.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct LayerNormParams {
    pub rows: u32,
    pub cols: u32,
    pub group: u32,
    pub group_stride: u32,
    pub eps: f32,
    pub _pad0: u32,
    pub _pad1: u32,
    pub _pad2: u32,
}

/// Patches of `patch`×`patch` pixels out of (batch, channels, height, width) images, as rows
/// of (channels·patch·patch) values in (channel, y, x) order — a stride-`patch` convolution's
/// input as a GEMM operand. KEEP IN SYNC with `struct Im2colParams` in `im2col.wgsl`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Im2colParams {
    pub batch: u32,
    pub channels: u32,
    pub height: u32,
    pub width: u32,
    pub patch_size: u32,
    pub grid_h: u32,
    pub grid_w: u32,
    /// batch · grid_h · grid_w · channels · patch · patch
    pub total: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `const NAME: u32 = VALUE;` as the WGSL sources spell it.
    fn assert_const(source: &str, file: &str, name: &str, value: u32) {
        let line = format!("const {name}: u32 = {value}u;");
        assert!(
            source.contains(&line),
            "{file} should contain `{line}` (keep in sync with params.rs)"
        );
    }

    #[test]
    fn wgsl_constants_match() {
        let gemm = include_str!("gemm.wgsl");
        assert_const(gemm, "gemm.wgsl", "TILE", GEMM_TILE);
        assert_const(gemm, "gemm.wgsl", "TILE_K", GEMM_TILE_K);
        assert_const(gemm, "gemm.wgsl", "WORKGROUP_SIDE", GEMM_WORKGROUP_SIDE);
        assert!(gemm.contains("@workgroup_size(WORKGROUP_SIDE, WORKGROUP_SIDE, 1)"));
        assert_const(gemm, "gemm.wgsl", "FLAG_BIAS", gemm_flags::BIAS);
        assert_const(gemm, "gemm.wgsl", "FLAG_GELU_ERF", gemm_flags::GELU_ERF);
        assert_const(gemm, "gemm.wgsl", "FLAG_GELU_TANH", gemm_flags::GELU_TANH);
        assert_const(gemm, "gemm.wgsl", "FLAG_RESIDUAL", gemm_flags::RESIDUAL);
        assert_const(gemm, "gemm.wgsl", "FLAG_TRANS_B", gemm_flags::TRANS_B);
        assert_const(gemm, "gemm.wgsl", "FLAG_A_VEC4", gemm_flags::A_VEC4);
        assert_const(gemm, "gemm.wgsl", "FLAG_B_VEC4", gemm_flags::B_VEC4);
        for (file, source) in [
            ("softmax.wgsl", include_str!("softmax.wgsl")),
            ("layer_norm.wgsl", include_str!("layer_norm.wgsl")),
        ] {
            assert_const(source, file, "WORKGROUP_SIZE", ROW_WORKGROUP_SIZE);
            assert!(source.contains("@workgroup_size(WORKGROUP_SIZE)"));
        }
        let im2col = include_str!("im2col.wgsl");
        assert_const(
            im2col,
            "im2col.wgsl",
            "WORKGROUP_SIZE",
            ELEMENTWISE_WORKGROUP_SIZE,
        );
        assert!(im2col.contains("@workgroup_size(WORKGROUP_SIZE)"));
    }

    /// Each WGSL struct has as many 4-byte fields as the Rust one.
    #[test]
    fn wgsl_structs_match() {
        for (file, source, name, size) in [
            (
                "gemm.wgsl",
                include_str!("gemm.wgsl"),
                "GemmParams",
                std::mem::size_of::<GemmParams>(),
            ),
            (
                "softmax.wgsl",
                include_str!("softmax.wgsl"),
                "SoftmaxParams",
                std::mem::size_of::<SoftmaxParams>(),
            ),
            (
                "layer_norm.wgsl",
                include_str!("layer_norm.wgsl"),
                "LayerNormParams",
                std::mem::size_of::<LayerNormParams>(),
            ),
            (
                "im2col.wgsl",
                include_str!("im2col.wgsl"),
                "Im2colParams",
                std::mem::size_of::<Im2colParams>(),
            ),
        ] {
            assert_eq!(size % 16, 0, "{name} must be padded to 16 bytes");
            let start = source
                .find(&format!("struct {name} {{"))
                .unwrap_or_else(|| panic!("{file} declares struct {name}"));
            let body = &source[start..];
            let body = &body[..body.find('}').expect("struct ends")];
            let fields = body.matches(": u32").count() + body.matches(": f32").count();
            assert_eq!(fields * 4, size, "{file}: struct {name} vs params.rs");
        }
    }
}
