//! Wall time of the tiny official pipeline (64×64, 6 steps, CFG on) on the CPU. Compare with
//! `xtask/reference/bench_pipeline.py`, which times diffusers on the same case and machine.

use std::path::Path;

use burn::backend::Flex;
use criterion::{Criterion, criterion_group, criterion_main};
use pipeline::{InitialLatents, Pipeline, Request};

fn tiny(c: &mut Criterion) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata");
    let pipe = Pipeline::<Flex>::load(root.join("tiny-qwen-image"), &Default::default())
        .expect("tiny pipeline");
    let req = Request::new("Doraemon is eating dorayaki", 64, 64)
        .negative_prompt(" ")
        .true_cfg_scale(4.0)
        .steps(6)
        .latents(InitialLatents::File(
            root.join("e2e/latents/tiny_t2i_cfg.safetensors"),
        ));
    c.bench_function("tiny_pipeline_64x64_6steps_cfg", |b| {
        b.iter(|| pipe.generate(&req, &mut |_| {}).expect("generate"))
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10);
    targets = tiny
}
criterion_main!(benches);
