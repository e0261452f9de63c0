//! How much one inference and one checkpoint may ask of the machine, checked before anything is
//! allocated: a request over a limit is refused with the numbers and what to do, never met with
//! an abort or a frozen tab.
//!
//! A forward pass keeps every layer's attention probabilities for rollout, so its memory grows
//! with `batch × layers × heads × tokens² × 4` bytes. The limits, per target:
//!
//! | limit | native | wasm32 | why |
//! |---|---|---|---|
//! | tokens per image | 4,098 | 2,048 | a 64×64 patch grid (1024 px at 16 px patches) plus CLS and distillation tokens natively; 45×45 + 2 = 2,027 (720 px) in the browser |
//! | attention bytes (all layers) | 4 GiB | 512 MiB | DeiT-Ti at 1024 px keeps 12·3·4,098²·4 B = 2.4 GB; ViT-B at 384 px keeps 12·12·577²·4 B = 192 MB; DeiT-Ti at 224 px 5.6 MB |
//! | activation bytes | 4 GiB | 512 MiB | input, residual stream, q/k/v and MLP hidden of the whole batch |
//! | weight bytes (as f32) | 4 GiB | 1 GiB | ViT-H/14 (632 M parameters, 2.5 GB) natively, ViT-B (86 M, 344 MB) in the browser |
//! | input pixels per image | 16,777,216 | 4,194,304 | 4096² natively, 2048² in the browser: 201 MB and 50 MB of f32 per image |
//!
//! wasm32 has 4 GiB of address space at most and browsers often grant 2 GiB; the weights, the
//! file they came from, the attention (copied once more to the page) and the activations share
//! it, hence the lower wasm32 limits. Native limits leave room for the same on a laptop.
//!
//! All sizes are computed in `u64` with saturating arithmetic, so that a hostile size can only
//! ever make a number larger, never wrap around into a small one; on wasm32 `usize` is 32 bits.

/// The limits of one target; [`LIMITS`] holds the ones of the target this was built for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Tokens per image (patches plus CLS and distillation tokens).
    pub max_tokens: u64,
    /// Bytes of attention probabilities kept for a whole batch, all layers.
    pub max_attention_bytes: u64,
    /// Bytes of activations a batch needs at once.
    pub max_activation_bytes: u64,
    /// Bytes of the weights, widened to f32.
    pub max_weight_bytes: u64,
    /// Pixels (height × width) of one model input.
    pub max_input_pixels: u64,
    /// Where these limits apply, for messages ("natively", "in the browser").
    pub platform: &'static str,
}

const GIB: u64 = 1 << 30;
const MIB: u64 = 1 << 20;

impl Limits {
    /// Native builds (CLI, tests).
    pub const NATIVE: Limits = Limits {
        max_tokens: 64 * 64 + 2,
        max_attention_bytes: 4 * GIB,
        max_activation_bytes: 4 * GIB,
        max_weight_bytes: 4 * GIB,
        max_input_pixels: 4096 * 4096,
        platform: "natively",
    };

    /// `wasm32` builds (the web app's worker).
    pub const WASM32: Limits = Limits {
        max_tokens: 2048,
        max_attention_bytes: 512 * MIB,
        max_activation_bytes: 512 * MIB,
        max_weight_bytes: GIB,
        max_input_pixels: 2048 * 2048,
        platform: "in the browser (wasm32)",
    };
}

/// The limits of the target this crate was built for.
#[cfg(not(target_arch = "wasm32"))]
pub const LIMITS: Limits = Limits::NATIVE;
/// The limits of the target this crate was built for.
#[cfg(target_arch = "wasm32")]
pub const LIMITS: Limits = Limits::WASM32;

/// What the budget needs to know of a model: its sizes, in `u64` (not [`crate::geometry::Geometry`], which is one input's shapes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ModelSize {
    pub layers: u64,
    pub heads: u64,
    pub hidden: u64,
    pub intermediate: u64,
    pub patch: u64,
    pub channels: u64,
    /// CLS, plus the distillation token where there is one.
    pub prefix_tokens: u64,
    pub classes: u64,
    /// Classifier heads (2 for distilled DeiT).
    pub heads_out: u64,
}

