//! Resolve cases against the loopback server with 20 ms added per request: 50 cases by probing
//! (`resolve_50_cases_20ms`), and 80 cases from a pinned commit's file list
//! (`resolve_80_cases_20ms`, see [`bench_listing`]).
//!
//! * `cold/parallel{32,16}` vs `cold/sequential`: a fresh cache each iteration; sequential probes one URL
//!   after another (`max_in_flight(1)`) and stops at the first decisive answer, parallel probes a
//!   wave of candidates at once and many cases at once. The ratio is the speed-up.
//! * `warm`: the cache already holds every resolution; the server counts requests (must be 0).
//!
//! Retries: 2 attempts with a 1 ms backoff on both sides, so that a "No" (a 404 must persist across
//! every attempt) costs 2 round trips instead of upstream's 5 plus 15 s of sleeps; parallelism
//! overlaps round trips, so the retry count scales both sides alike.

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use gt_resolver::{Backoff, GtQuery, GtRoot, Platform, Resolver};
use support::TestServer;

const REV: &str = "4ce5eeb9606e378478b2d0964d83e960af4e88cf";

fn gt(rel: &str) -> String {
    format!("/org/ci-data/{REV}/diffusion-ci/consistency_gt/{rel}")
}

/// 20 declared official images, 20 images of ours, 5 platform images of ours, 5 videos of ours.
fn tree(server: &TestServer) -> Vec<GtQuery> {
    let mut queries = Vec::new();
    let mut declared = serde_json::Map::new();
    for i in 0..50 {
        let case = format!("case_{i:02}");
        match i {
            0..20 => {
                server.file(&gt(&format!("official_generated/{case}_1gpu.png")), b"o");
                declared.insert(
                    case.clone(),
                    serde_json::json!({"outputs": [format!("{case}_1gpu.png")]}),
                );
                queries.push(GtQuery::image(&case, 1, Some("png"), Platform::H100));
            }
            20..40 => {
                server.file(&gt(&format!("sglang_generated/{case}_1gpu.png")), b"s");
                queries.push(GtQuery::image(&case, 1, Some("png"), Platform::H100));
            }
            40..45 => {
                server.file(&gt(&format!("sglang_generated/h100/{case}_1gpu.jpg")), b"s");
                queries.push(GtQuery::image(&case, 1, None, Platform::H100));
            }
            _ => {
                for f in ["frame_0", "frame_mid", "frame_last"] {
                    server.file(&gt(&format!("sglang_generated/{case}_1gpu_{f}.png")), b"v");
                }
                queries.push(GtQuery::video(&case, 1, Platform::H100));
            }
        }
    }
    let map = serde_json::json!({ "cases": declared }).to_string();
    server.file(&gt("official_generated/case_map.json"), map.as_bytes());
    queries
}

fn resolver(server: &TestServer, cache: &std::path::Path, in_flight: usize) -> Resolver {
    Resolver::builder()
        .root(&GtRoot::github(server.url(), "org/ci-data", REV, false).expect("root"))
        .backoff(Backoff {
            attempts: 2,
            initial: Duration::from_millis(1),
            max: Duration::from_millis(16),
        })
        .timeout(Duration::from_secs(10))
        .max_in_flight(in_flight)
        .cache_dir(cache)
        .build()
        .expect("resolver")
}

fn run(server: &TestServer, queries: &[GtQuery], cache: &std::path::Path, in_flight: usize) {
    for r in resolver(server, cache, in_flight).resolve_many(queries) {
        assert!(r.expect("resolve").is_found());
    }
}

fn bench(c: &mut Criterion) {
    let server = TestServer::start();
    let queries = tree(&server);
    server.set_latency(Duration::from_millis(20));

    let mut g = c.benchmark_group("resolve_50_cases_20ms");
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(1))
        .measurement_time(Duration::from_secs(5));
    for (name, in_flight) in [
        ("cold/parallel32", 32),
        ("cold/parallel16", 16),
        ("cold/sequential", 1),
    ] {
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let cache = tempfile::tempdir().expect("tempdir");
                    let start = Instant::now();
                    run(&server, &queries, cache.path(), in_flight);
                    total += start.elapsed();
                }
                total
            })
        });
    }

    let warm = tempfile::tempdir().expect("tempdir");
    run(&server, &queries, warm.path(), 32);
    server.reset_counts();
    g.bench_function("warm", |b| {
        b.iter(|| run(&server, &queries, warm.path(), 32))
    });
    let requests = server.requests();
    eprintln!("warm cache: {requests} network requests over all warm iterations");
    assert_eq!(requests, 0, "a warm cache must not touch the network");
    g.finish();
}

/// 80 cases shaped like upstream's tree (`support::suite`), the loopback server playing both
/// raw.githubusercontent.com and the git/trees API, 20 ms added per request.
///
/// * `cold/listing`: a fresh cache each iteration; upstream's real backoff (1-2-4-8 s), which
///   never fires because existence comes from the commit's file list (2 requests in all).
/// * `cold/probing`: the same without the listing, 2 attempts with a 1 ms backoff (so an absent
///   candidate costs 2 × (HEAD + GET) instead of upstream's 5 × 2 requests plus 15 s of sleeps).
/// * `warm`: the cache holds the listing and every resolution; the server counts requests.
fn bench_listing(c: &mut Criterion) {
    let server = TestServer::start();
    let suite = support::suite(&server);
    server.file(
        &support::api_path(),
        &support::tree_json(&suite.blobs, false),
    );
    server.set_latency(Duration::from_millis(20));
    let build = |cache: &std::path::Path, listing: bool| {
        let mut b = Resolver::builder()
            .root(&GtRoot::github(server.url(), "org/ci-data", support::REV, false).expect("root"))
            .github_api(server.url())
            .github_token(None)
            .tree_listing(listing)
            .timeout(Duration::from_secs(10))
            .cache_dir(cache);
        if !listing {
            b = b.backoff(Backoff {
                attempts: 2,
                initial: Duration::from_millis(1),
                max: Duration::from_millis(16),
            });
        }
        b.build().expect("resolver")
    };
    let run = |cache: &std::path::Path, listing: bool| {
        let got = build(cache, listing).resolve_many(&suite.queries);
        for (r, want) in got.iter().zip(&suite.expected) {
            assert_eq!(r.as_ref().expect("resolve").source, *want);
        }
    };

    let mut g = c.benchmark_group("resolve_80_cases_20ms");
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(1))
        .measurement_time(Duration::from_secs(5));
    for (name, listing) in [("cold/listing", true), ("cold/probing", false)] {
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let cache = tempfile::tempdir().expect("tempdir");
                    server.reset_counts();
                    let start = Instant::now();
                    run(cache.path(), listing);
                    total += start.elapsed();
                }
                total
            })
        });
        eprintln!("{name}: {} requests per cold run", server.requests());
    }
    let warm = tempfile::tempdir().expect("tempdir");
    run(warm.path(), true);
    server.reset_counts();
    g.bench_function("warm", |b| b.iter(|| run(warm.path(), true)));
    let requests = server.requests();
    eprintln!("warm cache: {requests} network requests over all warm iterations");
    assert_eq!(requests, 0, "a warm cache must not touch the network");
    g.finish();
}

criterion_group!(benches, bench, bench_listing);
criterion_main!(benches);
