//! Load time of each path and tokenization throughput on the 250 KB golden corpus.
//!
//! `cargo bench -p tokenizer-loader`; Python's numbers for the same work come from
//! `xtask/reference/bench_tokenizer.py` (run by hand).

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tokenizer_loader::{QwenTokenizer, TokenizerPath};

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata")
}

fn load(c: &mut Criterion) {
    let mut g = c.benchmark_group("load");
    g.sample_size(10).measurement_time(Duration::from_secs(10));
    let pipeline = testdata().join("tiny-qwen-image");
    let qwen25 = testdata().join("qwen2.5-tokenizer");
    g.bench_function("slow_vocab_merges", |b| {
        b.iter(|| QwenTokenizer::from_pipeline_dir(&pipeline).map(black_box))
    });
    g.bench_function("fast_tokenizer_json", |b| {
        b.iter(|| QwenTokenizer::from_folder_as(&qwen25, TokenizerPath::Fast).map(black_box))
    });
    g.finish();
}

fn encode(c: &mut Criterion) {
    let Ok(corpus) = std::fs::read_to_string(testdata().join("tokenizer/corpus.txt")) else {
        eprintln!("testdata/tokenizer/corpus.txt missing: run the fixtures first");
        return;
    };
    let tokenizers = [
        (
            "slow",
            QwenTokenizer::from_pipeline_dir(testdata().join("tiny-qwen-image")),
        ),
        (
            "fast",
            QwenTokenizer::from_folder_as(
                testdata().join("qwen2.5-tokenizer"),
                TokenizerPath::Fast,
            ),
        ),
    ];
    let docs: Vec<&str> = corpus.split("<|endoftext|>").collect();
    let mut g = c.benchmark_group("encode_corpus");
    g.throughput(Throughput::Bytes(corpus.len() as u64));
    g.sample_size(10).measurement_time(Duration::from_secs(10));
    for (name, tok) in &tokenizers {
        let Ok(tok) = tok else {
            eprintln!("{name} tokenizer failed to load");
            continue;
        };
        // One 250 KB string: the BPE cache warms up within the first pass, as in Python.
        g.bench_function(format!("{name}_whole"), |b| {
            b.iter(|| tok.encode(black_box(&corpus), false))
        });
        // ~340 documents in one padded batch (rayon-parallel in `tokenizers`).
        g.bench_function(format!("{name}_batch_docs"), |b| {
            b.iter(|| tok.encode_batch_padded(black_box(&docs), usize::MAX))
        });
    }
    g.finish();
}

criterion_group!(benches, load, encode);
criterion_main!(benches);
