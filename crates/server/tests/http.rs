//! The API's HTTP behaviour with a fake engine: answers and their shape, every error status,
//! the queue (503 with Retry-After), cancellation when a client goes away, the request timeout,
//! panics, the API key, URL answers, models, health, metrics and a clean stop.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use pipeline::PipelineKind;
use serde_json::json;

use crate::common::{
    Fake, Part, TestServer, get, get_with, images, multipart, png, post, post_json,
};

const FAST: Duration = Duration::from_millis(1);

fn t2i() -> TestServer {
    TestServer::start(Fake::new(PipelineKind::TextToImage, FAST), |_| {})
}

#[test]
fn health_is_503_while_loading_then_200() {
    let (go, gate) = mpsc::channel();
    let s = TestServer::start_gated(Fake::new(PipelineKind::TextToImage, FAST), |_| {}, gate);
    let h = get(&s.url("/health"));
    assert_eq!(h.status, 503);
    assert_eq!(h.json()["status"], "loading");
    let g = post_json(
        &s.url("/v1/images/generations"),
        &json!({"prompt": "a cat"}),
    );
    assert_eq!(g.status, 503, "{}", String::from_utf8_lossy(&g.body));
    assert!(g.header("retry-after").is_some());
    go.send(()).unwrap();
    s.wait_ready();
    let h = get(&s.url("/health"));
    assert_eq!(h.json()["pipeline_class"], "QwenImagePipeline");
}

#[test]
fn generations_answer_as_openai_with_sglang_seeds() {
    let s = t2i();
    let a = post_json(
        &s.url("/v1/images/generations"),
        &json!({"prompt": "a cat", "size": "32x48", "n": 2, "seed": 5,
                "num_inference_steps": 3, "output_format": "png", "generator_device": "cpu",
                "frobnicate": true, "quality": "hd"}),
    );
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    let j = a.json();
    assert_eq!(a.header("x-request-id"), j["id"].as_str());
    assert_eq!(a.header("x-ignored-fields"), Some("frobnicate, quality"));
    assert!(j["created"].as_u64().unwrap() > 1_600_000_000);
    assert_eq!(j["generator"], "torch-cpu");
    assert_eq!(j["seed"], 5);
    assert_eq!(j["data"][1]["seed"], 6);
    assert_eq!(j["data"][0]["revised_prompt"], "a cat");
    assert!(j["timings"]["denoising_s"].as_f64().unwrap() > 0.0);
    assert!(j["timings"]["queue_wait_s"].is_number());
    let imgs = images(&a);
    assert_eq!(imgs.len(), 2);
    // width 32, height 48; the fake paints the seed into red.
    assert_eq!((imgs[0].width(), imgs[0].height()), (32, 48));
    assert_eq!(imgs[1].to_rgb8().get_pixel(0, 0)[0], 6);
    // Defaults: SGLang's seed 42, the CUDA generator, JPEG.
    let d = post_json(
        &s.url("/v1/images/generations"),
        &json!({"prompt": "x", "size": "16x16", "num_inference_steps": 1}),
    );
    let j = d.json();
    assert_eq!(
        (j["seed"].as_u64(), j["generator"].as_str()),
        (Some(42), Some("torch-cuda:h100"))
    );
    assert_eq!(j["output_format"], "jpg");
    // width/height win over size.
    let w = post_json(
        &s.url("/v1/images/generations"),
        &json!({"prompt": "x", "size": "16x16", "width": 32, "num_inference_steps": 1}),
    );
    assert_eq!(images(&w)[0].width(), 32);
    assert_eq!(images(&w)[0].height(), 16);
}

