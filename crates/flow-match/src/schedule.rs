//! Sigmas and timesteps, computed with diffusers' exact float32/float64 order of operations.

use crate::{SchedulerConfig, SchedulerError, TimeShiftType};

/// μ, the dynamic shift for an image of `image_seq_len` packed tokens: linear through
/// (`base_seq_len`, `base_shift`) and (`max_seq_len`, `max_shift`), not clamped outside that range.
///
/// Same f64 operations as diffusers' `calculate_shift` (Qwen-Image: 4096 tokens → μ ≈ 0.693548).
pub fn calculate_shift(
    image_seq_len: usize,
    base_seq_len: u64,
    max_seq_len: u64,
    base_shift: f64,
    max_shift: f64,
) -> f64 {
    // Python subtracts the ints exactly; in f64 this is exact too (< 2^53) and cannot underflow u64.
    let m = (max_shift - base_shift) / (max_seq_len as f64 - base_seq_len as f64);
    let b = base_shift - m * base_seq_len as f64;
    image_seq_len as f64 * m + b
}

/// The sigmas and timesteps of one generation, as `scheduler.sigmas` / `scheduler.timesteps` hold
/// them after `QwenImagePipeline` has called `set_timesteps`.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    /// `num_steps + 1` noise levels, decreasing, the last one the appended 0.
    pub sigmas: Vec<f32>,
    /// `num_steps` model timesteps, σ · `num_train_timesteps` (the DiT takes them divided by 1000).
    pub timesteps: Vec<f32>,
    /// The dynamic shift that was applied; `None` when the config uses the static `shift`.
    pub mu: Option<f64>,
}

/// One denoising step of a [`Schedule`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Step {
    /// 0-based step index.
    pub index: usize,
    /// The timestep to give the model (before the DiT's division by 1000).
    pub timestep: f32,
    /// σ at this step.
    pub sigma: f32,
    /// σ at the next step (0 after the last one).
    pub sigma_next: f32,
    /// `sigma_next − sigma` in f32 (negative): the Euler step's multiplier of the velocity.
    pub dt: f32,
}

impl Schedule {
    /// Number of denoising steps (model calls).
    pub fn num_steps(&self) -> usize {
        self.timesteps.len()
    }

    /// Step `index`, or `None` past the end.
    pub fn step(&self, index: usize) -> Option<Step> {
        let timestep = *self.timesteps.get(index)?;
        let sigma = *self.sigmas.get(index)?;
        let sigma_next = *self.sigmas.get(index + 1)?;
        Some(Step {
            index,
            timestep,
            sigma,
            sigma_next,
            // diffusers: `dt = sigma_next - sigma` on 0-dim f32 tensors.
            dt: sigma_next - sigma,
        })
    }

    /// The steps in order.
    pub fn steps(&self) -> impl Iterator<Item = Step> + '_ {
        (0..self.num_steps()).filter_map(|i| self.step(i))
    }
}

/// Euler update `sample ← sample + dt · velocity`, element-wise, in f32 — what
/// `FlowMatchEulerDiscreteScheduler.step` does for an f32 model output.
///
/// The product and the sum are two roundings (no fused multiply-add), as in torch. For a bf16
/// model output, diffusers rounds `dt · v` to bf16, adds in f32 and casts the result back to bf16;
/// on a burn tensor that is `sample.float() + (velocity * dt)` computed in the velocity's dtype.
pub fn euler_step(sample: &mut [f32], velocity: &[f32], dt: f32) -> Result<(), SchedulerError> {
    if sample.len() != velocity.len() {
        return Err(SchedulerError::LengthMismatch {
            sample: sample.len(),
            velocity: velocity.len(),
        });
    }
    for (x, v) in sample.iter_mut().zip(velocity) {
        *x += dt * v;
    }
    Ok(())
}

/// numpy's `linspace(start, stop, num)` in f64: `i · step + start`, the last value set to `stop`
/// (Qwen-Image-Layered's base sigmas are `linspace(1, 0, steps + 1)` without the last value).
pub fn linspace(start: f64, stop: f64, num: usize) -> Vec<f64> {
    if num == 1 {
        return vec![start];
    }
    let step = (stop - start) / (num - 1) as f64;
    let mut y: Vec<f64> = (0..num).map(|i| i as f64 * step + start).collect();
    if let Some(last) = y.last_mut() {
        *last = stop;
    }
    y
}

