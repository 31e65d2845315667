//! End to end on the tiny official pipeline: from the oracle's initial latents (or only its seed),
//! our image equals the official diffusers image with PSNR ≥ 40 dB and SSIM ≥ 0.99 for every
//! oracle case (CFG on/off, non-square, seed-only), and the latents after the first step equal the
//! oracle's within 1e-4 so that a failure is located.

use std::path::Path;

use cases::Case;
use pipeline::{InitialLatents, QwenImagePipeline, Request};

use crate::common::{B, assert_matches_official, load, testdata};

/// The tiny official cases, read by the consistency runner's own parser (every field, validated).
fn cases() -> Vec<Case> {
    cases::load(&testdata().join("cases/tiny.toml")).unwrap()
}

fn request(c: &Case) -> Request {
    c.request()
}

#[test]
fn every_tiny_case_matches_the_official_diffusers_image() {
    let dev = Default::default();
    let pipe = load::<QwenImagePipeline<B>>(testdata().join("tiny-qwen-image"), &dev).unwrap();
    let cases = cases();
    assert!(cases.len() >= 3);
    for c in &cases {
        let out = pipe.generate(&request(c), &mut |_| {}).unwrap();
        assert_matches_official(&c.id, out, "e2e");
    }
}

#[test]
fn a_missing_component_or_bad_latents_is_a_clear_error() {
    let dev = Default::default();
    let dir = tempfile::tempdir().unwrap();
    let src = testdata().join("tiny-qwen-image");
    for entry in [
        "model_index.json",
        "scheduler",
        "tokenizer",
        "text_encoder",
        "transformer",
    ] {
        copy_all(&src.join(entry), &dir.path().join(entry));
    }
    let msg = load::<QwenImagePipeline<B>>(dir.path(), &dev)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("vae"), "{msg}");

    // A corrupt shard names its file.
    copy_all(&src.join("vae"), &dir.path().join("vae"));
    let shard = dir
        .path()
        .join("transformer/diffusion_pytorch_model.safetensors");
    let bytes = std::fs::read(&shard).unwrap();
    std::fs::write(&shard, &bytes[..bytes.len() / 3]).unwrap();
    let msg = load::<QwenImagePipeline<B>>(dir.path(), &dev)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("diffusion_pytorch_model.safetensors"), "{msg}");

    // Latents of the wrong size name the file and the expected shape.
    let pipe = load::<QwenImagePipeline<B>>(&src, &dev).unwrap();
    let c = &cases()[0];
    let req = request(c).latents(InitialLatents::File(
        testdata().join("e2e/latents/tiny_t2i_nonsquare.safetensors"),
    ));
    let msg = pipe.generate(&req, &mut |_| {}).unwrap_err().to_string();
    assert!(
        msg.contains("tiny_t2i_nonsquare.safetensors") && msg.contains("[1, 16, 64]"),
        "{msg}"
    );
}

#[test]
fn sizes_are_floored_to_multiples_of_16_with_a_warning() {
    let dev = Default::default();
    let pipe = load::<QwenImagePipeline<B>>(testdata().join("tiny-qwen-image"), &dev).unwrap();
    let req = Request::new("a", 70, 50)
        .steps(2)
        .latents(InitialLatents::Seed(1));
    let out = pipe.generate(&req, &mut |_| {}).unwrap();
    assert_eq!((out.height, out.width), (64, 48));
    assert_eq!(out.image.dimensions(), (48, 64));
    assert!(
        out.warnings
            .iter()
            .any(|w| w.contains("70×50 floored to 64×48")),
        "{:?}",
        out.warnings
    );
}

fn copy_all(src: &Path, dst: &Path) {
    if src.is_dir() {
        std::fs::create_dir_all(dst).unwrap();
        for e in std::fs::read_dir(src).unwrap() {
            let e = e.unwrap();
            copy_all(&e.path(), &dst.join(e.file_name()));
        }
    } else {
        std::fs::copy(src, dst).unwrap();
    }
}