#[test]
fn bad_values_name_their_field() {
    let s = t2i();
    let url = s.url("/v1/images/generations");
    let cases = [
        (
            json!({"prompt": "x", "num_inference_steps": 0}),
            "num_inference_steps",
        ),
        (
            json!({"prompt": "x", "num_inference_steps": 100000}),
            "num_inference_steps",
        ),
        (json!({"prompt": "x", "size": "7x7"}), "size"),
        (json!({"prompt": "x", "size": "big"}), "size"),
        (json!({"prompt": "x", "width": 7, "height": 64}), "width"),
        (json!({"prompt": "x", "n": "two"}), "n"),
        (json!({"prompt": "x", "seed": -1}), "seed"),
        (json!({"prompt": "x", "n": 2, "seed": [1, 2, 3]}), "seed"),
        (
            json!({"prompt": "x", "output_format": "gif"}),
            "output_format",
        ),
        (
            json!({"prompt": "x", "response_format": "bytes"}),
            "response_format",
        ),
        (
            json!({"prompt": "x", "generator_device": "tpu"}),
            "generator_device",
        ),
        (
            json!({"prompt": "x", "guidance_scale": "lots"}),
            "guidance_scale",
        ),
        (
            json!({"prompt": "x", "max_sequence_length": 0}),
            "max_sequence_length",
        ),
        (json!({"prompt": ""}), "prompt"),
        (json!({"size": "64x64"}), "prompt"),
        (json!({"prompt": 5}), "prompt"),
    ];
    for (body, param) in cases {
        let a = post_json(&url, &body);
        assert_eq!(
            a.status,
            400,
            "{body}: {}",
            String::from_utf8_lossy(&a.body)
        );
        assert_eq!(a.param(), param, "{body}");
        assert!(a.header("x-request-id").is_some());
    }
    let a = post(&url, "application/json", b"{\"prompt\": ", &[]);
    assert_eq!(a.status, 400);
    assert!(
        a.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("JSON")
    );
    let a = post(&url, "text/plain", b"{\"prompt\": \"x\"}", &[]);
    assert_eq!(a.status, 415);
    let a = post_json(&url, &json!({"prompt": "x", "model": "someone/else"}));
    assert_eq!((a.status, a.param().as_str()), (404, "model"));
    let ok = post_json(
        &url,
        &json!({"prompt": "x", "model": "fake/Qwen-Image", "num_inference_steps": 1, "size": "16x16"}),
    );
    assert_eq!(ok.status, 200);
    // An engine error is a 500 with its message, a panic too; the server goes on.
    let a = post_json(&url, &json!({"prompt": "panic", "num_inference_steps": 1}));
    assert_eq!(a.status, 500);
    assert!(
        a.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("panic")
    );
    let a = post_json(
        &url,
        &json!({"prompt": "x", "num_inference_steps": 1, "size": "16x16"}),
    );
    assert_eq!(a.status, 200);
}

#[test]
fn bodies_over_the_limit_are_413() {
    let s = TestServer::start(Fake::new(PipelineKind::EditPlus, FAST), |c| {
        c.limits.json_body = 64;
        c.limits.form_body = 1024;
    });
    let long = "x".repeat(200);
    let a = post_json(&s.url("/v1/images/generations"), &json!({"prompt": long}));
    assert_eq!(a.status, 413);
    let big = vec![0u8; 4096];
    let (ct, body) = multipart(&[
        Part::Text("prompt", "x"),
        Part::File("image", "a.png", &big),
    ]);
    let a = post(&s.url("/v1/images/edits"), &ct, &body, &[]);
    assert_eq!(a.status, 413, "{}", String::from_utf8_lossy(&a.body));
}

