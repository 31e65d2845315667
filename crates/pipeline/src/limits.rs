//! Bounds on what a generation may ask for, checked with checked arithmetic before any weight is
//! read: a size or a step count straight from a command line or a case file must give a clear
//! error, never an overflow (a panic in debug builds, a silent wrap in release) or a run that
//! cannot finish.
//!
//! ```
//! use pipeline::{MAX_SIDE, MAX_STEPS, Request};
//!
//! assert!(Request::new("a cat", 1024, 1024).validate().is_ok());
//! let e = Request::new("a cat", 1 << 40, 1024).validate().unwrap_err().to_string();
//! assert!(e.contains("height") && e.contains(&MAX_SIDE.to_string()));
//! let e = Request::new("a cat", 64, 64).steps(1_000_000_000).validate().unwrap_err().to_string();
//! assert!(e.contains("steps") && e.contains(&MAX_STEPS.to_string()));
//! ```

use qwen_image_dit::MAX_IMAGE_TOKENS;
use text_encoder::MAX_SEQUENCE_LENGTH_LIMIT;

use crate::error::Error;
use crate::request::Request;

/// The most denoising steps a request may ask for. diffusers has no bound, but its schedulers
/// are tuned for tens of steps, and `FlowMatchEulerDiscreteScheduler` is trained on 1000
/// timesteps: more steps than that only repeat timesteps.
pub const MAX_STEPS: usize = 1000;

/// Pixels per packed token along each side for Qwen-Image (VAE scale factor 8 × patch size 2).
const PIXELS_PER_TOKEN_SIDE: usize = 16;

/// The most pixels (height × width) an output may have: the DiT's [`MAX_IMAGE_TOKENS`] packed
/// tokens of 16 × 16 pixels, i.e. 8192 × 8192.
pub const MAX_PIXELS: usize = MAX_IMAGE_TOKENS * PIXELS_PER_TOKEN_SIDE * PIXELS_PER_TOKEN_SIDE;

/// The longest side an output may have, in pixels (1024 tokens). With at most 1024 text tokens
/// this keeps every RoPE position inside the reference's 4096-row tables.
pub const MAX_SIDE: usize = 16384;

/// Names of the bounded settings in messages: the CLI's flags, the case file's keys or an API's
/// fields (exported as `RequestFieldNames`).
#[derive(Debug, Clone, Copy)]
pub struct Names {
    pub height: &'static str,
    pub width: &'static str,
    pub steps: &'static str,
}

/// Output size: each side at least one packed token (`multiple` pixels) and at most
/// [`MAX_SIDE`], the area at most [`MAX_PIXELS`]. `None` leaves a side to the pipeline.
pub(crate) fn check_size(
    names: &Names,
    height: Option<usize>,
    width: Option<usize>,
    multiple: usize,
) -> Result<(), String> {
    for (name, side) in [(names.height, height), (names.width, width)] {
        match side {
            Some(v) if v < multiple => {
                return Err(format!(
                    "{name} {v} is below the minimum {multiple} pixels (one packed token)"
                ));
            }
            Some(v) if v > MAX_SIDE => {
                return Err(format!("{name} {v} is above the maximum {MAX_SIDE} pixels"));
            }
            _ => {}
        }
    }
    if let (Some(h), Some(w)) = (height, width)
        && h.checked_mul(w).is_none_or(|area| area > MAX_PIXELS)
    {
        return Err(format!(
            "{} × {} = {h} × {w} pixels is more than the maximum {MAX_PIXELS} \
             ({MAX_IMAGE_TOKENS} packed tokens, e.g. 8192 × 8192)",
            names.height, names.width
        ));
    }
    Ok(())
}

/// Denoising steps: 1 ..= [`MAX_STEPS`].
pub(crate) fn check_steps(name: &str, steps: usize) -> Result<(), String> {
    match steps {
        0 => Err(format!("{name} must be at least 1")),
        n if n > MAX_STEPS => Err(format!("{name} {n} is above the maximum {MAX_STEPS}")),
        _ => Ok(()),
    }
}

/// A CFG scale, when given, must be a finite number.
fn check_scale(name: &str, scale: Option<f32>) -> Result<(), String> {
    match scale {
        Some(s) if !s.is_finite() => Err(format!("{name} is {s}: it must be a finite number")),
        _ => Ok(()),
    }
}

