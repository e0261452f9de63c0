//! Parameter blocks of every kernel, laid out exactly as the WGSL `struct`s that read them,
//! and the workgroup geometry each kernel is compiled with.
//!
//! KEEP IN SYNC: every struct here mirrors a `struct …Params` at the top of a `.wgsl` file in
//! this folder (same fields, same order, same types, explicit padding to a multiple of 16
//! bytes), and every constant mirrors a `const` there. The unit tests at the bottom parse the
//! WGSL sources and check the constants, and every field's name, type and byte offset (by
//! WGSL's layout rules) against the `#[repr(C)]` structs.

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

/// A Rust field of a parameter block, for the layout tests against the WGSL.
#[cfg(test)]
#[derive(Debug)]
struct Field {
    name: &'static str,
    /// Byte offset in the `#[repr(C)]` struct.
    offset: usize,
    /// The Rust type's name: `u32`, `i32` or `f32`, spelled as WGSL spells it.
    ty: &'static str,
}

/// Declares a parameter block: `#[repr(C)]`, `Pod`, and (in tests) its list of [`Field`]s.
macro_rules! params_struct {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $($(#[$field_meta:meta])* pub $field:ident: $ty:ident,)*
        }
    ) => {
        $(#[$meta])*
        #[repr(C)]
        #[derive(Clone, Copy, Debug, Default, PartialEq, bytemuck::Pod, bytemuck::Zeroable)]
        pub struct $name {
            $($(#[$field_meta])* pub $field: $ty,)*
        }

        #[cfg(test)]
        impl $name {
            const FIELDS: &'static [Field] = &[$(Field {
                name: stringify!($field),
                offset: std::mem::offset_of!($name, $field),
                ty: stringify!($ty),
            },)*];
        }
    };
}

params_struct! {
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
}

params_struct! {
    /// Softmax over `rows` rows of `cols` values, in place; row `r` starts at
    /// `offset + r·row_stride`. KEEP IN SYNC with `struct SoftmaxParams` in `softmax.wgsl`.
    pub struct SoftmaxParams {
        pub rows: u32,
        pub cols: u32,
        pub row_stride: u32,
        pub offset: u32,
    }
}

params_struct! {
    /// LayerNorm of `rows` rows of `cols` values. Output row `r` reads input row
    /// `(r / group)·group_stride + r % group` (so the final norm can read only the prefix tokens
    /// of every image) and is written densely. KEEP IN SYNC with `struct LayerNormParams` in
    /// `layer_norm.wgsl`.
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
}

