//! `cargo xtask serve` on the tiny official folders, on 127.0.0.1 with a free port: text to
//! image, Edit, Edit-Plus (by URL) and Layered through the API give the same bytes as
//! `cargo xtask generate` with the same parameters (PNG, and JPEG as `--out x.jpg`); a burst of
//! slow requests with `--max-queue 2` gets 503s for the excess and right answers for the rest; a
//! client that goes away frees the worker; bad bodies, bad images and private URLs are 4xx that
//! name the problem; SIGTERM exits 0.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};

use crate::common::{stderr, testdata, xtask};

/// A running `cargo xtask serve`, killed if a test fails before it stops it.
struct Served {
    child: Child,
    base: String,
    log: Arc<Mutex<String>>,
}

impl Served {
    /// Start on `model` (under testdata/) with `extra` flags; waits for /health 200.
    fn start(model: &str, extra: &[&str]) -> Self {
        let mut child = xtask()
            .args(["serve", "--device", "cpu", "--port", "0", "--model"])
            .arg(testdata().join(model))
            .args(extra)
            .env_remove("QWEN_SERVE_API_KEY")
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let sink = log.clone();
        std::thread::spawn(move || {
            while let Some(Ok(line)) = lines.next() {
                if let Some(rest) = line.split(" on http://").nth(1) {
                    let addr = rest.split_whitespace().next().unwrap_or("").to_string();
                    let _ = tx.send(addr);
                }
                sink.lock().unwrap().push_str(&format!("{line}\n"));
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| {
                panic!("no address: {}", log.lock().unwrap());
            });
        let s = Self {
            child,
            base: format!("http://{addr}"),
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while get(&s.url("/health")).0 != 200 {
            assert!(Instant::now() < deadline, "not ready: {}", s.log());
            std::thread::sleep(Duration::from_millis(50));
        }
        s
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// SIGTERM; the exit code.
    fn terminate(mut self) -> Option<i32> {
        let pid = self.child.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            assert!(Instant::now() < deadline, "still running: {}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(120)))
        .build()
        .into()
}

fn answer(r: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> (u16, Vec<u8>) {
    let mut r = r.unwrap();
    (r.status().as_u16(), r.body_mut().read_to_vec().unwrap())
}

fn get(url: &str) -> (u16, Vec<u8>) {
    answer(agent().get(url).call())
}

fn post(url: &str, content_type: &str, body: &[u8]) -> (u16, Vec<u8>) {
    answer(
        agent()
            .post(url)
            .header("content-type", content_type)
            .send(body),
    )
}

fn post_json(url: &str, body: &Value) -> (u16, Vec<u8>) {
    post(url, "application/json", body.to_string().as_bytes())
}

fn json_of(body: &[u8]) -> Value {
    serde_json::from_slice(body).unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(body)))
}

/// The decoded `b64_json` bytes of every image of a 200 answer.
fn image_bytes(status: u16, body: &[u8]) -> Vec<Vec<u8>> {
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(body));
    json_of(body)["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            base64::engine::general_purpose::STANDARD
                .decode(d["b64_json"].as_str().unwrap())
                .unwrap()
        })
        .collect()
}

/// `cargo xtask generate` with `args` writing `out`; its bytes (Layered: a folder's layers).
fn generate(model: &str, args: &[&str], out: &Path) {
    let o = xtask()
        .args(["generate", "--device", "cpu", "--model"])
        .arg(testdata().join(model))
        .args(args)
        .arg("--out")
        .arg(out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
}

/// A multipart body of text fields and files, and its content type.
fn multipart(texts: &[(&str, &str)], files: &[(&str, &Path)]) -> (String, Vec<u8>) {
    let b = "xtask-serve-test-boundary";
    let mut body = Vec::new();
    for (name, value) in texts {
        body.extend(
            format!("--{b}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n")
                .bytes(),
        );
    }
    for (name, path) in files {
        let file = path.file_name().unwrap().to_string_lossy();
        body.extend(
            format!(
                "--{b}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{file}\"\r\n\
                 Content-Type: application/octet-stream\r\n\r\n"
            )
            .bytes(),
        );
        body.extend(std::fs::read(path).unwrap());
        body.extend(b"\r\n");
    }
    body.extend(format!("--{b}--\r\n").bytes());
    (format!("multipart/form-data; boundary={b}"), body)
}

fn error_of(status: u16, body: &[u8]) -> (u16, String, String) {
    let j = json_of(body);
    let e = &j["error"];
    (
        status,
        e["param"].as_str().unwrap_or("").to_string(),
        e["message"].as_str().unwrap_or("").to_string(),
    )
}

const PROMPT: &str = "Doraemon is eating dorayaki";

/// Text to image (PNG, JPEG, the default CUDA generator, `n = 2`), malformed requests, a burst
/// against `--max-queue 2`, a client that goes away, and SIGTERM.
#[test]
fn text_to_image_matches_generate_and_the_queue_holds() {
    let dir = tempfile::tempdir().unwrap();
    let s = Served::start("tiny-qwen-image", &["--max-queue", "2"]);
    let url = s.url("/v1/images/generations");
    let body = json!({"prompt": PROMPT, "size": "64x48", "num_inference_steps": 2, "seed": 7,
        "n": 2, "generator_device": "cpu", "negative_prompt": " ", "true_cfg_scale": 4.0,
        "output_format": "png"});
    let (st, b) = post_json(&url, &body);
    let api = image_bytes(st, &b);
    let flags = [
        "--prompt",
        PROMPT,
        "--negative-prompt",
        " ",
        "--true-cfg-scale",
        "4",
        "--steps",
        "2",
        "--width",
        "64",
        "--height",
        "48",
    ];
    for (k, seed) in ["7", "8"].iter().enumerate() {
        let out = dir.path().join(format!("t2i_{seed}.png"));
        generate(
            "tiny-qwen-image",
            &[&flags[..], &["--seed", seed]].concat(),
            &out,
        );
        assert!(
            std::fs::read(&out).unwrap() == api[k],
            "image {k} (seed {seed}) differs"
        );
    }
    // JPEG as `--out x.jpg`, with SGLang's default generator (CUDA, H100 layout).
    let mut jpeg = body.clone();
    jpeg["output_format"] = json!("jpeg");
    jpeg["n"] = json!(1);
    jpeg.as_object_mut().unwrap().remove("generator_device");
    let (st, b) = post_json(&url, &jpeg);
    let out = dir.path().join("t2i.jpg");
    let cuda = [
        &flags[..],
        &["--seed", "7", "--generator", "cuda", "--platform", "h100"],
    ]
    .concat();
    generate("tiny-qwen-image", &cuda, &out);
    assert!(
        std::fs::read(&out).unwrap() == image_bytes(st, &b)[0],
        "the JPEG differs"
    );

    for (req, param) in [
        (
            json!({"prompt": "x", "num_inference_steps": 0}),
            "num_inference_steps",
        ),
        (json!({"prompt": "x", "size": "7x7"}), "size"),
    ] {
        let (st, p, m) = {
            let (st, b) = post_json(&url, &req);
            error_of(st, &b)
        };
        assert_eq!((st, p.as_str()), (400, param), "{m}");
    }
    let (st, b) = post(&url, "application/json", b"{\"prompt\": oops}");
    assert_eq!(st, 400);
    assert!(error_of(st, &b).2.contains("JSON"));

    burst_against_a_queue_of_two(&s);
    a_client_that_goes_away_frees_the_worker(&s);
    assert_eq!(s.terminate(), Some(0));
}

/// Six slow requests at once: one runs, two wait, the rest are refused; every answer given is
/// the same right image; the server is alive after.
fn burst_against_a_queue_of_two(s: &Served) {
    let slow = json!({"prompt": PROMPT, "size": "256x256", "num_inference_steps": 6,
        "seed": 3, "generator_device": "cpu", "output_format": "png"});
    let handles: Vec<_> = (0..6)
        .map(|_| {
            let (url, body) = (s.url("/v1/images/generations"), slow.clone());
            std::thread::spawn(move || post_json(&url, &body))
        })
        .collect();
    let answers: Vec<(u16, Vec<u8>)> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let ok: Vec<Vec<u8>> = answers
        .iter()
        .filter(|a| a.0 == 200)
        .map(|(st, b)| image_bytes(*st, b).remove(0))
        .collect();
    let busy = answers.iter().filter(|a| a.0 == 503).count();
    assert_eq!(
        ok.len() + busy,
        6,
        "{:?}",
        answers.iter().map(|a| a.0).collect::<Vec<_>>()
    );
    assert!(busy >= 1 && ok.len() >= 3, "{} ok, {busy} busy", ok.len());
    assert!(ok.iter().all(|b| *b == ok[0]), "the answers differ");
    let (st, _) = get(&s.url("/health"));
    assert_eq!(st, 200);
}

/// A slow request whose client disconnects is cancelled: the next request is answered long
/// before the slow one would have finished.
fn a_client_that_goes_away_frees_the_worker(s: &Served) {
    let addr = s.base.trim_start_matches("http://");
    let body = json!({"prompt": PROMPT, "size": "512x512", "num_inference_steps": 1000,
        "generator_device": "cpu"})
    .to_string();
    let mut stream = TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "POST /v1/images/generations HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    drop(stream);
    let started = Instant::now();
    let quick = json!({"prompt": "x", "size": "32x32", "num_inference_steps": 2});
    let (st, b) = post_json(&s.url("/v1/images/generations"), &quick);
    assert_eq!(st, 200, "{}", String::from_utf8_lossy(&b));
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
    let log = s.log();
    assert!(log.contains("status=499"), "{log}");
}

/// Edit by upload (`true_cfg_scale` 1: CFG off, as `generate` without a negative prompt), and
/// its errors (a text file as the image, bad multipart, a private URL
/// without `--allow-private-urls`).
#[test]
fn edit_by_upload_matches_generate() {
    let dir = tempfile::tempdir().unwrap();
    let s = Served::start("tiny-qwen-image-edit", &[]);
    let url = s.url("/v1/images/edits");
    let input = testdata().join("e2e-edit/edit_input.jpg");
    let texts = [
        ("prompt", "make it blue"),
        ("size", "64x64"),
        ("num_inference_steps", "2"),
        ("seed", "7"),
        ("generator_device", "cpu"),
        ("true_cfg_scale", "1"),
        ("output_format", "png"),
        ("num_frames", "1"),
    ];
    let (ct, body) = multipart(&texts, &[("image", &input)]);
    let (st, b) = post(&url, &ct, &body);
    let out = dir.path().join("edit.png");
    generate(
        "tiny-qwen-image-edit",
        &[
            "--prompt",
            "make it blue",
            "--image",
            input.to_str().unwrap(),
            "--width",
            "64",
            "--height",
            "64",
            "--steps",
            "2",
            "--seed",
            "7",
        ],
        &out,
    );
    assert!(
        std::fs::read(&out).unwrap() == image_bytes(st, &b)[0],
        "the edit differs"
    );

    let notes = dir.path().join("notes.txt");
    std::fs::write(&notes, "not a picture").unwrap();
    let (ct, body) = multipart(&[("prompt", "x")], &[("image", &notes)]);
    let (st, p, m) = {
        let (st, b) = post(&url, &ct, &body);
        error_of(st, &b)
    };
    assert_eq!((st, p.as_str()), (422, "image"), "{m}");
    assert!(m.contains("notes.txt"), "{m}");
    let (st, _) = post(
        &url,
        "multipart/form-data; boundary=x",
        b"--y\r\nnot multipart",
    );
    assert_eq!(st, 400);
    let (ct, body) = multipart(
        &[("prompt", "x"), ("url", "http://127.0.0.1:9/cat.png")],
        &[],
    );
    let (st, p, m) = {
        let (st, b) = post(&url, &ct, &body);
        error_of(st, &b)
    };
    assert_eq!((st, p.as_str()), (400, "url"), "{m}");
    assert!(m.contains("--allow-private-urls"), "{m}");
    assert_eq!(s.terminate(), Some(0));
}

/// A loopback HTTP server with one file; its URL.
fn serve_file(path: PathBuf) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!(
        "http://{}/{}",
        listener.local_addr().unwrap(),
        path.file_name().unwrap().to_string_lossy()
    );
    std::thread::spawn(move || {
        let body = std::fs::read(&path).unwrap();
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                line.clear();
            }
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes());
            let _ = stream.write_all(&body);
        }
    });
    url
}