#[test]
fn edits_read_files_urls_and_refuse_bad_inputs() {
    let s = TestServer::start(Fake::new(PipelineKind::EditPlus, FAST), |_| {});
    let url = s.url("/v1/images/edits");
    let img = png(24, 40);
    let (ct, body) = multipart(&[
        Part::Text("prompt", "make it blue"),
        Part::File("image[]", "a.png", &img),
        Part::File("image[]", "b.png", &img),
        Part::Text("num_inference_steps", "2"),
        Part::Text("num_frames", "1"),
        Part::File("mask", "m.png", &img),
    ]);
    let a = post(&url, &ct, &body, &[]);
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    assert_eq!(a.header("x-ignored-fields"), Some("mask, num_frames"));
    let (ct, body) = multipart(&[
        Part::Text("prompt", "x"),
        Part::File("image", "notes.txt", b"just some text"),
    ]);
    let a = post(&url, &ct, &body, &[]);
    assert_eq!((a.status, a.param().as_str()), (422, "image"));
    assert!(
        a.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("notes.txt")
    );
    let (ct, body) = multipart(&[Part::Text("prompt", "x")]);
    let a = post(&url, &ct, &body, &[]);
    assert_eq!((a.status, a.param().as_str()), (400, "image"));
    let (ct, body) = multipart(&[
        Part::Text("prompt", "x"),
        Part::Text("url", "http://169.254.169.254/latest/meta-data"),
    ]);
    let a = post(&url, &ct, &body, &[]);
    assert_eq!((a.status, a.param().as_str()), (400, "url"));
    assert!(
        a.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("--allow-private-urls")
    );
    let a = post(
        &url,
        "multipart/form-data; boundary=zzz",
        b"garbage without boundary",
        &[],
    );
    assert_eq!(a.status, 400, "{}", String::from_utf8_lossy(&a.body));
    let a = post_json(&url, &json!({"prompt": "x"}));
    assert_eq!(a.status, 415);
    // A text-to-image model takes no input image; an edit model needs one.
    let t = t2i();
    let (ct, body) = multipart(&[
        Part::Text("prompt", "x"),
        Part::File("image", "a.png", &img),
    ]);
    let a = post(&t.url("/v1/images/edits"), &ct, &body, &[]);
    assert_eq!((a.status, a.param().as_str()), (400, "image"));
    let a = post_json(&s.url("/v1/images/generations"), &json!({"prompt": "x"}));
    assert_eq!((a.status, a.param().as_str()), (400, "image"));
}

#[test]
fn url_answers_are_served_until_they_expire() {
    let s = t2i();
    let a = post_json(
        &s.url("/v1/images/generations"),
        &json!({"prompt": "x", "size": "16x16", "num_inference_steps": 1, "response_format": "url", "output_format": "png", "n": 2}),
    );
    assert_eq!(a.status, 200);
    let j = a.json();
    for (k, item) in j["data"].as_array().unwrap().iter().enumerate() {
        let path = item["url"].as_str().unwrap();
        let img = get(&s.url(path));
        assert_eq!(img.status, 200, "{path}");
        assert_eq!(img.header("content-type"), Some("image/png"));
        let decoded = image::load_from_memory(&img.body).unwrap().to_rgb8();
        assert_eq!(decoded.get_pixel(0, 0)[0], 42 + k as u8);
    }
    assert_eq!(get(&s.url("/v1/images/nope/content")).status, 404);
    let gone = TestServer::start(Fake::new(PipelineKind::TextToImage, FAST), |c| {
        c.url_ttl = Duration::ZERO;
    });
    let a = post_json(
        &gone.url("/v1/images/generations"),
        &json!({"prompt": "x", "size": "16x16", "num_inference_steps": 1, "response_format": "url"}),
    );
    let path = a.json()["data"][0]["url"].as_str().unwrap().to_string();
    assert_eq!(get(&gone.url(&path)).status, 404);
}

#[test]
fn the_key_guards_the_api_but_not_health_or_metrics() {
    let s = TestServer::start(Fake::new(PipelineKind::TextToImage, FAST), |c| {
        c.api_key = server::ApiKey::new("s3cret");
    });
    let body = json!({"prompt": "x", "size": "16x16", "num_inference_steps": 1}).to_string();
    let url = s.url("/v1/images/generations");
    let a = post(&url, "application/json", body.as_bytes(), &[]);
    assert_eq!(a.status, 401);
    assert_eq!(a.json()["error"]["type"], "authentication_error");
    let a = post(
        &url,
        "application/json",
        body.as_bytes(),
        &[("authorization", "Bearer nope")],
    );
    assert_eq!(a.status, 401);
    let a = post(
        &url,
        "application/json",
        body.as_bytes(),
        &[("authorization", "Bearer s3cret")],
    );
    assert_eq!(a.status, 200);
    assert_eq!(get(&s.url("/v1/models")).status, 401);
    let m = get_with(&s.url("/v1/models"), &[("authorization", "Bearer s3cret")]);
    assert_eq!(m.json()["data"][0]["id"], "fake");
    assert_eq!(get(&s.url("/health")).status, 200);
    assert_eq!(get(&s.url("/metrics")).status, 200);
    assert!(!format!("{:?}", server::ApiKey::new("s3cret")).contains("s3cret"));
}

