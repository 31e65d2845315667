//! What one forward pass takes ([`DitInputs`], with its RoPE as [`RopeInput`]) and the checks
//! made on it against the config before any weight is touched.

use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor};

use crate::config::DitConfig;
use crate::error::DitError;
use crate::layers::ADDITION_T_CLASSES;
use crate::rope::{ImageShape, Rope};

/// Where the RoPE tables of a forward pass come from.
#[derive(Debug, Clone, Copy)]
pub enum RopeInput<'a, B: Backend> {
    /// The images of one sample in sequence order (see
    /// [`QwenImageTransformer::rope`](crate::QwenImageTransformer::rope)): the forward pass builds
    /// the tables itself. Convenient for one-off calls.
    Shapes(&'a [ImageShape]),
    /// Tables built once with [`QwenImageTransformer::rope`](crate::QwenImageTransformer::rope)
    /// for these image shapes and text length: what a denoising loop passes at every step.
    Table(&'a Rope<B>),
}

impl<'a, B: Backend> From<&'a Rope<B>> for RopeInput<'a, B> {
    fn from(rope: &'a Rope<B>) -> Self {
        Self::Table(rope)
    }
}

impl<'a, B: Backend> From<&'a [ImageShape]> for RopeInput<'a, B> {
    fn from(shapes: &'a [ImageShape]) -> Self {
        Self::Shapes(shapes)
    }
}

impl<'a, B: Backend, const N: usize> From<&'a [ImageShape; N]> for RopeInput<'a, B> {
    fn from(shapes: &'a [ImageShape; N]) -> Self {
        Self::Shapes(shapes)
    }
}

impl<'a, B: Backend> From<&'a Vec<ImageShape>> for RopeInput<'a, B> {
    fn from(shapes: &'a Vec<ImageShape>) -> Self {
        Self::Shapes(shapes)
    }
}

/// The inputs of [`QwenImageTransformer::forward`](crate::QwenImageTransformer::forward):
/// [`DitInputs::new`] with the four that every call has, then the optional ones.
///
/// ```no_run
/// # use burn::backend::Flex;
/// # use burn::tensor::{Int, Tensor};
/// # use qwen_image_dit::{DitInputs, ImageShape, QwenImageTransformer};
/// # let dev = Default::default();
/// # let model = QwenImageTransformer::<Flex>::load("testdata/dit-variants/layered", &dev)?;
/// # let c = model.config().clone();
/// # let latents = Tensor::<Flex, 3>::zeros([1, 4 * 15, c.in_channels], &dev);
/// # let text = Tensor::<Flex, 3>::zeros([1, 7, c.joint_attention_dim], &dev);
/// # let t = Tensor::<Flex, 1>::from_floats([0.5], &dev);
/// let shapes = vec![ImageShape::new(1, 3, 5); 4];
/// let inputs = DitInputs::new(latents, text, t, &shapes)
///     .encoder_mask(None)
///     .additional_t_cond(Some(Tensor::<Flex, 1, Int>::zeros([1], &dev)));
/// let v = model.forward(inputs)?;
/// # Ok::<(), qwen_image_dit::DitError>(())
/// ```
#[derive(Debug, Clone)]
pub struct DitInputs<'a, B: Backend> {
    /// `[B, N, in_channels]`: packed latents (Edit / Layered: the noisy tokens followed by the
    /// condition images' tokens, in the RoPE's image order).
    pub hidden_states: Tensor<B, 3>,
    /// `[B, L, joint_attention_dim]`: text embeddings.
    pub encoder_hidden_states: Tensor<B, 3>,
    /// `[B, L]`: 1 = real token, 0 = padding (any other value is refused, see
    /// [`check_encoder_mask_values`]). Padded text keys get exactly zero attention weight for
    /// every head and query (the diffusers ≥ 0.37 / SGLang alignment fix). `None` or all ones
    /// means no mask.
    pub encoder_mask: Option<Tensor<B, 2, Int>>,
    /// `[B]`: the scheduler's timestep divided by 1000 (the model multiplies by 1000 again inside
    /// the sinusoid).
    pub timestep: Tensor<B, 1>,
    /// `[B]`: the Layered variant's `addition_t_embedding` class per sample (the Layered pipeline
    /// passes 0 = RGB). Required when the config has `use_additional_t_cond`, refused otherwise.
    pub additional_t_cond: Option<Tensor<B, 1, Int>>,
    /// The RoPE tables, or the image shapes to build them from.
    pub rope: RopeInput<'a, B>,
}

impl<'a, B: Backend> DitInputs<'a, B> {
    /// Inputs without a text mask or `additional_t_cond`.
    pub fn new(
        hidden_states: Tensor<B, 3>,
        encoder_hidden_states: Tensor<B, 3>,
        timestep: Tensor<B, 1>,
        rope: impl Into<RopeInput<'a, B>>,
    ) -> Self {
        Self {
            hidden_states,
            encoder_hidden_states,
            encoder_mask: None,
            timestep,
            additional_t_cond: None,
            rope: rope.into(),
        }
    }

    /// Set (or clear) the text mask `[B, L]`.
    pub fn encoder_mask(mut self, mask: Option<Tensor<B, 2, Int>>) -> Self {
        self.encoder_mask = mask;
        self
    }

    /// Set (or clear) the Layered `additional_t_cond` `[B]`.
    pub fn additional_t_cond(mut self, classes: Option<Tensor<B, 1, Int>>) -> Self {
        self.additional_t_cond = classes;
        self
    }

