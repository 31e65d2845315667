//! CPU time of the tiny VAE decode (testdata/tiny-qwen-image/vae, base_dim 8) at two latent sizes.
//! Run: `cargo bench -p qwen-image-vae --bench decode`.

use std::path::PathBuf;

use burn::backend::Flex;
use burn::tensor::{Distribution, Tensor};
use criterion::{Criterion, criterion_group, criterion_main};
use qwen_image_vae::QwenImageVae;

type B = Flex;

fn decode(c: &mut Criterion) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testdata/tiny-qwen-image/vae");
    let dev = Default::default();
    let vae = match QwenImageVae::<B>::load(&dir, &dev) {
        Ok(v) => v,
        Err(e) => panic!("{e}"),
    };
    let mut group = c.benchmark_group("tiny_vae_decode");
    group.sample_size(10);
    for side in [16usize, 32] {
        let latents =
            Tensor::<B, 5>::random([1, 16, 1, side, side], Distribution::Normal(0.0, 2.0), &dev);
        group.bench_function(format!("{}x{}px", side * 8, side * 8), |b| {
            b.iter(|| {
                let out = vae.decode(latents.clone()).map(|s| s.into_data());
                std::hint::black_box(out.is_ok())
            })
        });
    }
    group.finish();
}

criterion_group!(benches, decode);
criterion_main!(benches);
