//! The Edit prompt path on the CPU (Flex, f32), on the golden cases of testdata/text-encoder-mm:
//! the language-model side from precomputed image embeddings (tokenize with placeholders, M-RoPE
//! positions, scatter, model, drop 64, re-pad), and the whole path from decoded images
//! (processor + vision tower + the rest).
//!
//! `cargo bench -p text-encoder --bench multimodal`; transformers' numbers for the same work come
//! from `.venv-reference/bin/python xtask/reference/gen_text_encoder_mm.py --bench` (run by hand).

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::Duration;

use burn::backend::Flex;
use criterion::{Criterion, criterion_group, criterion_main};
use text_encoder::{PromptEncoder, VisionPositions, load_image};

type B = Flex;

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata")
}

fn multimodal(c: &mut Criterion) {
    let dev = Default::default();
    let mm = testdata().join("text-encoder-mm");
    let cases: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(mm.join("cases.json")).expect("cases.json"))
            .expect("JSON");
    let mut g = c.benchmark_group("edit_prompt_tiny");
    g.sample_size(20).measurement_time(Duration::from_secs(5));
    for (case, folder) in [
        ("edit_batch", "tiny-qwen-image-edit"),
        ("edit_plus", "tiny-qwen-image-edit-plus"),
    ] {
        let enc = PromptEncoder::<B>::from_pipeline_dir(testdata().join(folder), &dev)
            .expect("tiny Edit folder loads");
        let info = &cases["cases"][case];
        let prompts: Vec<String> =
            serde_json::from_value(info["prompts"].clone()).expect("prompts");
        let files: Vec<String> = serde_json::from_value(info["images"].clone()).expect("images");
        let images: Vec<_> = files
            .iter()
            .map(|f| load_image(mm.join(f)).expect("image"))
            .collect();
        let per_prompt: Vec<Vec<_>> = if prompts.len() == images.len() {
            images.into_iter().map(|i| vec![i]).collect()
        } else {
            vec![images]
        };
        let flat: Vec<_> = per_prompt.iter().flatten().cloned().collect();
        let mut embeds = enc.image_embeds(&flat).expect("vision").into_iter();
        let embeds: Vec<Vec<_>> = per_prompt
            .iter()
            .map(|l| embeds.by_ref().take(l.len()).collect())
            .collect();
        g.bench_function(format!("{case}/from_image_embeds"), |b| {
            b.iter(|| {
                let out = enc
                    .encode_with_image_embeds(&prompts, &embeds, VisionPositions::Mrope)
                    .expect("encodes");
                black_box(out.embeds.into_data())
            })
        });
        g.bench_function(format!("{case}/from_images"), |b| {
            b.iter(|| {
                let out = enc
                    .encode_with_images(&prompts, &per_prompt, VisionPositions::Mrope)
                    .expect("encodes");
                black_box(out.embeds.into_data())
            })
        });
    }
    g.finish();
}

criterion_group!(benches, multimodal);
criterion_main!(benches);
