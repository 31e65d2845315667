//! Prefill throughput (tokens/s) of the tiny Qwen2.5-VL text encoder on the CPU (Flex, f32), and
//! the whole prompt path (tokenizer + model + drop/re-pad) on the golden batch.
//!
//! `cargo bench -p text-encoder`; transformers' numbers for the same work come from
//! `.venv-reference/bin/python xtask/reference/gen_text_encoder.py --bench` (run by hand).

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::Duration;

use burn::backend::Flex;
use burn::tensor::{Int, Tensor, TensorData};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use text_encoder::{PromptEncoder, QwenTextEncoder, format_prompt};

type B = Flex;

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata")
}

/// The prompt the Python side uses too: the template around a repeated sentence, cut to `len`.
fn ids(enc: &PromptEncoder<B>, len: usize) -> Vec<i64> {
    let text = format_prompt(&"a watercolor fox in a snowy birch forest, ".repeat(200));
    let ids = enc.tokenizer().encode(&text, false).expect("tokenizes");
    ids[..len].iter().map(|&i| i64::from(i)).collect()
}

fn prefill(c: &mut Criterion) {
    let dev = Default::default();
    let pipeline = testdata().join("tiny-qwen-image");
    let enc = PromptEncoder::<B>::from_pipeline_dir(&pipeline, &dev).expect("tiny pipeline loads");
    let model: &QwenTextEncoder<B> = enc.encoder();

    let mut g = c.benchmark_group("prefill_tiny");
    g.sample_size(20).measurement_time(Duration::from_secs(5));
    for len in [128, 1058] {
        let t = |v: Vec<i64>| Tensor::<B, 2, Int>::from_data(TensorData::new(v, [1, len]), &dev);
        let (input, mask) = (t(ids(&enc, len)), t(vec![1; len]));
        g.throughput(Throughput::Elements(len as u64));
        g.bench_function(format!("b1_l{len}"), |b| {
            b.iter(|| {
                let out = model.forward(input.clone(), mask.clone()).expect("forward");
                black_box(out.into_data())
            })
        });
    }
    g.finish();

    let prompts: Vec<String> = [
        "A cat on a windowsill",
        " ",
        "一只可爱的猫坐在窗台上，宫崎骏风格。",
    ]
    .map(String::from)
    .to_vec();
    let tokens = enc.tokenize(&prompts).expect("tokenizes");
    let mut g = c.benchmark_group("encode_prompt_tiny");
    g.sample_size(20).measurement_time(Duration::from_secs(5));
    g.throughput(Throughput::Elements(
        tokens.lens.iter().sum::<usize>() as u64
    ));
    g.bench_function("batch3", |b| {
        b.iter(|| black_box(enc.encode(&prompts, 512).map(|o| o.embeds.into_data())))
    });
    g.finish();
}

criterion_group!(benches, prefill);
criterion_main!(benches);