params_struct! {
    /// Patches of `patch`×`patch` pixels out of (batch, channels, height, width) images, as rows
    /// of (channels·patch·patch) values in (channel, y, x) order — a stride-`patch` convolution's
    /// input as a GEMM operand. KEEP IN SYNC with `struct Im2colParams` in `im2col.wgsl`.
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

    /// The members of `struct name { … }` in a WGSL source: (name, type), in order.
    fn wgsl_members(source: &str, file: &str, name: &str) -> Vec<(String, String)> {
        let start = source
            .find(&format!("struct {name} {{"))
            .unwrap_or_else(|| panic!("{file} declares struct {name}"));
        let body = &source[start..];
        let body =
            &body[body.find('{').expect("struct opens") + 1..body.find('}').expect("struct ends")];
        body.lines()
            .map(|line| line.split("//").next().unwrap_or(""))
            .flat_map(|line| line.split(','))
            .map(str::trim)
            .filter(|member| !member.is_empty())
            .map(|member| {
                assert!(
                    !member.starts_with('@'),
                    "{file}: {name}: attributes are not checked: {member}"
                );
                let (field, ty) = member
                    .split_once(':')
                    .unwrap_or_else(|| panic!("{file}: {name}: `{member}` is not `name: type`"));
                (field.trim().to_string(), ty.trim().to_string())
            })
            .collect()
    }

    /// Size and alignment of a WGSL scalar or vector type in a host-shareable struct (WGSL
    /// spec, "Alignment and Size"): vec3 aligns like vec4.
    fn wgsl_size_align(ty: &str) -> (usize, usize) {
        let scalar = |t: &str| match t {
            "u32" | "i32" | "f32" => 4,
            "f16" => 2,
            other => panic!("unsupported WGSL type `{other}`"),
        };
        let vector = |n: usize, s: usize| (n * s, if n == 3 { 4 * s } else { n * s });
        for n in 2..=4 {
            if let Some(inner) = ty
                .strip_prefix(&format!("vec{n}<"))
                .and_then(|t| t.strip_suffix('>'))
            {
                return vector(n, scalar(inner));
            }
            let short = [("f", "f32"), ("u", "u32"), ("i", "i32"), ("h", "f16")];
            for (suffix, scalar_ty) in short {
                if ty == format!("vec{n}{suffix}") {
                    return vector(n, scalar(scalar_ty));
                }
            }
        }
        let s = scalar(ty);
        (s, s)
    }

    /// Byte offsets of each member and the struct's size, by WGSL's layout rules: each member
    /// at the next multiple of its alignment, the size rounded up to the largest alignment.
    fn wgsl_layout(members: &[(String, String)]) -> (Vec<usize>, usize) {
        let (mut offsets, mut end, mut max_align) = (Vec::new(), 0usize, 1usize);
        for (_, ty) in members {
            let (size, align) = wgsl_size_align(ty);
            let offset = end.div_ceil(align) * align;
            offsets.push(offset);
            end = offset + size;
            max_align = max_align.max(align);
        }
        (offsets, end.div_ceil(max_align) * max_align)
    }

    /// Every parameter struct: the same members in the same order, of the same types, at the
    /// same byte offsets in WGSL as in Rust, and the same size, a multiple of 16 (uniform
    /// buffer binding sizes).
    #[test]
    fn wgsl_structs_match() {
        for (file, source, name, fields, size) in [
            (
                "gemm.wgsl",
                include_str!("gemm.wgsl"),
                "GemmParams",
                GemmParams::FIELDS,
                std::mem::size_of::<GemmParams>(),
            ),
            (
                "softmax.wgsl",
                include_str!("softmax.wgsl"),
                "SoftmaxParams",
                SoftmaxParams::FIELDS,
                std::mem::size_of::<SoftmaxParams>(),
            ),
            (
                "layer_norm.wgsl",
                include_str!("layer_norm.wgsl"),
                "LayerNormParams",
                LayerNormParams::FIELDS,
                std::mem::size_of::<LayerNormParams>(),
            ),
            (
                "im2col.wgsl",
                include_str!("im2col.wgsl"),
                "Im2colParams",
                Im2colParams::FIELDS,
                std::mem::size_of::<Im2colParams>(),
            ),
        ] {
            assert_eq!(size % 16, 0, "{name} must be padded to 16 bytes");
            let members = wgsl_members(source, file, name);
            let (offsets, wgsl_size) = wgsl_layout(&members);
            let wgsl: Vec<(&str, &str, usize)> = members
                .iter()
                .zip(&offsets)
                .map(|((field, ty), &offset)| (field.as_str(), ty.as_str(), offset))
                .collect();
            let rust: Vec<(&str, &str, usize)> =
                fields.iter().map(|f| (f.name, f.ty, f.offset)).collect();
            assert_eq!(
                wgsl, rust,
                "{file}: struct {name} (name, type, offset) vs params.rs"
            );
            assert_eq!(wgsl_size, size, "{file}: struct {name} size vs params.rs");
        }
    }

    #[test]
    fn wgsl_layout_rules() {
        let members = |types: &[&str]| -> Vec<(String, String)> {
            types
                .iter()
                .map(|t| ("x".to_string(), t.to_string()))
                .collect()
        };
        assert_eq!(
            wgsl_layout(&members(&["u32", "vec3<f32>", "f32"])),
            (vec![0, 16, 28], 32)
        );
        assert_eq!(
            wgsl_layout(&members(&["f32", "vec2f", "u32"])),
            (vec![0, 8, 16], 24)
        );
        let parsed = wgsl_members("struct P {\n a: u32, // first\n b: vec4<f32>,\n}", "t", "P");
        assert_eq!(parsed[1], ("b".to_string(), "vec4<f32>".to_string()));
    }
}
