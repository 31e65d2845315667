//! True classifier-free guidance with the per-token norm rescale and the scale fallback.
//!
//! Qwen-Image's "true CFG" (diffusers `QwenImagePipeline`, upstream SGLang) runs the DiT twice per
//! step — on the prompt (cond) and on the negative prompt (uncond) — and combines the two velocities:
//!
//! ```text
//! comb = uncond + s · (cond − uncond)
//! out  = comb · ‖cond‖ / max(‖comb‖, 1e-12)      norms over the last (packed-channel) dim, per token
//! ```
//!
//! The rescale keeps each token's velocity at the conditional prediction's length, so large scales
//! change direction, not magnitude. The 1e-12 floor is SGLang's; diffusers has none and returns
//! NaN for an all-zero token, which otherwise can only differ below f32 resolution.
//!
//! [`Guidance::from_settings`] decides whether CFG runs at all (as diffusers: scale > 1 *and* a
//! negative prompt), so the pipeline can skip the uncond pass with [`Guidance::is_enabled`].
//!
//! Qwen-Image-Layered makes the rescale optional (`cfg_normalize`: off by default in diffusers'
//! `QwenImageLayeredPipeline`, on in SGLang's Layered sampling defaults);
//! [`Guidance::with_norm_rescale`]`(false)` gives [`Guidance::TrueCfgPlain`], which returns `comb`
//! as is.
//!
//! ```
//! use burn::backend::Flex;
//! use burn::tensor::Tensor;
//! use cfg::Guidance;
//!
//! let device = Default::default();
//! let cond = Tensor::<Flex, 3>::from_floats([[[3.0, 4.0]]], &device);
//! let uncond = Tensor::<Flex, 3>::from_floats([[[1.0, 0.0]]], &device);
//!
//! let guidance = Guidance::from_settings(Some(4.0), None, true)?;
//! assert!(guidance.is_enabled());
//! let out = guidance.combine(cond, Some(uncond))?; // comb = [9, 16], rescaled to ‖cond‖ = 5
//! let v = out.into_data().to_vec::<f32>().unwrap();
//! assert!((v[0] * v[0] + v[1] * v[1] - 25.0).abs() < 1e-4);
//! # Ok::<(), cfg::CfgError>(())
//! ```

use burn::tensor::{ElementConversion, Tensor, backend::Backend};

/// The floor on ‖comb‖ before dividing (upstream SGLang's clamp).
pub const NORM_EPS: f64 = 1e-12;

/// Whether and how to guide. Build it with [`Guidance::from_settings`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Guidance {
    /// No CFG: one DiT pass, its prediction is used as is.
    Off,
    /// True CFG with this scale (> 1 when built by [`Guidance::from_settings`]), rescaled to the
    /// conditional prediction's per-token norm.
    TrueCfg {
        /// The guidance scale `s`.
        scale: f32,
    },
    /// True CFG without the norm rescale: `uncond + s · (cond − uncond)` as is (diffusers'
    /// `QwenImageLayeredPipeline` with `cfg_normalize=False`, its default).
    TrueCfgPlain {
        /// The guidance scale `s`.
        scale: f32,
    },
}

/// Everything that can go wrong in this crate.
#[derive(Debug, thiserror::Error)]
pub enum CfgError {
    /// A scale setting is NaN or infinite.
    #[error("`{setting}` is {value}: a guidance scale must be a finite number")]
    InvalidScale {
        /// `true_cfg_scale` or `guidance_scale`.
        setting: &'static str,
        /// The value given.
        value: f32,
    },
    /// CFG is on but no unconditional prediction was passed.
    #[error("true CFG (scale {scale}) needs the unconditional prediction, but none was given")]
    MissingUncond {
        /// The scale in use.
        scale: f32,
    },
    /// cond and uncond have different shapes.
    #[error(
        "the cond prediction has shape {cond:?} but the uncond prediction has shape {uncond:?}"
    )]
    ShapeMismatch {
        /// Shape of `cond`.
        cond: Vec<usize>,
        /// Shape of `uncond`.
        uncond: Vec<usize>,
    },
    /// A prediction holds NaN or ±inf, which would silently turn into a NaN image.
    #[error("the {tensor} prediction contains NaN or infinite values")]
    NonFinite {
        /// `cond`, `uncond` or `guided` (finite inputs that overflowed while combining).
        tensor: &'static str,
    },
    /// The backend failed to read a tensor back.
    #[error("reading the {tensor} prediction back from the device failed: {message}")]
    Backend {
        /// Which tensor was read.
        tensor: &'static str,
        /// The backend's message.
        message: String,
    },
}

impl Guidance {
    /// Decides whether true CFG runs, from a generation's settings.
    ///
    /// The scale is `true_cfg_scale` when set, else `guidance_scale` (upstream SGLang's fallback,
    /// which fixed a crash when only `guidance_scale` was given). CFG is [`Guidance::Off`] when there
    /// is no negative prompt, no scale, or a scale ≤ 1 (diffusers' `do_true_cfg`). Note that
    /// diffusers' own `true_cfg_scale` argument defaults to 4.0; a caller wanting that default must
    /// pass it. A NaN or infinite scale is an error rather than a silent "off" or a NaN image.
    pub fn from_settings(
        true_cfg_scale: Option<f32>,
        guidance_scale: Option<f32>,
        has_negative: bool,
    ) -> Result<Self, CfgError> {
        let chosen = match (true_cfg_scale, guidance_scale) {
            (Some(v), _) => Some(("true_cfg_scale", v)),
            (None, Some(v)) => Some(("guidance_scale", v)),
            (None, None) => None,
        };
        match chosen {
            Some((setting, value)) if !value.is_finite() => {
                Err(CfgError::InvalidScale { setting, value })
            }
            Some((_, scale)) if has_negative && scale > 1.0 => Ok(Self::TrueCfg { scale }),
            _ => Ok(Self::Off),
        }
    }

