//! Caption throughput of the tiny untied captioner (testdata/caption/tiny-layered-untied) on the
//! CPU (Flex, f32): decode tokens/s with the KV cache (prefill excluded), and the whole caption
//! call (processor + vision tower + prefill + decode) per image.
//!
//! `cargo bench -p text-encoder --bench caption`.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::Duration;

use burn::backend::Flex;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use image::{DynamicImage, RgbImage};
use text_encoder::{CaptionLanguage, Captioner, GenerationConfig};

type B = Flex;

/// New tokens per timed caption: the plain greedy decoder never stops early on this model.
const NEW_TOKENS: usize = 32;

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata")
}

/// The golden prompt image (640 bucket: 800×512) through the Layered pipeline's resize.
fn prompt_image() -> RgbImage {
    let img = image_io::load(testdata().join("caption/image_rgba.png")).expect("input loads");
    let img = img.convert(image_io::Mode::Rgba).expect("RGBA");
    let resized = image_io::qwen_layered_image(&img, image_io::LayeredResolution::R640)
        .expect("bucket resize");
    image_io::convert_to_rgb(&DynamicImage::ImageRgba8(
        resized.condition.to_rgba_image().expect("RGBA"),
    ))
}

fn caption(c: &mut Criterion) {
    let dev = Default::default();
    let captioner =
        Captioner::<B>::from_pipeline_dir(testdata().join("caption/tiny-layered-untied"), &dev)
            .expect("tiny captioner loads");
    // No eos: every run makes NEW_TOKENS tokens.
    let captioner = captioner.with_generation(GenerationConfig::greedy(Vec::new()));
    let image = prompt_image();
    let inputs = captioner
        .prepare(&image, CaptionLanguage::English)
        .expect("inputs");

    let mut g = c.benchmark_group("caption_tiny");
    g.sample_size(10).measurement_time(Duration::from_secs(10));
    // Prefill alone (one new token), to subtract from the decode runs below.
    g.throughput(Throughput::Elements(inputs.len() as u64));
    g.bench_function(format!("prefill_l{}", inputs.len()), |b| {
        b.iter(|| black_box(captioner.generate(&inputs, 1, |_| {}).expect("generate")))
    });
    g.throughput(Throughput::Elements(NEW_TOKENS as u64));
    g.bench_function(format!("generate_{NEW_TOKENS}_tokens"), |b| {
        b.iter(|| {
            black_box(
                captioner
                    .generate(&inputs, NEW_TOKENS, |_| {})
                    .expect("generate"),
            )
        })
    });
    g.throughput(Throughput::Elements(1));
    g.bench_function(format!("caption_image_{NEW_TOKENS}_tokens"), |b| {
        b.iter(|| {
            black_box(
                captioner
                    .caption(&image, CaptionLanguage::English, NEW_TOKENS)
                    .expect("caption"),
            )
        })
    });
    g.finish();
}

criterion_group!(benches, caption);
criterion_main!(benches);