impl Request {
    /// Check the settings that need no model (sizes, step count, text length, CFG scales)
    /// against this crate's bounds ([`MAX_SIDE`], [`MAX_PIXELS`], [`MAX_STEPS`]), so that a
    /// caller can refuse a request before loading any weight. `generate` checks it again.
    pub fn validate(&self) -> Result<(), Error> {
        let names = Names {
            height: "height",
            width: "width",
            steps: "steps",
        };
        self.validate_as(&names, PIXELS_PER_TOKEN_SIDE)
    }

    /// [`Self::validate`] with the settings named as `names` says and sides floored to
    /// `multiple` pixels.
    pub(crate) fn validate_as(&self, names: &Names, multiple: usize) -> Result<(), Error> {
        self.check_sized(names, multiple).map_err(Error::Request)
    }

    /// [`Self::validate`] with the settings named as `names` says, the reason alone (a caller
    /// such as the case file wraps it in its own error).
    pub fn check_named(&self, names: &Names) -> Result<(), String> {
        self.check_sized(names, PIXELS_PER_TOKEN_SIDE)
    }

    fn check_sized(&self, names: &Names, multiple: usize) -> Result<(), String> {
        check_size(names, self.height, self.width, multiple)
            .and_then(|()| check_steps(names.steps, self.num_inference_steps))
            .and_then(|()| {
                if (1..=MAX_SEQUENCE_LENGTH_LIMIT).contains(&self.max_sequence_length) {
                    Ok(())
                } else {
                    Err(format!(
                        "max_sequence_length {} is outside 1..={MAX_SEQUENCE_LENGTH_LIMIT}",
                        self.max_sequence_length
                    ))
                }
            })
            .and_then(|()| check_scale("true_cfg_scale", self.true_cfg_scale))
            .and_then(|()| check_scale("guidance_scale", self.guidance_scale))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// How the case file spells them.
    const CASE_NAMES: Names = Names {
        height: "height",
        width: "width",
        steps: "num_inference_steps",
    };

    #[test]
    fn sizes_are_bounded_with_the_field_named() {
        let n = &CASE_NAMES;
        assert!(check_size(n, Some(1024), Some(1024), 16).is_ok());
        assert!(check_size(n, None, None, 16).is_ok());
        assert!(check_size(n, Some(MAX_SIDE), Some(MAX_PIXELS / MAX_SIDE), 16).is_ok());
        let e = check_size(n, Some(0), Some(64), 16).unwrap_err();
        assert!(e.starts_with("height 0 "), "{e}");
        let e = check_size(n, Some(64), Some(8), 16).unwrap_err();
        assert!(e.starts_with("width 8 "), "{e}");
        let e = check_size(n, Some(100_000), Some(1024), 16).unwrap_err();
        assert!(
            e.starts_with("height 100000 ") && e.contains("16384"),
            "{e}"
        );
        let e = check_size(n, Some(1 << 40), Some(1 << 40), 16).unwrap_err();
        assert!(e.contains("height 1099511627776"), "{e}");
        let e = check_size(n, Some(16384), Some(16384), 16).unwrap_err();
        assert!(e.contains("16384 × 16384") && e.contains("67108864"), "{e}");
        // Near usize::MAX the area must not overflow (the sides are refused first anyway).
        assert!(check_size(n, Some(usize::MAX), Some(usize::MAX), 16).is_err());
    }

    #[test]
    fn steps_and_scales_are_bounded() {
        assert!(check_steps("steps", 1).is_ok());
        assert!(check_steps("steps", MAX_STEPS).is_ok());
        assert!(check_steps("steps", 0).unwrap_err().contains("at least 1"));
        let e = check_steps("steps", 1_000_000_000).unwrap_err();
        assert!(e.contains("steps 1000000000") && e.contains("1000"), "{e}");
        let e = Request::new("x", 64, 64)
            .true_cfg_scale(f32::NAN)
            .validate()
            .unwrap_err()
            .to_string();
        assert!(e.contains("true_cfg_scale is NaN"), "{e}");
        let e = Request::new("x", 64, 64)
            .max_sequence_length(0)
            .validate()
            .unwrap_err()
            .to_string();
        assert!(e.contains("max_sequence_length 0"), "{e}");
    }
}