/// Edit-Plus with its two images, one uploaded and one by URL (`--allow-private-urls`).
#[test]
fn edit_plus_by_upload_and_url_matches_generate() {
    let dir = tempfile::tempdir().unwrap();
    let s = Served::start("tiny-qwen-image-edit-plus", &["--allow-private-urls"]);
    let (first, second) = (
        testdata().join("e2e-edit/plus_rgba.png"),
        testdata().join("e2e-edit/plus_gray.png"),
    );
    let second_url = serve_file(second.clone());
    let prompt = "The cat from Picture 1 sits on the sofa from Picture 2";
    let texts = [
        ("prompt", prompt),
        ("size", "48x64"),
        ("num_inference_steps", "2"),
        ("seed", "11"),
        ("generator_device", "cpu"),
        ("true_cfg_scale", "1"),
        ("output_format", "png"),
        ("url[]", second_url.as_str()),
    ];
    let (ct, body) = multipart(&texts, &[("image[]", &first)]);
    let (st, b) = post(&s.url("/v1/images/edits"), &ct, &body);
    let out = dir.path().join("plus.png");
    generate(
        "tiny-qwen-image-edit-plus",
        &[
            "--prompt",
            prompt,
            "--image",
            first.to_str().unwrap(),
            "--image",
            second.to_str().unwrap(),
            "--width",
            "48",
            "--height",
            "64",
            "--steps",
            "2",
            "--seed",
            "11",
        ],
        &out,
    );
    assert!(
        std::fs::read(&out).unwrap() == image_bytes(st, &b)[0],
        "the Edit-Plus image differs"
    );
    assert_eq!(s.terminate(), Some(0));
}