    /// Every check of [`DitConfig::check_inputs`], [`check_encoder_mask_values`] and
    /// [`DitConfig::check_additional_t_cond`] for these inputs with these tables (the mask and
    /// the class values are read back from the device: `B·L` and `B` integers). Returns whether
    /// the mask pads anything (a mask without a 0 changes nothing).
    pub(crate) fn check(&self, config: &DitConfig, rope: &Rope<B>) -> Result<bool, DitError> {
        config.check_inputs(
            self.hidden_states.dims(),
            self.encoder_hidden_states.dims(),
            self.encoder_mask.as_ref().map(|m| m.dims()),
            self.timestep.dims(),
            rope,
        )?;
        let padded = match &self.encoder_mask {
            Some(m) => {
                let values = read_ints(m.clone(), "encoder_hidden_states_mask")?;
                check_encoder_mask_values(&values)?;
                values.contains(&0)
            }
            None => false,
        };
        let classes = match &self.additional_t_cond {
            Some(c) => Some(read_ints(c.clone(), "additional_t_cond")?),
            None => None,
        };
        config.check_additional_t_cond(classes.as_deref(), self.timestep.dims()[0])?;
        Ok(padded)
    }
}

/// An integer tensor's values, read back from the device.
fn read_ints<B: Backend, const D: usize>(
    t: Tensor<B, D, Int>,
    name: &str,
) -> Result<Vec<i64>, DitError> {
    t.into_data()
        .convert::<i64>()
        .to_vec::<i64>()
        .map_err(|e| DitError::Input(format!("reading `{name}`: {e:?}")))
}

/// The text mask's values must be 1 (real token) or 0 (padding), as the pipelines make it. A
/// caller holding the values as `i64` (say, read from a file) checks them here before making a
/// tensor: a value that does not fit the backend's integer type cannot even become one.
pub fn check_encoder_mask_values(values: &[i64]) -> Result<(), DitError> {
    match values.iter().position(|&v| v != 0 && v != 1) {
        Some(i) => Err(DitError::Input(format!(
            "encoder_hidden_states_mask value {} at flat index {i} is not 0 (padding) or 1 (token)",
            values[i]
        ))),
        None => Ok(()),
    }
}

impl DitConfig {
    /// Validate the shapes of a forward call against this config, each other and `rope`, before
    /// any weight is loaded: at least one sample, one image token and one text token.
    pub fn check_inputs<B: Backend>(
        &self,
        hidden: [usize; 3],
        encoder: [usize; 3],
        mask: Option<[usize; 2]>,
        timestep: [usize; 1],
        rope: &Rope<B>,
    ) -> Result<(), DitError> {
        let [b, n, c_in] = hidden;
        let err = |m: String| Err(DitError::Input(m));
        if b == 0 {
            return err(format!(
                "hidden_states {hidden:?}: the batch is empty (at least one sample is needed)"
            ));
        }
        if c_in != self.in_channels {
            return err(format!(
                "hidden_states {hidden:?}: last dim must be in_channels = {}",
                self.in_channels
            ));
        }
        if n != rope.num_img_tokens() {
            return err(format!(
                "hidden_states {hidden:?} has {n} tokens but img_shapes give {}",
                rope.num_img_tokens()
            ));
        }
        if encoder[1] == 0 {
            // Upstream's prompts always keep at least one token; an empty text axis would reach
            // the attention as a zero-length tensor.
            return err(format!(
                "encoder_hidden_states {encoder:?} has text length 0: at least one text token is \
                 needed"
            ));
        }
        if encoder[0] != b || encoder[2] != self.joint_attention_dim {
            return err(format!(
                "encoder_hidden_states {encoder:?} must be [{b}, L, {}]",
                self.joint_attention_dim
            ));
        }
        if encoder[1] != rope.txt_len() {
            return err(format!(
                "encoder_hidden_states has {} tokens but the RoPE tables were built for {}",
                encoder[1],
                rope.txt_len()
            ));
        }
        if let Some(m) = mask
            && m != [b, encoder[1]]
        {
            return err(format!(
                "encoder_hidden_states_mask {m:?} must be [{b}, {}]",
                encoder[1]
            ));
        }
        if timestep != [b] {
            return err(format!("timestep {timestep:?} must be [{b}]"));
        }
        Ok(())
    }

    /// The Layered variant's `additional_t_cond` (one class per sample, `batch` samples): required
    /// when `use_additional_t_cond`, refused otherwise (upstream ignores it there, which would
    /// hide a mismatched model/input pair), and each class must index `addition_t_embedding`'s
    /// two rows.
    pub fn check_additional_t_cond(
        &self,
        classes: Option<&[i64]>,
        batch: usize,
    ) -> Result<(), DitError> {
        let err = |m: String| Err(DitError::Input(m));
        match (self.use_additional_t_cond, classes) {
            (false, None) => Ok(()),
            (false, Some(_)) => err(
                "`additional_t_cond` given, but this model has no addition_t_embedding \
                 (`use_additional_t_cond` is false)"
                    .into(),
            ),
            (true, None) => err(
                "this model (`use_additional_t_cond` = true, Layered) needs `additional_t_cond` [B] \
                 (0 = RGB, what the Layered pipeline passes)"
                    .into(),
            ),
            (true, Some(c)) if c.len() != batch => err(format!(
                "`additional_t_cond` has {} entries, expected one per sample ({batch})",
                c.len()
            )),
            (true, Some(c)) => match c.iter().find(|&&v| !(0..ADDITION_T_CLASSES as i64).contains(&v)) {
                Some(v) => err(format!(
                    "`additional_t_cond` value {v} is not a class of addition_t_embedding (0..{ADDITION_T_CLASSES})"
                )),
                None => Ok(()),
            },
        }
    }
}
