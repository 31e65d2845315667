//! The vision side on the CPU (Flex, f32): `Qwen2VLImageProcessor` on the two committed test
//! images (decode excluded) and on a 1024² image with its defaults, and the tiny vision tower
//! (depth 4, split windows) on the test images' 72 patches.
//!
//! `cargo bench -p text-encoder --bench vision --profile dev`; transformers' numbers for the same work come
//! from `.venv-reference/bin/python xtask/reference/gen_vision.py --bench` (run by hand).

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::Duration;

use burn::backend::Flex;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use text_encoder::image_processor::open_rgb;
use text_encoder::{ImageProcessor, VisionTower};

type B = Flex;

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/vision")
}

fn vision(c: &mut Criterion) {
    let dev = Default::default();
    let images = ["rgba_61x79.png", "gray_100x160.png"]
        .map(|f| open_rgb(testdata().join("inputs").join(f)).expect("test image decodes"));
    let processor = ImageProcessor::from_preprocessor_config(
        testdata().join("processor/preprocessor_config.json"),
    )
    .expect("processor config");
    let input = processor.preprocess(&images).expect("preprocesses");

    let mut g = c.benchmark_group("vision_tiny");
    g.sample_size(20).measurement_time(Duration::from_secs(5));
    g.bench_function("processor_2_images", |b| {
        b.iter(|| black_box(processor.preprocess(&images).map(|v| v.pixel_values.len())))
    });

    // An Edit pipeline's condition image: 1024², the processor's defaults (74×74 patches).
    let big = image::RgbImage::from_fn(1024, 1024, |x, y| {
        let v = (x
            .wrapping_mul(2_654_435_761)
            .wrapping_add(y.wrapping_mul(40_503)))
            >> 7;
        image::Rgb([v as u8, (v >> 8) as u8, (v >> 16) as u8])
    });
    let default = ImageProcessor::default();
    g.bench_function("processor_1024", |b| {
        b.iter(|| {
            black_box(
                default
                    .preprocess(std::slice::from_ref(&big))
                    .map(|v| v.pixel_values.len()),
            )
        })
    });

    let tower = VisionTower::<B>::load(testdata().join("text_encoder"), &dev).expect("tiny tower");
    let pixels = input.pixel_values_tensor::<B>(&dev);
    g.throughput(Throughput::Elements(input.num_patches() as u64));
    g.bench_function("tower_72_patches", |b| {
        b.iter(|| {
            black_box(
                tower
                    .forward(pixels.clone(), &input.grid_thw)
                    .map(|t| t.into_data()),
            )
        })
    });
    g.finish();
}

criterion_group!(benches, vision);
criterion_main!(benches);
