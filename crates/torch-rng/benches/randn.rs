//! Values per second of `randn_f32(262144)` (one Qwen-Image 1024x1024 latent) and of the bf16
//! and f64 draws, for the CPU generator and the CUDA generator (H100 layout) computed on the CPU.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use torch_rng::{CudaGenerator, CudaPlatform, Generator};

const N: usize = 16 * 128 * 128;

fn randn(c: &mut Criterion) {
    let mut group = c.benchmark_group("randn");
    group.throughput(Throughput::Elements(N as u64));
    group.bench_function("f32_262144", |b| {
        let mut g = Generator::new(42);
        b.iter(|| black_box(g.randn_f32(black_box(N))));
    });
    group.bench_function("bf16_262144", |b| {
        let mut g = Generator::new(42);
        b.iter(|| black_box(g.randn_bf16(black_box(N))));
    });
    group.bench_function("f64_262144", |b| {
        let mut g = Generator::new(42);
        b.iter(|| black_box(g.randn_f64(black_box(N))));
    });
    group.finish();
}

fn cuda_randn(c: &mut Criterion) {
    let mut group = c.benchmark_group("cuda_randn");
    group.throughput(Throughput::Elements(N as u64));
    group.bench_function("f32_262144", |b| {
        let mut g = CudaGenerator::new(42, CudaPlatform::H100);
        b.iter(|| black_box(g.randn_f32(black_box(N))));
    });
    group.bench_function("bf16_262144", |b| {
        let mut g = CudaGenerator::new(42, CudaPlatform::H100);
        b.iter(|| black_box(g.randn_bf16(black_box(N))));
    });
    group.bench_function("f64_262144", |b| {
        let mut g = CudaGenerator::new(42, CudaPlatform::H100);
        b.iter(|| black_box(g.randn_f64(black_box(N))));
    });
    group.finish();
}

criterion_group!(benches, randn, cuda_randn);
criterion_main!(benches);
