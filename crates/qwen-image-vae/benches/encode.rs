//! CPU time of the tiny VAE encode (testdata/tiny-qwen-image/vae, base_dim 8) of one RGB image at
//! 128² and 256²; `xtask/reference/bench_vae_encoder.py` times diffusers on the same config.
//! Run: `cargo bench -p qwen-image-vae --bench encode`.

use std::path::PathBuf;

use burn::backend::Flex;
use burn::tensor::{Distribution, Tensor};
use criterion::{Criterion, criterion_group, criterion_main};
use qwen_image_vae::QwenImageVaeEncoder;

type B = Flex;

fn encode(c: &mut Criterion) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testdata/tiny-qwen-image/vae");
    let dev = Default::default();
    let encoder = match QwenImageVaeEncoder::<B>::load(&dir, &dev) {
        Ok(v) => v,
        Err(e) => panic!("{e}"),
    };
    let mut group = c.benchmark_group("tiny_vae_encode");
    group.sample_size(10);
    for side in [128usize, 256] {
        let image = Tensor::<B, 5>::random(
            [1, 3, 1, side, side],
            Distribution::Uniform(-1.0, 1.0),
            &dev,
        );
        group.bench_function(format!("{side}x{side}px"), |b| {
            b.iter(|| {
                let out = encoder.encode(image.clone()).map(|s| s.into_data());
                std::hint::black_box(out.is_ok())
            })
        });
    }
    group.finish();
}

criterion_group!(benches, encode);
criterion_main!(benches);