impl ModelSize {
    /// Parameters at `tokens` position embeddings (every weight and bias).
    pub fn parameters(&self, tokens: u64) -> u64 {
        let (d, m) = (self.hidden, self.intermediate);
        let patch_in = mul(&[self.channels, self.patch, self.patch]);
        let per_layer = mul(&[4, d]) // two norms
            .saturating_add(mul(&[3, d, d]).saturating_add(mul(&[3, d]))) // qkv
            .saturating_add(mul(&[d, d]).saturating_add(d)) // proj
            .saturating_add(mul(&[m, d]).saturating_add(m)) // fc1
            .saturating_add(mul(&[d, m]).saturating_add(d)); // fc2
        mul(&[patch_in, d])
            .saturating_add(d)
            .saturating_add(mul(&[self.prefix_tokens, d]))
            .saturating_add(mul(&[tokens, d]))
            .saturating_add(mul(&[self.layers, per_layer]))
            .saturating_add(mul(&[2, d]))
            .saturating_add(mul(&[
                self.heads_out,
                self.classes.saturating_mul(d).saturating_add(self.classes),
            ]))
    }
}

/// The memory one request needs, in bytes (saturating: `u64::MAX` means "more than any").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Usage {
    /// Tokens per image.
    pub tokens: u64,
    /// Attention probabilities of every layer, whole batch.
    pub attention_bytes: u64,
    /// Input, residual stream, q/k/v and MLP hidden, whole batch.
    pub activation_bytes: u64,
}

/// A product of sizes, saturating at `u64::MAX`.
fn mul(factors: &[u64]) -> u64 {
    factors.iter().fold(1u64, |acc, &f| acc.saturating_mul(f))
}

/// What a `batch` of `height`×`width` inputs needs (no limits applied).
pub fn usage(model: &ModelSize, batch: u64, height: u64, width: u64) -> Usage {
    let patch = model.patch.max(1);
    let patches = (height / patch).saturating_mul(width / patch);
    let tokens = patches.saturating_add(model.prefix_tokens);
    let attention_bytes = mul(&[batch, model.layers, model.heads, tokens, tokens, 4]);
    // Per token: residual + normed (2d), q/k/v (3d), attention output (d), MLP hidden (m).
    let per_token = mul(&[6, model.hidden]).saturating_add(model.intermediate);
    let activation_bytes = mul(&[batch, model.channels, height, width, 4])
        .saturating_add(mul(&[batch, tokens, per_token, 4]));
    Usage {
        tokens,
        attention_bytes,
        activation_bytes,
    }
}

/// Which limit a request or a model is over.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Exceeded {
    #[error("a batch of 0 images has nothing to run")]
    EmptyBatch,
    #[error(
        "an input of {height}×{width} px is smaller than one {patch} px patch, so it makes no tokens"
    )]
    NoPatches { height: u64, width: u64, patch: u64 },
    #[error(
        "an input of {height}×{width} px is {} pixels, more than the {} vit-lens takes {platform}",
        thousands(*pixels),
        thousands(*limit)
    )]
    Pixels {
        height: u64,
        width: u64,
        pixels: u64,
        limit: u64,
        platform: &'static str,
    },
    #[error(
        "an input of {height}×{width} px with {patch} px patches makes {} tokens and its attention \
         would need {}, while vit-lens runs up to {} tokens {platform}",
        thousands(*tokens),
        format_bytes(*attention_bytes),
        thousands(*limit)
    )]
    Tokens {
        height: u64,
        width: u64,
        patch: u64,
        tokens: u64,
        attention_bytes: u64,
        limit: u64,
        platform: &'static str,
    },
    #[error(
        "{} at {height}×{width} px makes {} tokens per image, and keeping the attention of \
         {layers} layers × {heads} heads needs {}, more than the {} vit-lens allows {platform}",
        images(*batch),
        thousands(*tokens),
        format_bytes(*bytes),
        format_bytes(*limit)
    )]
    Attention {
        batch: u64,
        height: u64,
        width: u64,
        tokens: u64,
        layers: u64,
        heads: u64,
        bytes: u64,
        limit: u64,
        platform: &'static str,
    },
    #[error(
        "{} at {height}×{width} px needs {} of activations, more than the {} vit-lens allows {platform}",
        images(*batch),
        format_bytes(*bytes),
        format_bytes(*limit)
    )]
    Activations {
        batch: u64,
        height: u64,
        width: u64,
        bytes: u64,
        limit: u64,
        platform: &'static str,
    },
    #[error(
        "the model has {} weights ({} as f32), more than the {} vit-lens loads {platform}",
        thousands(*values),
        format_bytes(*bytes),
        format_bytes(*limit)
    )]
    Weights {
        values: u64,
        bytes: u64,
        limit: u64,
        platform: &'static str,
    },
}