/// Layered: `num_frames` layers, each the bytes of `generate`'s `layer_k.png`.
#[test]
fn layered_matches_generate() {
    let dir = tempfile::tempdir().unwrap();
    let s = Served::start("tiny-qwen-image-layered", &[]);
    let input = testdata().join("caption/image_rgba.png");
    let prompt = "A red kite above a green hill, paper-cut style";
    let texts = [
        ("prompt", prompt),
        ("num_frames", "2"),
        ("num_inference_steps", "2"),
        ("seed", "21"),
        ("generator_device", "cpu"),
        ("true_cfg_scale", "1"),
        ("cfg_normalize", "false"),
        ("use_en_prompt", "false"),
    ];
    let (ct, body) = multipart(&texts, &[("image", &input)]);
    let (st, b) = post(&s.url("/v1/images/edits"), &ct, &body);
    let api = image_bytes(st, &b);
    let out = dir.path().join("layers");
    generate(
        "tiny-qwen-image-layered",
        &[
            "--prompt",
            prompt,
            "--image",
            input.to_str().unwrap(),
            "--layers",
            "2",
            "--steps",
            "2",
            "--seed",
            "21",
        ],
        &out,
    );
    assert_eq!(api.len(), 2);
    for (k, bytes) in api.iter().enumerate() {
        let want = std::fs::read(out.join(format!("layer_{k}.png"))).unwrap();
        assert!(want == *bytes, "layer {k} differs");
    }
    assert_eq!(s.terminate(), Some(0));
}