    /// The same decision with the per-token norm rescale on ([`Guidance::TrueCfg`], what
    /// [`Guidance::from_settings`] gives) or off ([`Guidance::TrueCfgPlain`]): Qwen-Image-Layered's
    /// `cfg_normalize`. [`Guidance::Off`] stays off.
    pub fn with_norm_rescale(self, rescale: bool) -> Self {
        match (self, rescale) {
            (Self::Off, _) => Self::Off,
            (Self::TrueCfg { scale } | Self::TrueCfgPlain { scale }, true) => {
                Self::TrueCfg { scale }
            }
            (Self::TrueCfg { scale } | Self::TrueCfgPlain { scale }, false) => {
                Self::TrueCfgPlain { scale }
            }
        }
    }

    /// True when the pipeline must run the unconditional (negative-prompt) pass.
    pub fn is_enabled(&self) -> bool {
        !matches!(self, Self::Off)
    }

    /// True when the combination is rescaled to the conditional prediction's norm.
    pub fn rescales(&self) -> bool {
        matches!(self, Self::TrueCfg { .. })
    }

    /// The scale in use, if CFG is on.
    pub fn scale(&self) -> Option<f32> {
        match *self {
            Self::Off => None,
            Self::TrueCfg { scale } | Self::TrueCfgPlain { scale } => Some(scale),
        }
    }

    /// The guided velocity: `cond` itself when [`Off`](Guidance::Off) (any `uncond` is ignored),
    /// else the true-CFG combination, rescaled unless [`TrueCfgPlain`](Guidance::TrueCfgPlain).
    /// The norm is taken over the last dimension (the 64 packed latent channels of a
    /// `[B, N, 64]` prediction).
    ///
    /// The result is checked to be finite (one small reduction and a device read per call); when it
    /// is not, the inputs are checked to name the culprit. Ops run in the tensors' dtype, as
    /// diffusers does (bf16 in the standard setup).
    pub fn combine<B: Backend, const D: usize>(
        &self,
        cond: Tensor<B, D>,
        uncond: Option<Tensor<B, D>>,
    ) -> Result<Tensor<B, D>, CfgError> {
        let (scale, rescale) = match *self {
            Self::Off => {
                ensure_finite(&cond, "cond")?;
                return Ok(cond);
            }
            Self::TrueCfg { scale } => (scale, true),
            Self::TrueCfgPlain { scale } => (scale, false),
        };
        let uncond = uncond.ok_or(CfgError::MissingUncond { scale })?;
        let (cond_shape, uncond_shape) = (cond.dims(), uncond.dims());
        if cond_shape != uncond_shape {
            return Err(CfgError::ShapeMismatch {
                cond: cond_shape.to_vec(),
                uncond: uncond_shape.to_vec(),
            });
        }
        let guided = if rescale {
            true_cfg(cond.clone(), uncond.clone(), scale)
        } else {
            combination(cond.clone(), uncond.clone(), scale)
        };
        if !all_finite(&guided, "guided")? {
            ensure_finite(&cond, "cond")?;
            ensure_finite(&uncond, "uncond")?;
            return Err(CfgError::NonFinite { tensor: "guided" });
        }
        Ok(guided)
    }
}

/// `uncond + s · (cond − uncond)`, in diffusers' order of operations.
fn combination<B: Backend, const D: usize>(
    cond: Tensor<B, D>,
    uncond: Tensor<B, D>,
    scale: f32,
) -> Tensor<B, D> {
    uncond.clone() + (cond - uncond).mul_scalar(scale)
}

/// The combination rescaled to `cond`'s per-token norm, in diffusers' order of operations.
fn true_cfg<B: Backend, const D: usize>(
    cond: Tensor<B, D>,
    uncond: Tensor<B, D>,
    scale: f32,
) -> Tensor<B, D> {
    let last = D - 1;
    let comb = combination(cond.clone(), uncond, scale);
    let cond_norm = cond.square().sum_dim(last).sqrt();
    let comb_norm = comb
        .clone()
        .square()
        .sum_dim(last)
        .sqrt()
        .clamp_min(NORM_EPS);
    comb * (cond_norm / comb_norm)
}

fn all_finite<B: Backend, const D: usize>(
    t: &Tensor<B, D>,
    tensor: &'static str,
) -> Result<bool, CfgError> {
    let backend = |e| CfgError::Backend {
        tensor,
        message: format!("{e:?}"),
    };
    // Fast path (one reduction): a NaN or ±inf element makes the sum non-finite, so a finite sum
    // proves the tensor finite. Only a non-finite sum (or an overflowing one) needs the exact test.
    let sum: f64 = t.clone().sum().try_into_scalar().map_err(backend)?.elem();
    if sum.is_finite() {
        return Ok(true);
    }
    let all = t
        .clone()
        .is_finite()
        .all()
        .try_into_scalar()
        .map_err(backend)?;
    Ok(all.elem::<bool>())
}

fn ensure_finite<B: Backend, const D: usize>(
    t: &Tensor<B, D>,
    tensor: &'static str,
) -> Result<(), CfgError> {
    if all_finite(t, tensor)? {
        Ok(())
    } else {
        Err(CfgError::NonFinite { tensor })
    }
}

/// Compiles and runs the README example as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctest;