impl SchedulerConfig {
    /// The schedule `QwenImagePipeline` uses for `num_steps` steps on an image of `image_seq_len`
    /// packed tokens (1024×1024 → 64·64 = 4096): base sigmas `linspace(1, 1/n, n)`, then the shift,
    /// the terminal stretch, timesteps = σ·1000 and a final σ = 0.
    pub fn schedule(
        &self,
        num_steps: usize,
        image_seq_len: usize,
    ) -> Result<Schedule, SchedulerError> {
        if num_steps == 0 {
            return Err(SchedulerError::NoSteps);
        }
        self.schedule_with_sigmas(
            &linspace(1.0, 1.0 / num_steps as f64, num_steps),
            image_seq_len,
        )
    }

    /// Like [`schedule`](Self::schedule), from custom base sigmas (the pipeline's `sigmas=` argument,
    /// one per step, before shifting).
    pub fn schedule_with_sigmas(
        &self,
        sigmas: &[f64],
        image_seq_len: usize,
    ) -> Result<Schedule, SchedulerError> {
        self.validate()?;
        if sigmas.is_empty() {
            return Err(SchedulerError::NoSteps);
        }
        let mu = self.use_dynamic_shifting.then(|| self.mu(image_seq_len));
        self.build(sigmas, mu)
            .map_err(|(index, value)| SchedulerError::NonFinite {
                num_steps: sigmas.len(),
                image_seq_len,
                index,
                value,
            })
    }

    /// Like [`schedule_with_sigmas`](Self::schedule_with_sigmas) with μ given rather than computed
    /// from a token count: `set_timesteps(sigmas=…, mu=mu)` as `QwenImageLayeredPipeline` calls it
    /// (μ = √(condition-image tokens / 256), base sigmas [`linspace`]`(1, 0, n + 1)` without the
    /// last). As in diffusers, μ is used only by a config with `use_dynamic_shifting`; otherwise the
    /// static `shift` applies and `mu` is ignored.
    pub fn schedule_with_sigmas_and_mu(
        &self,
        sigmas: &[f64],
        mu: f64,
    ) -> Result<Schedule, SchedulerError> {
        self.validate()?;
        if sigmas.is_empty() {
            return Err(SchedulerError::NoSteps);
        }
        if !mu.is_finite() {
            return Err(SchedulerError::InvalidMu { mu });
        }
        let mu = self.use_dynamic_shifting.then_some(mu);
        self.build(sigmas, mu)
            .map_err(|(index, value)| SchedulerError::NonFiniteMu {
                num_steps: sigmas.len(),
                mu: mu.unwrap_or(f64::NAN),
                index,
                value,
            })
    }

    /// `set_timesteps` from base sigmas: shift (by μ when given, else the static `shift`), stretch,
    /// timesteps, the final 0. A non-finite sigma is returned as `(index, value)`.
    fn build(&self, sigmas: &[f64], mu: Option<f64>) -> Result<Schedule, SchedulerErrorAt> {
        // set_timesteps: `np.array(sigmas).astype(np.float32)`; everything after is f32 numpy maths,
        // where Python float scalars are rounded to f32 first (NumPy 2 promotion rules).
        let base: Vec<f32> = sigmas.iter().map(|&s| s as f32).collect();
        let mut shifted = match mu {
            Some(mu) => time_shift(self.time_shift_type, mu, &base),
            None => {
                let a = self.shift as f32;
                let b = (self.shift - 1.0) as f32;
                base.iter().map(|&t| a * t / (1.0 + b * t)).collect()
            }
        };
        if let Some(terminal) = self.shift_terminal.filter(|&t| t != 0.0) {
            stretch_to_terminal(&mut shifted, terminal);
        }
        if let Some((index, &value)) = shifted.iter().enumerate().find(|(_, s)| !s.is_finite()) {
            return Err((index, value));
        }
        let scale = self.num_train_timesteps as f32;
        let timesteps = shifted.iter().map(|&s| s * scale).collect();
        shifted.push(0.0);
        Ok(Schedule {
            sigmas: shifted,
            timesteps,
            mu,
        })
    }
}

/// Where a schedule went non-finite: (sigma index, value).
type SchedulerErrorAt = (usize, f32);

/// diffusers' `time_shift(mu, 1.0, t)`; the exponent 1.0 leaves `1/t − 1` unchanged.
fn time_shift(kind: TimeShiftType, mu: f64, t: &[f32]) -> Vec<f32> {
    // `math.exp(mu)` (or `mu`) is an f64 that numpy rounds to f32 before the array ops.
    let m = match kind {
        TimeShiftType::Exponential => mu.exp() as f32,
        TimeShiftType::Linear => mu as f32,
    };
    t.iter().map(|&t| m / (m + (1.0 / t - 1.0))).collect()
}

