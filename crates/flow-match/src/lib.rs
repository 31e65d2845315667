//! FlowMatchEulerDiscreteScheduler as Qwen-Image configures it: shifted sigmas, timesteps, Euler step.
//!
//! A port of diffusers' `FlowMatchEulerDiscreteScheduler.set_timesteps` / `step`, driven the way
//! `QwenImagePipeline` drives it, with the same f32/f64 rounding so that sigmas match to ≤ 1e-6:
//!
//! 1. base sigmas `linspace(1, 1/n, n)` in f64, rounded to f32 (or custom sigmas);
//! 2. dynamic shift by μ = [`calculate_shift`]`(image_seq_len)` (exponential or linear; or a μ the
//!    pipeline gives, [`SchedulerConfig::schedule_with_sigmas_and_mu`], as Qwen-Image-Layered does),
//!    or the static `shift` when `use_dynamic_shifting` is off;
//! 3. stretch so that the last sigma is `shift_terminal` (0.02 for Qwen-Image);
//! 4. timesteps = σ · 1000, then a final σ = 0 is appended;
//! 5. Euler step `x ← x + (σ_next − σ) · v` ([`euler_step`], or [`Step::dt`] for a tensor).
//!
//! ```
//! use flow_match::SchedulerConfig;
//!
//! let config = SchedulerConfig::qwen_image(); // or SchedulerConfig::from_file(".../scheduler_config.json")?
//! let schedule = config.schedule(50, 4096)?; // 1024×1024 image → 64×64 packed tokens
//! assert!((schedule.mu.unwrap() - 0.693548).abs() < 1e-6);
//! assert_eq!(schedule.timesteps[0], 1000.0);
//! assert_eq!(schedule.sigmas.len(), 51);
//! # Ok::<(), flow_match::SchedulerError>(())
//! ```
//!
//! This crate does no tensor maths. On a burn tensor the pipeline applies the step itself:
//! `latents = latents + velocity.mul_scalar(step.dt)`.

mod config;
mod schedule;

use std::path::PathBuf;

pub use config::{SchedulerConfig, TimeShiftType};
pub use schedule::{Schedule, Step, calculate_shift, euler_step, linspace};

/// Everything that can go wrong in this crate.
///
/// A cause (an I/O, JSON or decoder error) is part of the message and deliberately not a
/// `source()`, so that an error chain printed with anyhow's `{:#}` says it once.
#[derive(Debug, thiserror::Error)]
pub enum SchedulerError {
    /// The config file could not be read.
    #[error("cannot read scheduler config {path}: {error}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        error: std::io::Error,
    },
    /// The config file is not valid JSON of the expected shape.
    #[error("cannot parse scheduler config {path}: {error}")]
    Parse {
        /// The file (or `<json string>`).
        path: PathBuf,
        /// The JSON error, with line and column.
        error: serde_json::Error,
    },
    /// The config switches on something this port does not implement, or cannot define μ.
    #[error("scheduler config {origin}: {reason}")]
    InvalidConfig {
        /// The file, or "in-memory config".
        origin: String,
        /// What is wrong.
        reason: String,
    },
    /// Zero inference steps (or an empty custom sigma list) were asked for.
    #[error("the schedule needs at least one inference step")]
    NoSteps,
    /// The schedule came out NaN or infinite (diffusers silently returns NaN sigmas here).
    #[error(
        "the {num_steps}-step schedule for image_seq_len {image_seq_len} is not finite: sigma[{index}] = {value} \
         (a single step with shift_terminal divides 0 by 0 upstream)"
    )]
    NonFinite {
        /// Requested steps.
        num_steps: usize,
        /// Requested image token count.
        image_seq_len: usize,
        /// First bad sigma.
        index: usize,
        /// Its value.
        value: f32,
    },
    /// A μ given to [`SchedulerConfig::schedule_with_sigmas_and_mu`] is NaN or infinite.
    #[error("the dynamic shift mu = {mu} is not a finite number")]
    InvalidMu {
        /// The value given.
        mu: f64,
    },
    /// The schedule for a given μ came out NaN or infinite.
    #[error(
        "the {num_steps}-step schedule for mu {mu} is not finite: sigma[{index}] = {value} \
         (a single step with shift_terminal divides 0 by 0 upstream)"
    )]
    NonFiniteMu {
        /// Requested steps.
        num_steps: usize,
        /// The μ applied (NaN when the config's static shift was used instead).
        mu: f64,
        /// First bad sigma.
        index: usize,
        /// Its value.
        value: f32,
    },
    /// [`euler_step`] got slices of different lengths.
    #[error("Euler step: the sample has {sample} values but the velocity has {velocity}")]
    LengthMismatch {
        /// Sample length.
        sample: usize,
        /// Velocity length.
        velocity: usize,
    },
}

/// Compiles and runs the README example as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctest;
