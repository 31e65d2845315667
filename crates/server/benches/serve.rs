//! What the API costs over the pipeline in process, on the tiny text-to-image case (64×64,
//! 6 steps, CFG on, PNG) on the CPU: `in_process` (generate + PNG encode, what `generate --out`
//! does), `http` (one request at a time through `POST /v1/images/generations`: queue, JSON,
//! base64), and `http_queue_8` (8 requests at once against `--max-queue 8`; criterion's
//! elements/s is requests/s). Goal: `http` within 5 % or 20 ms of `in_process`.
//!
//! `cargo bench -p server --bench serve` (or `--profile dev` for a quicker build).

use std::path::Path;
use std::time::{Duration, Instant};

use burn::backend::Flex;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use pipeline::{InitialLatents, Pipeline, Request};
use server::{Config, Engine, OutputFormat, PipelineEngine, ServedModel, Server, encode_rgb};

const PROMPT: &str = "Doraemon is eating dorayaki";

fn post(agent: &ureq::Agent, url: &str, body: &str) {
    let mut r = agent
        .post(url)
        .header("content-type", "application/json")
        .send(body)
        .expect("request");
    assert_eq!(r.status(), 200);
    r.body_mut().read_to_vec().expect("answer");
}

fn serve(c: &mut Criterion) {
    let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/tiny-qwen-image");
    let model = model.to_string_lossy().into_owned();
    let pipe = Pipeline::<Flex>::load(&model, &Default::default()).expect("tiny pipeline");
    let req = Request::new(PROMPT, 64, 64)
        .negative_prompt(" ")
        .true_cfg_scale(4.0)
        .steps(6)
        .latents(InitialLatents::Seed(42));

    let mut config = Config::new(ServedModel::new(&model, None));
    config.addr = "127.0.0.1:0".parse().expect("addr");
    config.max_queue = 8;
    let server = Server::bind(config).expect("bind");
    let url = format!("http://{}/v1/images/generations", server.local_addr());
    let health = format!("http://{}/health", server.local_addr());
    let stop = server.stop_handle();
    let m = model.clone();
    let thread = std::thread::spawn(move || {
        server.run(Box::new(move || {
            let e = PipelineEngine::<Flex>::load(&m, None, &Default::default())
                .map_err(|e| e.to_string())?;
            Ok(Box::new(e) as Box<dyn Engine>)
        }))
    });
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let deadline = Instant::now() + Duration::from_secs(120);
    while agent.get(&health).call().map(|r| r.status().as_u16()).ok() != Some(200) {
        assert!(Instant::now() < deadline, "the server never became ready");
        std::thread::sleep(Duration::from_millis(50));
    }
    let body = serde_json::json!({"prompt": PROMPT, "size": "64x64", "num_inference_steps": 6,
        "negative_prompt": " ", "true_cfg_scale": 4.0, "seed": 42, "generator_device": "cpu",
        "output_format": "png"})
    .to_string();

    let mut g = c.benchmark_group("serve_tiny_64x64_6steps_cfg");
    g.sample_size(10);
    g.bench_function("in_process", |b| {
        b.iter(|| {
            let out = pipe.generate(&req, &mut |_| {}).expect("generate");
            encode_rgb(&out.image, OutputFormat::Png, 75).expect("png")
        })
    });
    g.bench_function("http", |b| b.iter(|| post(&agent, &url, &body)));
    g.throughput(Throughput::Elements(8));
    g.bench_function("http_queue_8", |b| {
        b.iter(|| {
            std::thread::scope(|s| {
                for _ in 0..8 {
                    s.spawn(|| post(&agent, &url, &body));
                }
            })
        })
    });
    g.finish();
    stop.stop();
    thread.join().expect("server thread").expect("server");
}

criterion_group!(benches, serve);
criterion_main!(benches);
