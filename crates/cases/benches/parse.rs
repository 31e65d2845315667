//! Parsing a case file of 1k, 10k and 100k cases: the time per case should stay flat (the parser
//! names lines from one index of the file's newlines; it used to count them from the start for
//! every case, quadratic in the file's size).
//!
//! `cargo bench -p cases --bench parse`

use std::fmt::Write;
use std::path::Path;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

fn suite(n: usize) -> String {
    let mut text = String::with_capacity(n * 120);
    for i in 0..n {
        let _ = write!(
            text,
            "[[case]]\nid = \"case_{i}\"\nmodel = \"Qwen/Qwen-Image\"\nprompt = \"a cat number {i}\"\n\
             height = 64\nwidth = 64\nseed = {i}\n\n"
        );
    }
    text
}

fn parse(c: &mut Criterion) {
    let mut group = c.benchmark_group("parse_suite");
    group.sample_size(10);
    for n in [1_000, 10_000, 100_000] {
        let text = suite(n);
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::from_parameter(n), &text, |b, text| {
            b.iter(|| cases::parse_suite(text, Path::new("/nowhere/suite.toml")).expect("parses"))
        });
    }
    group.finish();
}

criterion_group!(benches, parse);
criterion_main!(benches);