/// A request or a model over the [`Limits`]: which limit, by how much, and what to do.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{exceeded}; {advice}")]
pub struct BudgetError {
    pub exceeded: Exceeded,
    /// What to do, e.g. "use a smaller input size or batch".
    pub advice: String,
}

impl BudgetError {
    fn new(exceeded: Exceeded) -> Self {
        let advice = match exceeded {
            Exceeded::EmptyBatch => "give at least one image",
            Exceeded::NoPatches { .. } => "use an input at least one patch wide and tall",
            Exceeded::Weights { .. } => "use a smaller model",
            _ => "use a smaller input size or a smaller batch",
        };
        Self {
            exceeded,
            advice: advice.to_string(),
        }
    }

    /// The same error with other advice (the caller knows where the size came from).
    pub fn advise(mut self, advice: impl Into<String>) -> Self {
        self.advice = advice.into();
        self
    }
}

impl Limits {
    /// Checks a `batch` of `height`×`width` inputs of `model` against these
    /// limits; returns what it needs.
    pub fn check_input(
        &self,
        model: &ModelSize,
        batch: u64,
        height: u64,
        width: u64,
    ) -> Result<Usage, BudgetError> {
        let fail = |exceeded| Err(BudgetError::new(exceeded));
        if batch == 0 {
            return fail(Exceeded::EmptyBatch);
        }
        let patch = model.patch.max(1);
        if height < patch || width < patch {
            return fail(Exceeded::NoPatches {
                height,
                width,
                patch,
            });
        }
        let need = usage(model, batch, height, width);
        if need.tokens > self.max_tokens {
            return fail(Exceeded::Tokens {
                height,
                width,
                patch,
                tokens: need.tokens,
                attention_bytes: usage(model, 1, height, width).attention_bytes,
                limit: self.max_tokens,
                platform: self.platform,
            });
        }
        let pixels = height.saturating_mul(width);
        if pixels > self.max_input_pixels {
            return fail(Exceeded::Pixels {
                height,
                width,
                pixels,
                limit: self.max_input_pixels,
                platform: self.platform,
            });
        }
        if need.attention_bytes > self.max_attention_bytes {
            return fail(Exceeded::Attention {
                batch,
                height,
                width,
                tokens: need.tokens,
                layers: model.layers,
                heads: model.heads,
                bytes: need.attention_bytes,
                limit: self.max_attention_bytes,
                platform: self.platform,
            });
        }
        if need.activation_bytes > self.max_activation_bytes {
            return fail(Exceeded::Activations {
                batch,
                height,
                width,
                bytes: need.activation_bytes,
                limit: self.max_activation_bytes,
                platform: self.platform,
            });
        }
        Ok(need)
    }

    /// Checks that `values` weights, widened to f32, fit these limits.
    pub fn check_weights(&self, values: u64) -> Result<(), BudgetError> {
        let bytes = values.saturating_mul(4);
        if bytes > self.max_weight_bytes {
            return Err(BudgetError::new(Exceeded::Weights {
                values,
                bytes,
                limit: self.max_weight_bytes,
                platform: self.platform,
            }));
        }
        Ok(())
    }
}

/// [`Limits::check_input`] with this target's [`LIMITS`]: what the engine calls before it
/// runs a `batch` of `height`×`width` inputs.
pub fn check_input(
    model: &ModelSize,
    batch: usize,
    height: usize,
    width: usize,
) -> Result<Usage, BudgetError> {
    LIMITS.check_input(model, widen(batch), widen(height), widen(width))
}

/// [`Limits::check_weights`] with this target's [`LIMITS`].
pub fn check_weights(values: u64) -> Result<(), BudgetError> {
    LIMITS.check_weights(values)
}