#[test]
fn models_metrics_and_unknown_routes() {
    let s = t2i();
    let m = get(&s.url("/v1/models")).json();
    assert_eq!(m["object"], "list");
    assert_eq!(m["data"][0]["id"], "fake");
    assert_eq!(m["data"][0]["pipeline_class"], "QwenImagePipeline");
    assert_eq!(get(&s.url("/v1/models/fake")).status, 200);
    assert_eq!(get(&s.url("/v1/models/fake/Qwen-Image")).status, 200);
    let a = get(&s.url("/v1/models/other/model"));
    assert_eq!((a.status, a.param().as_str()), (404, "model"));
    assert_eq!(get(&s.url("/v2/nothing")).status, 404);
    post_json(
        &s.url("/v1/images/generations"),
        &json!({"prompt": "x", "size": "16x16", "num_inference_steps": 2}),
    );
    let text = String::from_utf8(get(&s.url("/metrics")).body).unwrap();
    for name in [
        "qwen_serve_requests_total{endpoint=\"/v1/images/generations\",status=\"200\"} 1",
        "qwen_serve_queue_depth 0",
        "qwen_serve_queue_wait_seconds_count 1",
        "qwen_serve_request_duration_seconds_count 1",
        "qwen_serve_denoise_steps_total 2",
        "qwen_serve_denoise_steps_per_second",
    ] {
        assert!(text.contains(name), "{name} not in\n{text}");
    }
}

/// Send `n` slow requests at once; their statuses.
fn burst(s: &TestServer, n: usize, steps: usize) -> Vec<u16> {
    let handles: Vec<_> = (0..n)
        .map(|_| {
            let url = s.url("/v1/images/generations");
            std::thread::spawn(move || {
                post_json(
                    &url,
                    &json!({"prompt": "x", "size": "16x16", "num_inference_steps": steps}),
                )
                .status
            })
        })
        .collect();
    handles.into_iter().map(|h| h.join().unwrap()).collect()
}

#[test]
fn a_full_queue_answers_503_with_retry_after() {
    let s = TestServer::start(
        Fake::new(PipelineKind::TextToImage, Duration::from_millis(20)),
        |c| {
            c.max_queue = 1;
        },
    );
    let statuses = burst(&s, 5, 15);
    let ok = statuses.iter().filter(|&&c| c == 200).count();
    let busy = statuses.iter().filter(|&&c| c == 503).count();
    // One runs, one waits, the rest are refused (a request that comes late may find room).
    assert_eq!(ok + busy, 5, "{statuses:?}");
    assert!(ok >= 2 && busy >= 1, "{statuses:?}");
    let a = post_json(
        &s.url("/v1/images/generations"),
        &json!({"prompt": "x", "size": "16x16", "num_inference_steps": 1}),
    );
    assert_eq!(a.status, 200, "alive after the burst");
    // While one runs and one waits, the next is refused with a Retry-After.
    let slow = burst_in_background(&s, 2, 25);
    std::thread::sleep(Duration::from_millis(150));
    let a = post_json(&s.url("/v1/images/generations"), &json!({"prompt": "x"}));
    assert_eq!(a.status, 503);
    assert!(a.header("retry-after").unwrap().parse::<u64>().unwrap() >= 1);
    assert_eq!(a.json()["error"]["code"], "queue_full");
    assert!(slow.into_iter().all(|h| h.join().unwrap() == 200));
}

fn burst_in_background(
    s: &TestServer,
    n: usize,
    steps: usize,
) -> Vec<std::thread::JoinHandle<u16>> {
    (0..n)
        .map(|i| {
            let url = s.url("/v1/images/generations");
            std::thread::sleep(Duration::from_millis(20 * i as u64));
            std::thread::spawn(move || {
                post_json(
                    &url,
                    &json!({"prompt": "x", "size": "16x16", "num_inference_steps": steps}),
                )
                .status
            })
        })
        .collect()
}