/// diffusers' `stretch_shift_to_terminal` (from LTX-Video): scale `1 − σ` so that the last σ lands
/// on `terminal`. A schedule whose last shifted σ is 1 (a single step) divides 0 by 0: NaN upstream.
fn stretch_to_terminal(t: &mut [f32], terminal: f64) {
    let Some(&last) = t.last() else { return };
    let scale_factor = (1.0 - last) / (1.0 - terminal) as f32;
    for s in t.iter_mut() {
        *s = 1.0 - (1.0 - *s) / scale_factor;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_given_mu_matches_diffusers_layered_schedule() {
        // diffusers 0.42.1: FlowMatchEulerDiscreteScheduler (Qwen-Image's config)
        // .set_timesteps(sigmas=np.linspace(1.0, 0, n + 1)[:-1], mu=mu), as QwenImageLayeredPipeline
        // calls it (mu = sqrt(1600 / 256) = 2.5 for the 640 bucket).
        let config = SchedulerConfig::qwen_image();
        for (n, mu, sigmas, timesteps) in [
            (
                4,
                2.5,
                vec![1.0, 0.867_911_04, 0.623_772_74, 0.019_999_98, 0.0],
                vec![1000.0, 867.911, 623.772_77, 19.999_98],
            ),
            (
                3,
                0.7,
                vec![1.0, 0.608_804_2, 0.019_999_921, 0.0],
                vec![1000.0, 608.804_2, 19.999_922],
            ),
        ] {
            let base = linspace(1.0, 0.0, n + 1);
            let s = config.schedule_with_sigmas_and_mu(&base[..n], mu).unwrap();
            assert_eq!(s.mu, Some(mu));
            for (a, b) in s
                .sigmas
                .iter()
                .zip(&sigmas)
                .chain(s.timesteps.iter().zip(&timesteps))
            {
                assert!((a - b).abs() <= 1e-6 * b.abs().max(1.0), "{n} {mu}: {s:?}");
            }
            assert_eq!((s.sigmas.len(), s.timesteps.len()), (n + 1, n));
        }
    }

    #[test]
    fn a_given_mu_is_the_computed_one_when_they_agree() {
        let config = SchedulerConfig::qwen_image();
        let base = linspace(1.0, 0.25, 4);
        let by_len = config.schedule_with_sigmas(&base, 1234).unwrap();
        let by_mu = config
            .schedule_with_sigmas_and_mu(&base, config.mu(1234))
            .unwrap();
        assert_eq!(by_len, by_mu);
        assert!(matches!(
            config.schedule_with_sigmas_and_mu(&base, f64::NAN),
            Err(SchedulerError::InvalidMu { .. })
        ));
        assert!(matches!(
            config.schedule_with_sigmas_and_mu(&[], 1.0),
            Err(SchedulerError::NoSteps)
        ));
        // One step: the terminal stretch divides 0 by 0, as upstream; an error, not NaN sigmas.
        assert!(matches!(
            config.schedule_with_sigmas_and_mu(&[1.0], 2.5),
            Err(SchedulerError::NonFiniteMu { index: 0, .. })
        ));
        // A static-shift config ignores mu, as diffusers does.
        let fixed = SchedulerConfig {
            use_dynamic_shifting: false,
            ..config
        };
        let s = fixed.schedule_with_sigmas_and_mu(&base, 2.5).unwrap();
        assert_eq!(s, fixed.schedule_with_sigmas(&base, 1).unwrap());
        assert_eq!(s.mu, None);
    }

    #[test]
    fn linspace_matches_numpy_shape() {
        assert_eq!(linspace(1.0, 0.25, 4), vec![1.0, 0.75, 0.5, 0.25]);
        assert_eq!(linspace(1.0, 1.0, 1), vec![1.0]);
    }

    #[test]
    fn no_steps_is_an_error() {
        let config = SchedulerConfig::qwen_image();
        assert!(matches!(
            config.schedule(0, 4096),
            Err(SchedulerError::NoSteps)
        ));
        assert!(matches!(
            config.schedule_with_sigmas(&[], 4096),
            Err(SchedulerError::NoSteps)
        ));
    }

    #[test]
    fn euler_step_rejects_mismatched_lengths() {
        let mut x = [0.0f32; 3];
        assert!(matches!(
            euler_step(&mut x, &[1.0; 2], -0.1),
            Err(SchedulerError::LengthMismatch {
                sample: 3,
                velocity: 2
            })
        ));
    }

    #[test]
    fn steps_pair_each_timestep_with_its_dt() {
        let s = SchedulerConfig::qwen_image().schedule(4, 1024).unwrap();
        let steps: Vec<Step> = s.steps().collect();
        assert_eq!(steps.len(), 4);
        assert_eq!(steps[3].sigma_next, 0.0);
        assert_eq!(steps[0].dt, s.sigmas[1] - s.sigmas[0]);
        assert!(s.step(4).is_none());
    }
}
