//! True-CFG combination on a 1024×1024 image's velocity ([1, 4096, 64]), CPU (Flex, f32).

use burn::backend::Flex;
use burn::tensor::{Distribution, Tensor};
use cfg::Guidance;
use criterion::{Criterion, criterion_group, criterion_main};

fn combine(c: &mut Criterion) {
    let device = Default::default();
    let cond = Tensor::<Flex, 3>::random([1, 4096, 64], Distribution::Normal(0.0, 1.0), &device);
    let uncond = Tensor::<Flex, 3>::random([1, 4096, 64], Distribution::Normal(0.0, 1.0), &device);
    let guidance = Guidance::TrueCfg { scale: 4.0 };
    c.bench_function("cfg_combine_1x4096x64_f32", |b| {
        b.iter(|| {
            guidance
                .combine(cond.clone(), Some(uncond.clone()))
                .map(|t| t.into_data())
        })
    });
}

criterion_group!(benches, combine);
criterion_main!(benches);