/// `usize` → `u64`, which never loses anything on the targets vit-lens builds for.
pub fn widen(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

/// "1 image" / "a batch of 8 images".
fn images(batch: u64) -> String {
    if batch == 1 {
        "1 image".to_string()
    } else {
        format!("a batch of {} images", thousands(batch))
    }
}

/// A number for a message: plain where it reads well (`0.5`, `-1`, `1e-12`), in scientific
/// notation where it would be a wall of digits (`1e300`, `1e-60`).
pub fn format_number(value: f64) -> String {
    let magnitude = value.abs();
    if value.is_finite() && magnitude != 0.0 && !(1e-4..1e6).contains(&magnitude) {
        format!("{value:e}")
    } else {
        format!("{value}")
    }
}

/// `1048576` → `"1,048,576"`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Decimal byte counts: "812 B", "5.6 MB", "4.4 TB".
pub fn format_bytes(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["kB", "MB", "GB", "TB", "PB", "EB"];
    if bytes < 1000 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1000.0;
    let mut unit = 0;
    while value >= 999.95 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// DeiT-Ti: 12 layers, 3 heads, width 192, MLP 768, 16 px patches, 1000 classes.
    const DEIT_TI: ModelSize = ModelSize {
        layers: 12,
        heads: 3,
        hidden: 192,
        intermediate: 768,
        patch: 16,
        channels: 3,
        prefix_tokens: 1,
        classes: 1000,
        heads_out: 1,
    };

    #[test]
    fn deit_tiny_counts_as_published() {
        // 5,717,416 parameters at 197 tokens (DESIGN.md).
        assert_eq!(DEIT_TI.parameters(197), 5_717_416);
        let need = usage(&DEIT_TI, 1, 224, 224);
        assert_eq!(need.tokens, 197);
        assert_eq!(need.attention_bytes, 12 * 3 * 197 * 197 * 4);
    }

    #[test]
    fn real_models_fit_on_both_targets() {
        for limits in [Limits::NATIVE, Limits::WASM32] {
            limits.check_input(&DEIT_TI, 1, 224, 224).unwrap();
            limits.check_input(&DEIT_TI, 8, 384, 384).unwrap();
            limits.check_weights(DEIT_TI.parameters(197)).unwrap();
        }
        Limits::NATIVE.check_input(&DEIT_TI, 1, 1024, 1024).unwrap();
    }

    #[test]
    fn hostile_requests_are_refused_with_numbers() {
        let err = Limits::NATIVE
            .check_input(&DEIT_TI, 1, 16384, 16384)
            .unwrap_err();
        assert!(matches!(err.exceeded, Exceeded::Tokens { .. }), "{err}");
        let err = Limits::NATIVE
            .check_input(
                &ModelSize {
                    patch: 1024,
                    ..DEIT_TI
                },
                1,
                65536,
                65536,
            )
            .unwrap_err();
        assert!(matches!(err.exceeded, Exceeded::Pixels { .. }), "{err}");
        let err = Limits::NATIVE
            .check_input(
                &ModelSize {
                    patch: 1,
                    ..DEIT_TI
                },
                1,
                4096,
                4096,
            )
            .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("16,777,217 tokens"), "{text}");
        assert!(text.contains("4,098 tokens natively"), "{text}");
        let err = Limits::NATIVE
            .check_input(&DEIT_TI, u64::MAX, 224, 224)
            .unwrap_err();
        assert!(matches!(err.exceeded, Exceeded::Attention { .. }), "{err}");
        assert!(Limits::NATIVE.check_input(&DEIT_TI, 0, 224, 224).is_err());
        assert!(Limits::NATIVE.check_input(&DEIT_TI, 1, 8, 224).is_err());
        assert!(Limits::WASM32.check_weights(u64::MAX).is_err());
    }

    #[test]
    fn numbers_read_well() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_048_576), "1,048,576");
        assert_eq!(format_bytes(812), "812 B");
        assert_eq!(format_bytes(5_587_344), "5.6 MB");
        assert_eq!(format_bytes(4_398_046_511_104), "4.4 TB");
        assert_eq!(format_bytes(u64::MAX), "18.4 EB");
        assert_eq!(format_number(1e300), "1e300");
        assert_eq!(format_number(1e-60), "1e-60");
        assert_eq!(format_number(-1.0), "-1");
        assert_eq!(format_number(0.5), "0.5");
    }
}
