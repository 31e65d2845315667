//! `cargo xtask consistency --server URL …` against servers on 127.0.0.1 written here, each
//! answering by the prompt it is sent: the right image (the GT's own bytes), a shifted one, a 500,
//! a truncated body, HTML, a stall past `--request-timeout`, 503s, a server that dies. Every
//! verdict is the one the issue names, nothing hangs, every other case is still judged; two
//! servers of one model share the cases; a closed port or a bad URL exits 2 naming it.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};

use crate::common::{self, case, stderr, testdata, xtask};

/// One request as a stub server read it.
#[derive(Debug, Clone)]
struct Req {
    path: String,
    headers: HashMap<String, String>,
    /// JSON fields (generations) or text form fields (edits), as JSON values / strings.
    fields: serde_json::Map<String, Value>,
    /// Edits: the uploaded file names.
    files: Vec<String>,
}

impl Req {
    fn prompt(&self) -> &str {
        self.fields["prompt"].as_str().unwrap_or("")
    }
    /// The warm-up (two steps; the cases here take three), not a case.
    fn warm_up(&self) -> bool {
        let steps = self.fields.get("num_inference_steps");
        steps.map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string)) == Some("2".into())
    }
}

/// What a stub does with a generation.
enum Reply {
    Image(Vec<u8>),
    Status(u16, Value),
    /// Exactly these bytes, then the connection is closed.
    Raw(Vec<u8>),
    Stall(Duration),
    /// Close without answering, and take no more connections.
    Die,
}

/// A stub server: `/health`, `/v1/models` listing `models`, and generations answered by `reply`.
struct Stub {
    url: String,
    seen: Arc<Mutex<Vec<Req>>>,
}

impl Stub {
    fn start(models: &[&str], reply: impl Fn(&Req) -> Reply + Send + Sync + 'static) -> Stub {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let cards: Vec<Value> = models
            .iter()
            .map(|m| json!({"id": m, "object": "model", "owned_by": "stub", "version": "stub-1.0"}))
            .collect();
        let (seen2, reply) = (seen.clone(), Arc::new(reply));
        let dead = Arc::new(AtomicBool::new(false));
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                if dead.load(Ordering::SeqCst) {
                    break; // the listener is dropped: the port is closed
                }
                let (seen, reply, cards, dead) =
                    (seen2.clone(), reply.clone(), cards.clone(), dead.clone());
                std::thread::spawn(move || serve(stream, &seen, &*reply, &cards, &dead));
            }
        });
        Stub { url, seen }
    }

    /// The case requests (warm-ups left out).
    fn cases(&self) -> Vec<Req> {
        let seen = self.seen.lock().unwrap();
        seen.iter()
            .filter(|r| r.path.starts_with("/v1/images") && !r.warm_up())
            .cloned()
            .collect()
    }
}

fn serve(
    stream: TcpStream,
    seen: &Mutex<Vec<Req>>,
    reply: &(dyn Fn(&Req) -> Reply + Send + Sync),
    cards: &[Value],
    dead: &AtomicBool,
) {
    let Some(req) = read_request(&stream) else {
        return;
    };
    let mut s = stream;
    if dead.load(Ordering::SeqCst) {
        return;
    }
    let answer = match req.path.as_str() {
        "/health" => Reply::Status(200, json!({"status": "ok"})),
        "/v1/models" => Reply::Status(200, json!({"object": "list", "data": cards})),
        _ => {
            seen.lock().unwrap().push(req.clone());
            reply(&req)
        }
    };
    let (status, ctype, body) = match answer {
        Reply::Image(bytes) => {
            let b64 = base64::engine::general_purpose::STANDARD.encode(bytes);
            let body = json!({"id": "req-1", "created": 1,
                "data": [{"b64_json": b64, "revised_prompt": req.prompt()}],
                "timings": {"denoising_s": 0.01, "decoding_s": 0.001}});
            (200, "application/json", body.to_string().into_bytes())
        }
        Reply::Status(code, v) => (code, "application/json", v.to_string().into_bytes()),
        Reply::Raw(bytes) => {
            let _ = s.write_all(&bytes);
            return;
        }
        Reply::Stall(d) => {
            std::thread::sleep(d);
            return;
        }
        Reply::Die => {
            dead.store(true, Ordering::SeqCst);
            // Wake the accept loop so that it drops the listener.
            let _ = TcpStream::connect(s.local_addr().unwrap());
            return;
        }
    };
    let extra = if status == 503 {
        "Retry-After: 0\r\n"
    } else {
        ""
    };
    let _ = write!(
        s,
        "HTTP/1.1 {status} X\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\n{extra}Connection: close\r\n\r\n",
        body.len()
    );
    let _ = s.write_all(&body);
}