#[test]
fn a_client_that_goes_away_frees_the_worker() {
    let s = TestServer::start(
        Fake::new(PipelineKind::TextToImage, Duration::from_millis(20)),
        |_| {},
    );
    let addr = s.base.trim_start_matches("http://").to_string();
    let body = json!({"prompt": "x", "size": "16x16", "num_inference_steps": 500}).to_string();
    let mut stream = TcpStream::connect(&addr).unwrap();
    write!(
        stream,
        "POST /v1/images/generations HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while s.counters.steps.load(Ordering::SeqCst) < 3 {
        assert!(Instant::now() < deadline, "the job never started");
        std::thread::sleep(Duration::from_millis(10));
    }
    drop(stream);
    // 500 steps would take 10 s; the next request is answered long before.
    let started = Instant::now();
    let a = post_json(
        &s.url("/v1/images/generations"),
        &json!({"prompt": "x", "size": "16x16", "num_inference_steps": 2}),
    );
    assert_eq!(a.status, 200);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(s.counters.cancelled.load(Ordering::SeqCst), 1);
    assert!(s.counters.steps.load(Ordering::SeqCst) < 100);
    let text = String::from_utf8(get(&s.url("/metrics")).body).unwrap();
    assert!(text.contains("status=\"499\"} 1"), "{text}");
}

#[test]
fn the_request_timeout_answers_504_and_cancels() {
    let s = TestServer::start(
        Fake::new(PipelineKind::TextToImage, Duration::from_millis(20)),
        |c| {
            c.request_timeout = Some(Duration::from_millis(300));
        },
    );
    let a = post_json(
        &s.url("/v1/images/generations"),
        &json!({"prompt": "x", "size": "16x16", "num_inference_steps": 500}),
    );
    assert_eq!(a.status, 504);
    assert_eq!(a.json()["error"]["code"], "timeout");
    let a = post_json(
        &s.url("/v1/images/generations"),
        &json!({"prompt": "x", "size": "16x16", "num_inference_steps": 2}),
    );
    assert_eq!(a.status, 200);
    assert_eq!(s.counters.cancelled.load(Ordering::SeqCst), 1);
}

#[test]
fn stopping_cancels_the_running_job_and_returns() {
    let s = TestServer::start(
        Fake::new(PipelineKind::TextToImage, Duration::from_millis(20)),
        |_| {},
    );
    let url = s.url("/v1/images/generations");
    let running = std::thread::spawn(move || {
        post_json(
            &url,
            &json!({"prompt": "x", "size": "16x16", "num_inference_steps": 500}),
        )
        .status
    });
    while s.counters.steps.load(Ordering::SeqCst) < 2 {
        std::thread::sleep(Duration::from_millis(10));
    }
    let counters = s.counters.clone();
    let started = Instant::now();
    s.stop().unwrap();
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(running.join().unwrap(), 503);
    assert_eq!(counters.cancelled.load(Ordering::SeqCst), 1);
}

#[test]
fn a_failed_load_is_an_error_of_run() {
    let mut config = server::Config::new(server::ServedModel::new("x", None));
    config.addr = "127.0.0.1:0".parse().unwrap();
    let server = server::Server::bind(config).unwrap();
    let e = server
        .run(Box::new(|| Err("no weights here".into())))
        .unwrap_err();
    assert!(e.to_string().contains("no weights here"), "{e}");
}

#[test]
fn raw_http_gets_an_answer_with_a_request_id() {
    let s = t2i();
    let addr = s.base.trim_start_matches("http://").to_string();
    let mut stream = TcpStream::connect(&addr).unwrap();
    write!(
        stream,
        "GET /health HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(
        text.to_ascii_lowercase().contains("x-request-id: "),
        "{text}"
    );
}

/// SGLang captions any whitespace-only Layered prompt (`prompt.isspace()`): the request reaches
/// the pipeline with the empty prompt, which it captions; a prompt with text is kept as sent.
#[test]
fn a_whitespace_only_layered_prompt_is_handed_on_to_be_captioned() {
    let s = TestServer::start(Fake::new(PipelineKind::Layered, FAST), |_| {});
    let url = s.url("/v1/images/edits");
    let img = png(24, 40);
    for (prompt, handed_on) in [("\t\n  ", ""), ("\u{3000}", ""), (" a cat ", " a cat ")] {
        let (ct, body) = multipart(&[
            Part::Text("prompt", prompt),
            Part::File("image", "a.png", &img),
            Part::Text("num_inference_steps", "2"),
            Part::Text("output_format", "png"),
        ]);
        let a = post(&url, &ct, &body, &[]);
        assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
        assert_eq!(
            a.json()["data"][0]["revised_prompt"],
            handed_on,
            "{prompt:?}"
        );
    }
}
