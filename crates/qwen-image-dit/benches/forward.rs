//! CPU regression bench on the tiny transformer (2 blocks, 2 heads × 32): one forward pass at the
//! tiny pipeline's size (4×4 tokens) and at 32×32 tokens with 64 text tokens, fused and explicit
//! attention, plus building the RoPE tables for a 1024×1024 image.
//!
//! `cargo bench -p qwen-image-dit`

use std::path::Path;

use burn::backend::Flex;
use burn::tensor::{Distribution, Tensor};
use criterion::{Criterion, criterion_group, criterion_main};
use qwen_image_dit::{AttentionImpl, DitInputs, ImageShape, QwenImageTransformer};

type B = Flex;

fn bench(c: &mut Criterion) {
    let dev = Default::default();
    let dir =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/tiny-qwen-image/transformer");
    let model = match QwenImageTransformer::<B>::load(&dir, &dev) {
        Ok(m) => m,
        Err(e) => panic!("{}: {e}", dir.display()),
    };
    let cfg = model.config().clone();

    for (name, (h, w), l) in [("4x4_L7", (4, 4), 7), ("32x32_L64", (32, 32), 64)] {
        let shapes = [ImageShape::new(1, h, w)];
        let rope = model.rope(&shapes, l, &dev).expect("valid shape");
        let x = Tensor::<B, 3>::random(
            [1, h * w, cfg.in_channels],
            Distribution::Normal(0.0, 1.0),
            &dev,
        );
        let enc = Tensor::<B, 3>::random(
            [1, l, cfg.joint_attention_dim],
            Distribution::Normal(0.0, 1.0),
            &dev,
        );
        let t = Tensor::<B, 1>::from_floats([0.5], &dev);
        for imp in [AttentionImpl::Fused, AttentionImpl::Explicit] {
            let m = model.clone().with_attention(imp);
            c.bench_function(&format!("dit_tiny_forward_{name}_{imp:?}"), |bch| {
                bch.iter(|| {
                    let inputs = DitInputs::new(x.clone(), enc.clone(), t.clone(), &rope);
                    m.forward(inputs).expect("valid inputs").into_data()
                })
            });
        }
    }

    c.bench_function("dit_rope_tables_64x64_L512_released_axes", |bch| {
        let shapes = [ImageShape::new(1, 64, 64)];
        bch.iter(|| {
            qwen_image_dit::Rope::<B>::new([16, 56, 56], &shapes, 512, &dev).expect("valid shape")
        })
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = bench
}
criterion_main!(benches);
