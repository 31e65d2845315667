//! SSIM + PSNR + MAD on a 1024x1024 RGB pair (compare with scikit-image: benches/compare_skimage.py).

use criterion::{Criterion, criterion_group, criterion_main};
use metrics::{PixelMetrics, RgbImage};

/// Two deterministic 1024x1024 images: a smooth pattern and a perturbed copy.
fn pair() -> (RgbImage, RgbImage) {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut noise = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % 17) as i32 - 8
    };
    let a = RgbImage::from_fn(1024, 1024, |x, y| {
        image::Rgb([((x + y) % 256) as u8, ((x * 3) % 256) as u8, ((y * 5 + x) % 256) as u8])
    });
    let mut b = a.clone();
    for p in b.pixels_mut() {
        for c in p.0.iter_mut() {
            *c = (i32::from(*c) + noise()).clamp(0, 255) as u8;
        }
    }
    (a, b)
}

fn bench(c: &mut Criterion) {
    let (a, b) = pair();
    c.bench_function("ssim+psnr+mad 1024x1024 rgb", |bench| {
        bench.iter(|| PixelMetrics::compute(&a, &b).map(|m| m.ssim))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
