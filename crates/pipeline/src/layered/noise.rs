//! Layered stage 3: the noise of `layers + 1` frames, each packed on its own, and the schedule
//! (base sigmas `linspace(1, 0, steps + 1)` without the last, μ = √(input tokens / 256)).

use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use flow_match::{Schedule, SchedulerConfig};
use qwen_image_dit::ImageShape;

use crate::error::Error;
use crate::latents::{InitialLatents, given_latents, torch_noise};

/// `QwenImageLayeredPipeline`'s `base_seqlen = 256 * 256 / 16 / 16`: μ = √(tokens / 256).
const MU_BASE_TOKENS: f64 = 256.0 * 256.0 / 16.0 / 16.0;

/// diffusers' `prepare_latents` for Layered: noise `(1, frames, z, h, w)` drawn in one call,
/// each frame (of `frame` tokens) packed into 2×2 tokens on its own and the frames
/// concatenated: `[1, frames · tokens, channels]`. Given latents must have that packed shape.
pub(crate) fn initial_latents<B: Backend>(
    source: &InitialLatents,
    frames: usize,
    frame: ImageShape,
    z: usize,
    channels: usize,
    device: &B::Device,
) -> Result<Tensor<B, 3>, Error> {
    let n = frames * frame.num_tokens();
    let Some((seed, generator)) = source.seed() else {
        let needs = format!(
            "{frames} frames of {}×{} tokens need",
            frame.height, frame.width
        );
        return given_latents(source, [1, n, channels], &needs, device);
    };
    let (lh, lw) = (2 * frame.height, 2 * frame.width);
    let noise = torch_noise::<B>(seed, generator, [1, frames, z, lh, lw], device)?;
    // [1, F, z, h, w] → F frames of [z, 1, h, w]: the same memory, packed per frame.
    let per_frame = qwen_image_vae::pack_latents(noise.reshape([frames, z, 1, lh, lw]))?;
    Ok(per_frame.reshape([1, n, 4 * z]))
}

/// The Layered schedule for `steps` steps: base sigmas `linspace(1, 0, steps + 1)` without the
/// last, μ = √(`image_tokens` / 256) where `image_tokens` is the input's packed length.
pub(crate) fn schedule(
    scheduler: &SchedulerConfig,
    steps: usize,
    image_tokens: usize,
) -> Result<Schedule, Error> {
    if steps == 0 {
        return Err(Error::Request(
            "num_inference_steps must be at least 1".into(),
        ));
    }
    let sigmas = flow_match::linspace(1.0, 0.0, steps + 1);
    let mu = (image_tokens as f64 / MU_BASE_TOKENS).sqrt();
    Ok(scheduler.schedule_with_sigmas_and_mu(&sigmas[..steps], mu)?)
}
