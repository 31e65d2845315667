//! What the end-to-end tests share: the testdata folder, the error measure, and the check of one
//! case's output against the oracle's first-step latents and the official GT image.

use std::path::{Path, PathBuf};

use burn::backend::Flex;
use pipeline::{Output, Pipeline};

pub type B = Flex;

pub fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata")
}

/// A concrete pipeline loaded through the one load path ([`Pipeline::load`]), taken as `P`
/// (a folder of another kind is an error naming its class).
pub fn load<P>(model: impl AsRef<Path>, dev: &burn::tensor::Device<B>) -> Result<P, pipeline::Error>
where
    P: TryFrom<Pipeline<B>, Error = pipeline::Error>,
{
    Pipeline::<B>::load(model, dev).and_then(P::try_from)
}

/// Largest absolute difference over the reference's largest magnitude.
pub use parity_support::peak_rel_err as max_rel_err;

/// Case `id`'s latents after the first step equal the oracle's (`testdata/{goldens}/{id}.safetensors`)
/// within 1e-4, so that a failure is located, and its image equals the official diffusers image
/// (`gt/official_generated/{id}_1gpu.png`) with PSNR ≥ 40 dB and SSIM ≥ 0.99.
pub fn assert_matches_official(id: &str, out: Output<B>, goldens: &str) {
    let golden =
        weights::Weights::open(testdata().join(format!("{goldens}/{id}.safetensors"))).unwrap();
    let (want, shape) = golden.get_f32("latents_step1").unwrap();
    let got = out.latents_after_first_step.unwrap();
    assert_eq!(got.dims().to_vec(), shape, "{id}: latents shape");
    let got = got.into_data().to_vec::<f32>().unwrap();
    let err = max_rel_err(&got, &want);
    assert!(
        err <= 1e-4,
        "{id}: latents after the first step differ: max rel err {err:e}"
    );

    let gt = metrics::load_rgb(&testdata().join(format!("gt/official_generated/{id}_1gpu.png")))
        .unwrap();
    let psnr = metrics::psnr(&out.image, &gt).unwrap();
    let ssim = metrics::ssim(&out.image, &gt).unwrap();
    eprintln!("{id}: first-step latents max rel err {err:.2e}, psnr {psnr:.2} dB, ssim {ssim:.5}");
    assert!(psnr >= 40.0, "{id}: PSNR {psnr} < 40 dB");
    assert!(ssim >= 0.99, "{id}: SSIM {ssim} < 0.99");
}
