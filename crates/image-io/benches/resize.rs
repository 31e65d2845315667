//! The image work of one Qwen Edit request and of one JPEG comparison, on a 1024×768 photo-sized
//! input. `benches/compare_pil.py` times PIL/diffusers on the same work (docs/performance.md).

use criterion::{Criterion, criterion_group, criterion_main};
use image_io::{Image, JpegOptions, Mode, Resample, decode_jpeg, encode_jpeg, qwen_edit_image};

/// Deterministic noise-plus-gradient pixels (the same formula as compare_pil.py).
fn input(width: u32, height: u32) -> Image {
    let mut state = 0x2545_f491_u32;
    let data = (0..width * height * 3)
        .map(|i| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            let gradient = (i / 3 % width * 255 / width) as u8;
            gradient / 2 + (state >> 25) as u8
        })
        .collect();
    Image::from_raw(Mode::Rgb, width, height, data).expect("size matches")
}

fn benches(c: &mut Criterion) {
    let img = input(1024, 768);
    c.bench_function(
        "qwen_edit_image 1024x768 -> 1184x896 (lanczos + preprocess)",
        |b| b.iter(|| qwen_edit_image(&img).expect("resize")),
    );
    c.bench_function("resize 1024x768 -> 298x224 bicubic (CLIP)", |b| {
        b.iter(|| img.resize(298, 224, Resample::Bicubic).expect("resize"))
    });
    c.bench_function("jpeg encode 1024x768 q75", |b| {
        b.iter(|| encode_jpeg(&img, JpegOptions::default()).expect("encode"))
    });
    let jpeg = encode_jpeg(&img, JpegOptions::default()).expect("encode");
    c.bench_function("jpeg decode 1024x768 q75", |b| {
        b.iter(|| decode_jpeg(&jpeg).expect("decode"))
    });
}

criterion_group!(name = group; config = Criterion::default().sample_size(10); targets = benches);
criterion_main!(group);