/// The request line, headers and body (Content-Length), fields parsed.
fn read_request(stream: &TcpStream) -> Option<Req> {
    let mut r = BufReader::new(stream.try_clone().ok()?);
    let mut line = String::new();
    r.read_line(&mut line).ok()?;
    let path = line.split_whitespace().nth(1)?.to_string();
    let mut headers = HashMap::new();
    loop {
        let mut h = String::new();
        if r.read_line(&mut h).ok()? == 0 || h == "\r\n" {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let len: usize = headers
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    r.read_exact(&mut body).ok()?;
    let ctype = headers.get("content-type").cloned().unwrap_or_default();
    let (fields, files) = match ctype.split_once("boundary=") {
        Some((_, b)) => form_fields(&body, b),
        None => (
            serde_json::from_slice::<Value>(&body)
                .ok()
                .and_then(|v| v.as_object().cloned())
                .unwrap_or_default(),
            vec![],
        ),
    };
    Some(Req {
        path,
        headers,
        fields,
        files,
    })
}

/// A multipart body's text fields and file names.
fn form_fields(body: &[u8], boundary: &str) -> (serde_json::Map<String, Value>, Vec<String>) {
    let text = String::from_utf8_lossy(body);
    let (mut fields, mut files) = (serde_json::Map::new(), Vec::new());
    for part in text.split(&format!("--{boundary}")) {
        let Some((head, value)) = part.split_once("\r\n\r\n") else {
            continue;
        };
        let name = head
            .split("name=\"")
            .nth(1)
            .and_then(|n| n.split('"').next());
        match (name, head.split("filename=\"").nth(1)) {
            (_, Some(f)) => files.push(f.split('"').next().unwrap_or("").to_string()),
            (Some(n), None) => {
                fields.insert(n.to_string(), json!(value.trim_end_matches("\r\n")));
            }
            _ => {}
        }
    }
    (fields, files)
}

/// The GT every stub case is held to: the tiny seeded text-to-image GT (48×64 PNG).
fn gt_png() -> Vec<u8> {
    std::fs::read(testdata().join("gt/official_generated/tiny_t2i_seed_1gpu.png")).unwrap()
}

/// The GT image moved 5 pixels to the right: another picture, same size.
fn shifted_png() -> Vec<u8> {
    let img = image::load_from_memory(&gt_png()).unwrap().to_rgb8();
    let (w, h) = img.dimensions();
    let moved = image::RgbImage::from_fn(w, h, |x, y| *img.get_pixel((x + w - 5) % w, y));
    let mut out = std::io::Cursor::new(Vec::new());
    moved.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

/// A GT tree (`official_generated/<id>_1gpu.png` + case_map.json) holding the tiny GT for `ids`,
/// and a case file of text-to-image cases `(id, prompt)` for `model`.
fn suite(dir: &Path, model: &str, cases: &[(&str, &str)], extra: &str) -> (PathBuf, PathBuf) {
    let gt = dir.join("gt");
    let official = gt.join("official_generated");
    std::fs::create_dir_all(&official).unwrap();
    let mut map = serde_json::Map::new();
    let mut toml = String::from(extra);
    for (id, prompt) in cases {
        std::fs::write(official.join(format!("{id}_1gpu.png")), gt_png()).unwrap();
        map.insert(
            id.to_string(),
            json!({"outputs": [format!("{id}_1gpu.png")]}),
        );
        toml.push_str(&format!(
            "\n[[case]]\nid = \"{id}\"\nmodel = \"{model}\"\nprompt = \"{prompt}\"\nheight = 64\n\
             width = 48\nnum_inference_steps = 3\nseed = 3\noutput_format = \"png\"\n"
        ));
    }
    std::fs::write(
        official.join("case_map.json"),
        json!({"cases": map}).to_string(),
    )
    .unwrap();
    let file = dir.join("cases.toml");
    std::fs::write(&file, toml).unwrap();
    (file, gt)
}

/// `consistency --server …` on `cases` with `gt`, no CLIP, into `dir/out`.
fn run(dir: &Path, cases: &Path, gt: &Path, servers: &[&str], more: &[&str]) -> Output {
    let mut c = xtask();
    c.args([
        "consistency",
        "--no-clip",
        "--server-wait",
        "5",
        "--request-timeout",
        "3",
    ])
    .arg("--cases")
    .arg(cases)
    .arg("--gt-root")
    .arg(gt)
    .arg("--out")
    .arg(dir.join("out"));
    for s in servers {
        c.args(["--server", s]);
    }
    c.args(more).output().unwrap()
}

fn report(dir: &Path) -> Value {
    common::report(&dir.join("out"))
}

/// The stub behaviour behind each prompt of the verdict test.
fn by_prompt(req: &Req) -> Reply {
    static BUSY: AtomicUsize = AtomicUsize::new(0);
    match req.prompt() {
        "shifted" => Reply::Image(shifted_png()),
        "error" => Reply::Status(500, json!({"error": {"message": "CUDA out of memory"}})),
        "truncated" => Reply::Raw(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 5000\r\n\r\n{\"data\": [{\"b64".to_vec(),
        ),
        "html" => Reply::Raw(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 24\r\nConnection: close\r\n\r\n<html>maintenance</html>".to_vec(),
        ),
        "stall" => Reply::Stall(Duration::from_secs(30)),
        "busy" if !req.warm_up() && BUSY.fetch_add(1, Ordering::SeqCst) < 2 => {
            Reply::Status(503, json!({"error": {"message": "busy"}}))
        }
        _ => Reply::Image(gt_png()),
    }
}

#[test]
fn each_misbehaviour_fails_its_case_and_the_others_are_still_judged() {
    let dir = tempfile::tempdir().unwrap();
    let ids = [
        "good",
        "shifted",
        "error",
        "truncated",
        "html",
        "stall",
        "busy",
    ];
    let cases: Vec<(&str, &str)> = ids.iter().map(|i| (*i, *i)).collect();
    let latents = testdata().join("e2e/latents/tiny_t2i_cfg.safetensors");
    let extra = format!(
        "[[case]]\nid = \"from_latents\"\nmodel = \"stub/model\"\nprompt = \"x\"\nheight = 64\n\
         width = 64\nnum_inference_steps = 3\nlatents = \"{}\"\n",
        latents.display()
    );
    let (file, gt) = suite(dir.path(), "stub/model", &cases, &extra);
    let stub = Stub::start(&["stub/model"], by_prompt);
    let t = Instant::now();
    let o = run(dir.path(), &file, &gt, &[&stub.url], &[]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        t.elapsed() < Duration::from_secs(60),
        "took {:?}",
        t.elapsed()
    );
    let r = report(dir.path());
    assert_eq!(
        (r["passed"].as_u64(), r["failed"].as_u64()),
        (Some(2), Some(5)),
        "{r:#}"
    );
    assert_eq!(
        (r["skipped"].as_u64(), r["errors"].as_u64()),
        (Some(1), Some(0))
    );
    let failures = |id: &str| case(&r, id)["failures"].to_string();
    assert!(
        failures("shifted").contains("ssim"),
        "{}",
        failures("shifted")
    );
    assert!(
        failures("error").contains("HTTP 500") && failures("error").contains("CUDA out of memory")
    );
    assert!(
        failures("truncated").contains("could not be read"),
        "{}",
        failures("truncated")
    );
    assert!(failures("html").contains("not JSON") && failures("html").contains("maintenance"));
    assert!(
        failures("stall").contains("no answer within 3 s"),
        "{}",
        failures("stall")
    );
    assert!(
        case(&r, "busy")["notes"]
            .to_string()
            .contains("503 2 time(s)")
    );
    let skipped = case(&r, "from_latents");
    assert!(
        skipped["skip_reason"]
            .as_str()
            .unwrap()
            .starts_with("latents")
    );
    // The good case: judged on the server's own bytes, kept as they came; the target recorded.
    let good = case(&r, "good");
    assert_eq!(good["passed"], true);
    assert_eq!(
        std::fs::read(dir.path().join("out/cases/good/output.png")).unwrap(),
        gt_png()
    );
    assert_eq!(good["target"]["kind"], "server");
    assert_eq!(good["target"]["url"], stub.url);
    assert_eq!(good["target"]["model"], "stub/model");
    assert_eq!(good["target"]["card"]["version"], "stub-1.0");
    assert_eq!(good["target"]["request_id"], "req-1");
    assert!(good["perf"]["e2e_ms"].as_f64().unwrap() > 0.0);
    // Every field the case resolves to went out.
    let sent = stub
        .cases()
        .into_iter()
        .find(|q| q.prompt() == "good")
        .unwrap();
    for (k, v) in [
        ("model", json!("stub/model")),
        ("size", json!("48x64")),
        ("seed", json!(3)),
        ("num_inference_steps", json!(3)),
        ("generator_device", json!("cpu")),
        ("true_cfg_scale", json!(1.0)),
        ("output_format", json!("png")),
        ("response_format", json!("b64_json")),
        ("n", json!(1)),
    ] {
        assert_eq!(sent.fields.get(k), Some(&v), "{k}: {:?}", sent.fields);
    }
    assert_eq!(sent.path, "/v1/images/generations");
    assert!(!sent.fields.contains_key("negative_prompt"));
    assert!(
        stub.cases().iter().all(|q| q.prompt() != "x"),
        "a latents case was sent"
    );
}

#[test]
fn two_servers_of_one_model_share_the_cases_each_judged_once() {
    let dir = tempfile::tempdir().unwrap();
    let cases: Vec<(String, String)> = (0..6).map(|k| (format!("c{k}"), format!("p{k}"))).collect();
    let refs: Vec<(&str, &str)> = cases
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let (file, gt) = suite(dir.path(), "stub/model", &refs, "");
    let slow = |_: &Req| {
        std::thread::sleep(Duration::from_millis(300));
        Reply::Image(gt_png())
    };
    let (a, b) = (
        Stub::start(&["stub/model"], slow),
        Stub::start(&["stub/model"], slow),
    );
    let o = run(dir.path(), &file, &gt, &[&a.url, &b.url], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let (na, nb) = (a.cases().len(), b.cases().len());
    assert_eq!(na + nb, 6, "each case once");
    assert!(na >= 1 && nb >= 1, "spread over both: {na} and {nb}");
    let r = report(dir.path());
    assert_eq!(r["passed"], 6);
    let urls: Vec<&str> = r["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["target"]["url"].as_str().unwrap())
        .collect();
    assert!(urls.contains(&a.url.as_str()) && urls.contains(&b.url.as_str()));
}

#[test]
fn a_server_that_dies_hands_its_cases_to_the_other_or_they_could_not_run() {
    let dir = tempfile::tempdir().unwrap();
    let cases: Vec<(String, String)> = (0..4).map(|k| (format!("c{k}"), format!("p{k}"))).collect();
    let refs: Vec<(&str, &str)> = cases
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let (file, gt) = suite(dir.path(), "stub/model", &refs, "");
    // Dies at its first case (the warm-up went through).
    let dying = || {
        Stub::start(&["stub/model"], |q: &Req| {
            if q.warm_up() {
                Reply::Image(gt_png())
            } else {
                Reply::Die
            }
        })
    };
    let steady = |_: &Req| {
        std::thread::sleep(Duration::from_millis(200));
        Reply::Image(gt_png())
    };
    let (a, b) = (dying(), Stub::start(&["stub/model"], steady));
    let o = run(dir.path(), &file, &gt, &[&a.url, &b.url], &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let r = report(dir.path());
    assert_eq!(r["passed"], 4);
    assert_eq!(b.cases().len(), 4);
    assert!(r.to_string().contains("was gone"), "{r:#}");

    // Alone, a dying server: its case and the ones after could not run (exit 2), no hang.
    let dir = tempfile::tempdir().unwrap();
    let (file, gt) = suite(dir.path(), "stub/model", &refs, "");
    let served = Arc::new(AtomicUsize::new(0));
    let n = served.clone();
    let once = Stub::start(&["stub/model"], move |q: &Req| {
        if q.warm_up() || n.fetch_add(1, Ordering::SeqCst) == 0 {
            Reply::Image(gt_png())
        } else {
            Reply::Die
        }
    });
    let o = run(dir.path(), &file, &gt, &[&once.url], &[]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let r = report(dir.path());
    assert_eq!(
        (r["passed"].as_u64(), r["errors"].as_u64()),
        (Some(1), Some(3)),
        "{r:#}"
    );
    let err = case(&r, "c3")["error"].as_str().unwrap().to_string();
    assert!(err.contains(&once.url), "{err}");
}

#[test]
fn a_closed_port_or_a_bad_url_exits_2_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let (file, gt) = suite(dir.path(), "stub/model", &[("good", "good")], "");
    let closed = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    };
    let o = run(dir.path(), &file, &gt, &[&closed], &[]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains(&closed), "{}", stderr(&o));
    for bad in ["localhost:30000", "ftp://host/x", "http://"] {
        let o = run(dir.path(), &file, &gt, &[bad], &[]);
        assert_eq!(o.status.code(), Some(2), "{bad}: {}", stderr(&o));
        assert!(stderr(&o).contains(bad), "{}", stderr(&o));
    }
    // A server up, but serving no case's model: exit 2 naming what it serves.
    let other = Stub::start(&["other/model"], |_: &Req| Reply::Image(gt_png()));
    let o = run(dir.path(), &file, &gt, &[&other.url], &[]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("other/model"), "{}", stderr(&o));
}

#[test]
fn model_map_sglang_request_api_key_and_edits_uploads() {
    let dir = tempfile::tempdir().unwrap();
    let image = testdata().join("e2e-edit/edit_input.jpg");
    let extra = format!(
        "[[case]]\nid = \"edit\"\nmodel = \"stub/edit\"\nprompt = \"edit it\"\nimage = \"{}\"\n\
         height = 64\nwidth = 48\nnum_inference_steps = 3\nseed = 5\n",
        image.display()
    );
    let (file, gt) = suite(
        dir.path(),
        "stub/model",
        &[("good", "good"), ("edit", "unused")],
        &extra,
    );
    // The suite writes a text-to-image `edit` case too: keep only the image one.
    let text = std::fs::read_to_string(&file).unwrap();
    let keep: Vec<&str> = text
        .split("\n[[case]]")
        .filter(|c| !c.contains("prompt = \"unused\""))
        .collect();
    std::fs::write(&file, keep.join("\n[[case]]")).unwrap();
    let key = dir.path().join("key");
    std::fs::write(&key, "sekrit\n").unwrap();
    let stub = Stub::start(&["served-t2i", "served-edit"], |q: &Req| {
        match q.headers.get("authorization").map(String::as_str) {
            Some("Bearer sekrit") => Reply::Image(gt_png()),
            _ => Reply::Status(401, json!({"error": {"message": "no key"}})),
        }
    });
    let maps = [
        "--model-map",
        "stub/model=served-t2i",
        "--model-map",
        "stub/edit=served-edit",
    ];
    let mut more = vec!["--api-key-file", key.to_str().unwrap(), "--sglang-request"];
    more.extend(maps);
    let o = run(dir.path(), &file, &gt, &[&stub.url], &more);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let sent = stub.cases();
    let t2i = sent.iter().find(|q| q.prompt() == "good").unwrap();
    assert_eq!(t2i.fields["model"], "served-t2i");
    // SGLang's tests send prompt, n, size, output_format and the case's own extras; never the
    // fields the server should default (no true_cfg_scale, no generator).
    assert!(
        !t2i.fields.contains_key("true_cfg_scale") && !t2i.fields.contains_key("generator_device")
    );
    assert_eq!(t2i.fields["seed"], 3);
    let edit = sent.iter().find(|q| q.prompt() == "edit it").unwrap();
    assert_eq!(edit.path, "/v1/images/edits");
    assert_eq!(edit.files, vec!["edit_input.jpg".to_string()]);
    assert_eq!(edit.fields["model"], "served-edit");
    assert_eq!(edit.fields["size"], "48x64");
    let r = report(dir.path());
    assert_eq!(r["passed"], 2);
    assert_eq!(case(&r, "edit")["inputs"].as_array().unwrap().len(), 1);
}

#[test]
fn perf_baseline_marks_slow_cases_and_fail_on_slow_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let (file, gt) = suite(
        dir.path(),
        "stub/model",
        &[("fast", "fast"), ("slow", "slow")],
        "",
    );
    let stub = Stub::start(&["stub/model"], |q: &Req| {
        if q.prompt() == "slow" && !q.warm_up() {
            std::thread::sleep(Duration::from_millis(400));
        }
        Reply::Image(gt_png())
    });
    let baseline = dir.path().join("h100.json");
    let sc = json!({"expected_e2e_ms": 100.0, "expected_avg_denoise_ms": 1000.0,
        "stages_ms": {"DenoisingStage": 1000.0}});
    std::fs::write(
        &baseline,
        json!({
            "tolerances": {"pr_test": {"e2e": 0.25, "denoise_stage": 0.25, "non_denoise_stage": 0.8,
                "denoise_step": 0.3, "denoise_agg": 0.2}},
            "scenarios": {"fast": sc, "slow": sc}
        })
        .to_string(),
    )
    .unwrap();
    let b = baseline.to_str().unwrap();
    let o = run(
        dir.path(),
        &file,
        &gt,
        &[&stub.url],
        &["--perf-baseline", b],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let r = report(dir.path());
    assert_eq!(
        (r["passed"].as_u64(), r["slow"].as_u64()),
        (Some(2), Some(1)),
        "{r:#}"
    );
    let slow = &case(&r, "slow")["perf"];
    assert_eq!(slow["slow"], true);
    assert!(
        slow["checks"].to_string().contains("DenoisingStage"),
        "{slow}"
    );
    assert_eq!(case(&r, "fast")["perf"]["slow"], false);
    let o = run(
        dir.path(),
        &file,
        &gt,
        &[&stub.url],
        &["--perf-baseline", b, "--fail-on-slow"],
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
}

#[test]
fn gen_gt_through_a_server_writes_its_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let (file, gt) = suite(dir.path(), "stub/model", &[("good", "good")], "");
    let stub = Stub::start(&["stub/model"], |_: &Req| Reply::Image(shifted_png()));
    let o = run(dir.path(), &file, &gt, &[&stub.url], &["--gen-gt"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let written = dir.path().join("out/gt/sglang_generated/good_1gpu.png");
    assert_eq!(std::fs::read(written).unwrap(), shifted_png());
    let manifest = std::fs::read_to_string(dir.path().join("out/gt/manifest.json")).unwrap();
    assert!(manifest.contains(&stub.url), "{manifest}");
}

/// `cargo xtask serve --model testdata/<folder>` on a free port, killed when dropped.
struct Served {
    child: std::process::Child,
    url: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn xtask_serve(folder: &str) -> Served {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = xtask()
        .args(["serve", "--model"])
        .arg(testdata().join(folder))
        .args(["--port", &port.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    Served {
        child,
        url: format!("http://127.0.0.1:{port}"),
    }
}

/// The tiny cases that have a seed (the others start from a latents file).
const SEEDED: [&str; 5] = [
    "tiny_t2i_seed",
    "tiny_edit_nocfg",
    "tiny_edit_2511",
    "tiny_layered_prompt",
    "tiny_layered_caption",
];

/// The embedded default against `cargo xtask serve` on the tiny folders (one server per model,
/// each listing the folder's name): every seeded case passes with the metrics it has in process
/// and the same PNG bytes (Layered: each RGBA layer); the latents cases are skipped, saying why.
#[test]
fn against_xtask_serve_every_seeded_tiny_case_passes_as_in_process() {
    let servers: Vec<Served> = [
        "tiny-qwen-image",
        "tiny-qwen-image-edit",
        "tiny-qwen-image-edit-2511",
        "tiny-qwen-image-layered",
    ]
    .map(xtask_serve)
    .into();
    let dir = tempfile::tempdir().unwrap();
    let (local, remote) = (dir.path().join("in-process"), dir.path().join("served"));
    let mut in_process = xtask();
    in_process.arg("consistency");
    for id in SEEDED {
        in_process.args(["--case", id]);
    }
    let in_process = in_process
        .arg("--out")
        .arg(&local)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut c = xtask();
    c.args(["consistency", "--server-wait", "600", "--out"])
        .arg(&remote);
    for s in &servers {
        c.args(["--server", &s.url]);
    }
    let o = c.output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = in_process.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let read = |d: &Path| -> Value {
        serde_json::from_str(&std::fs::read_to_string(d.join("report.json")).unwrap()).unwrap()
    };
    let (ours, theirs) = (read(&local), read(&remote));
    assert_eq!(
        (theirs["passed"].as_u64(), theirs["skipped"].as_u64()),
        (Some(5), Some(5))
    );
    for c in theirs["cases"].as_array().unwrap() {
        let id = c["id"].as_str().unwrap();
        if !SEEDED.contains(&id) {
            assert!(
                c["skip_reason"].as_str().unwrap().starts_with("latents"),
                "{c}"
            );
            continue;
        }
        assert_eq!(c["target"]["kind"], "server", "{id}");
        assert_eq!(c["metrics"], case(&ours, id)["metrics"], "{id}");
        let files: Vec<String> = if id.starts_with("tiny_layered") {
            let n = c["request"]["num_frames"].as_u64().unwrap();
            (0..n).map(|k| format!("layer_{k}.png")).collect()
        } else {
            vec!["output.png".into()]
        };
        for f in files {
            let bytes = |d: &Path| std::fs::read(d.join("cases").join(id).join(&f)).unwrap();
            assert!(bytes(&remote) == bytes(&local), "{id}: {f} differs");
        }
    }
}
