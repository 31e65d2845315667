//! SSIM + PSNR + MAD on a 1024x1024 RGB pair. `benches/compare_skimage.py` times scikit-image on
//! the same pair (same formula below) and prints the ratio.

use criterion::{Criterion, criterion_group, criterion_main};
use metrics::{PixelMetrics, RgbImage};

/// A smooth pattern and a copy with deterministic noise in [-8, 8]; the Python script builds the
/// identical pair with numpy.
fn pair() -> (RgbImage, RgbImage) {
    let a = RgbImage::from_fn(1024, 1024, |x, y| {
        image::Rgb([
            ((x + y) % 256) as u8,
            ((x * 3) % 256) as u8,
            ((y * 5 + x) % 256) as u8,
        ])
    });
    let mut b = a.clone();
    for (i, v) in b.iter_mut().enumerate() {
        let noise = (((i as u64 * 2_654_435_761) % (1 << 32)) >> 7) % 17;
        *v = (i64::from(*v) + noise as i64 - 8).clamp(0, 255) as u8;
    }
    (a, b)
}

fn bench(c: &mut Criterion) {
    let (a, b) = pair();
    c.bench_function("ssim_psnr_mad_1024x1024_rgb", |bench| {
        bench.iter(|| PixelMetrics::compute(&a, &b).map(|m| m.ssim))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
