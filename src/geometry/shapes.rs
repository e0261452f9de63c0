//! [`Geometry`]: the shapes of one forward pass, and the checks of its input.

use crate::checkpoint::{Activation, Classifier, ModelConfig};

/// Why an input (or a batch's results) does not fit the model. Each message says what was
/// expected.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum GeometryError {
    #[error("the batch is empty")]
    EmptyBatch,
    #[error("a {height}×{width} input is smaller than one {patch}×{patch} patch")]
    SmallerThanPatch {
        height: usize,
        width: usize,
        patch: usize,
    },
    #[error("the input has {got} channels but the model expects {expected}")]
    Channels { got: usize, expected: usize },
    #[error(
        "the input holds {got} pixel values but {batch}×{channels}×{height}×{width} = {} are \
         expected; give the pixels as (batch, channels, height, width), channel-major",
        expected.map_or_else(|| "too many".to_string(), |n| n.to_string())
    )]
    PixelCount {
        batch: usize,
        channels: usize,
        height: usize,
        width: usize,
        /// None when the count overflows.
        expected: Option<usize>,
        got: usize,
    },
    #[error("the {what} of a batch of {batch} hold {got} values, expected {expected}")]
    Results {
        what: &'static str,
        batch: usize,
        got: usize,
        expected: usize,
    },
}

/// The shapes of one forward pass of `batch` images of `height`×`width` pixels.
#[derive(Clone, Debug, PartialEq)]
pub struct Geometry {
    pub batch: usize,
    pub channels: usize,
    /// Input size in pixels; the pixels past the last whole patch are not read.
    pub height: usize,
    pub width: usize,
    pub patch: usize,
    /// Patch grid (rows, cols).
    pub grid: (usize, usize),
    /// CLS, and the distillation token if any, before the patches.
    pub prefix: usize,
    /// prefix + rows·cols
    pub tokens: usize,
    pub hidden: usize,
    pub heads: usize,
    pub head_dim: usize,
    /// Width of the MLP's hidden layer.
    pub mlp: usize,
    pub layers: usize,
    pub classes: usize,
    /// channels · patch · patch: the values of one flattened patch.
    pub patch_in: usize,
    /// Two heads (CLS and distillation) whose logits are averaged.
    pub distilled: bool,
    pub activation: Activation,
    pub layer_norm_eps: f32,
}

impl Geometry {
    /// Checks the request (not the pixels: see [`Geometry::check_pixels`]) and derives the
    /// shapes: the batch must not be empty and the input must hold at least one patch.
    pub fn new(
        cfg: &ModelConfig,
        batch: usize,
        height: usize,
        width: usize,
    ) -> Result<Self, GeometryError> {
        let patch = cfg.patch_size;
        if batch == 0 {
            return Err(GeometryError::EmptyBatch);
        }
        let grid = (height / patch.max(1), width / patch.max(1));
        if patch == 0 || grid.0 == 0 || grid.1 == 0 {
            return Err(GeometryError::SmallerThanPatch {
                height,
                width,
                patch,
            });
        }
        let prefix = cfg.prefix_tokens();
        Ok(Self {
            batch,
            channels: cfg.num_channels,
            height,
            width,
            patch,
            grid,
            prefix,
            tokens: prefix + grid.0 * grid.1,
            hidden: cfg.hidden_size,
            heads: cfg.num_heads,
            head_dim: cfg.head_dim(),
            mlp: cfg.intermediate_size,
            layers: cfg.num_layers,
            classes: cfg.num_classes,
            patch_in: cfg.num_channels * patch * patch,
            distilled: cfg.classifier == Classifier::ClsAndDistillation,
            activation: cfg.activation,
            layer_norm_eps: cfg.layer_norm_eps as f32,
        })
    }

    /// [`Geometry::new`] for an input of shape (batch, channels, height, width), whose channel
    /// count must be the model's.
    pub fn of_input(
        cfg: &ModelConfig,
        [batch, channels, height, width]: [usize; 4],
    ) -> Result<Self, GeometryError> {
        if channels != cfg.num_channels {
            return Err(GeometryError::Channels {
                got: channels,
                expected: cfg.num_channels,
            });
        }
        Self::new(cfg, batch, height, width)
    }

    /// Patches per image: rows · cols.
    pub fn patches(&self) -> usize {
        self.grid.0 * self.grid.1
    }

    /// Pixel values an input of this geometry has, None if that overflows.
    pub fn pixel_count(&self) -> Option<usize> {
        self.batch
            .checked_mul(self.channels)?
            .checked_mul(self.height)?
            .checked_mul(self.width)
    }

    /// Checks that an input holds exactly (batch, channels, height, width) values.
    pub fn check_pixels(&self, values: usize) -> Result<(), GeometryError> {
        let expected = self.pixel_count();
        if expected == Some(values) {
            return Ok(());
        }
        Err(GeometryError::PixelCount {
            batch: self.batch,
            channels: self.channels,
            height: self.height,
            width: self.width,
            expected,
            got: values,
        })
    }

    /// Values of one image's attention in one layer: heads · tokens · tokens.
    pub fn attention_len(&self) -> usize {
        self.heads * self.tokens * self.tokens
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// DeiT-Ti's geometry (facebook/deit-tiny-patch16-224), for unit tests.
    pub(crate) fn deit_tiny() -> ModelConfig {
        ModelConfig {
            hidden_size: 192,
            num_layers: 12,
            num_heads: 3,
            intermediate_size: 768,
            image_size: 224,
            patch_size: 16,
            num_channels: 3,
            num_classes: 1000,
            qkv_bias: true,
            layer_norm_eps: 1e-12,
            activation: Activation::GeluErf,
            distillation_token: false,
            classifier: Classifier::Cls,
        }
    }

    #[test]
    fn geometry_of_deit_tiny() {
        let g = Geometry::new(&deit_tiny(), 2, 230, 224).expect("valid");
        assert_eq!(g.grid, (14, 14));
        assert_eq!(g.tokens, 197);
        assert_eq!(g.patch_in, 768);
        assert_eq!(g.pixel_count(), Some(2 * 3 * 230 * 224));
        assert_eq!(g.attention_len(), 3 * 197 * 197);
        g.check_pixels(2 * 3 * 230 * 224).expect("exact count");
    }

    #[test]
    fn bad_inputs_say_what_was_expected() {
        let cfg = deit_tiny();
        assert_eq!(
            Geometry::new(&cfg, 0, 224, 224),
            Err(GeometryError::EmptyBatch)
        );
        let small = Geometry::new(&cfg, 1, 15, 224).expect_err("smaller than a patch");
        assert!(small.to_string().contains("smaller than one 16×16 patch"));
        let channels = Geometry::of_input(&cfg, [1, 1, 224, 224]).expect_err("gray");
        assert!(channels.to_string().contains("1 channels"));
        let g = Geometry::new(&cfg, 1, 224, 224).expect("valid");
        let short = g.check_pixels(10).expect_err("short");
        assert!(
            short.to_string().contains("holds 10 pixel values"),
            "{short}"
        );
        let huge = Geometry::new(&cfg, usize::MAX, 224, 224).expect("shapes only");
        assert!(huge
            .check_pixels(1)
            .expect_err("overflow")
            .to_string()
            .contains("too many"));
    }
}
