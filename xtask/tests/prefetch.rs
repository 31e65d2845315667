//! `cargo xtask gt prefetch` then `consistency --gt-dir DIR --offline` (issue 28, item 3): from a
//! loopback GT host laid out like the real tree, the prefetched folder gives every case of
//! `cases/sglang-qwen-image.toml` the GT it gets online (`--resolve-only`, two platforms in one
//! folder) and the tiny suites the same GT in a full run with no request (three case files and
//! the CLIP model in one folder); input images given as URLs come from the folder; a prefetch
//! killed midway leaves no folder that looks complete, and a rerun completes it.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::common::{report, root, stderr, testdata, xtask_with_cache};

const TREE: &str = "sgl-project/ci-data-diffusion/6d689f4833e8c106ff0d853865f50496d1f2b453/diffusion-ci/consistency_gt";

/// A loopback host: `files` by path (HEAD, GET, ranged GET), 404 otherwise. While `stall` is
/// set, a whole GET of `stall_path` waits (and says so in `stalled`) until it is cleared.
struct Host {
    base: String,
    requests: Arc<AtomicUsize>,
    stall: Arc<AtomicBool>,
    stalled: Arc<AtomicBool>,
}

impl Host {
    fn start(files: BTreeMap<String, Vec<u8>>, stall_path: Option<String>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let host = Host {
            base,
            requests: Arc::default(),
            stall: Arc::new(AtomicBool::new(stall_path.is_some())),
            stalled: Arc::default(),
        };
        let files = Arc::new(files);
        let (requests, stall, stalled) = (
            host.requests.clone(),
            host.stall.clone(),
            host.stalled.clone(),
        );
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                requests.fetch_add(1, Ordering::SeqCst);
                let (files, stall, stalled) = (files.clone(), stall.clone(), stalled.clone());
                let stall_path = stall_path.clone();
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    let mut line = String::new();
                    if reader.read_line(&mut line).is_err() {
                        return;
                    }
                    let mut parts = line.split_whitespace();
                    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
                    let mut ranged = false;
                    loop {
                        let mut h = String::new();
                        if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                            break;
                        }
                        ranged |= h.to_ascii_lowercase().starts_with("range:");
                    }
                    let whole_get = method == "GET" && !ranged;
                    if whole_get && stall_path.as_deref() == Some(path) {
                        stalled.store(true, Ordering::SeqCst);
                        let t = Instant::now();
                        while stall.load(Ordering::SeqCst) && t.elapsed() < Duration::from_secs(120)
                        {
                            std::thread::sleep(Duration::from_millis(20));
                        }
                    }
                    let mut out = stream;
                    let _ = match files.get(path.trim_start_matches('/')) {
                        Some(b) => {
                            let body = if ranged { &b[..1] } else { &b[..] };
                            let status = if ranged { "206 Partial Content" } else { "200 OK" };
                            let head = format!(
                                "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                                body.len()
                            );
                            out.write_all(head.as_bytes()).and_then(|()| {
                                if method == "HEAD" { Ok(()) } else { out.write_all(body) }
                            })
                        }
                        None => out.write_all(
                            b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                        ),
                    };
                    let _ = out.flush();
                    let mut rest = Vec::new();
                    let _ = reader.read_to_end(&mut rest);
                });
            }
        });
        host
    }

    fn gt_root(&self) -> String {
        format!("{}/{TREE}", self.base)
    }

    fn count(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

/// A tiny valid image of the kind its name says.
fn image(name: &str) -> Vec<u8> {
    let img = image::RgbImage::from_pixel(4, 4, image::Rgb([200, 100, 50]));
    let format = if name.ends_with(".png") {
        image::ImageFormat::Png
    } else {
        image::ImageFormat::Jpeg
    };
    let mut buf = std::io::Cursor::new(Vec::new());
    img.write_to(&mut buf, format).unwrap();
    buf.into_inner()
}

/// The tiny suites' official GT under [`TREE`].
fn tiny_tree() -> BTreeMap<String, Vec<u8>> {
    let gt = testdata().join("gt/official_generated");
    std::fs::read_dir(&gt)
        .unwrap()
        .map(|e| e.unwrap())
        .map(|e| {
            let name = e.file_name().into_string().unwrap();
            (
                format!("{TREE}/official_generated/{name}"),
                std::fs::read(e.path()).unwrap(),
            )
        })
        .collect()
}

/// xtask with its own GT cache, no HF network, the HF cache in `hub`.
fn xtask(cache: &Path, hub: &Path) -> Command {
    let mut c = xtask_with_cache(cache);
    for k in [
        "HF_TOKEN",
        "HUGGING_FACE_HUB_TOKEN",
        "HF_ENDPOINT",
        "HUGGINGFACE_HUB_CACHE",
    ] {
        c.env_remove(k);
    }
    c.env("HF_HUB_CACHE", hub).env("HF_HUB_OFFLINE", "1");
    c
}

fn ok(o: &Output) {
    assert_eq!(o.status.code(), Some(0), "{}", stderr(o));
}

fn prefetch(
    cache: &Path,
    hub: &Path,
    cases: &Path,
    root: &str,
    out: &Path,
    extra: &[&str],
) -> Output {
    xtask(cache, hub)
        .args(["gt", "prefetch", "--cases"])
        .arg(cases)
        .args(["--gt-root", root, "--out"])
        .arg(out)
        .args(extra)
        .output()
        .unwrap()
}

/// A prefetched folder's `prefetch.json`.
fn manifest(folder: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(folder.join("prefetch.json")).unwrap()).unwrap()
}

/// Each manifest entry's file is in the folder with its sha256.
fn check_files(folder: &Path, entries: &[serde_json::Value]) {
    use sha2::Digest;
    for f in entries {
        let bytes = std::fs::read(folder.join(f["path"].as_str().unwrap())).unwrap();
        let sha = hex::encode(sha2::Sha256::digest(&bytes));
        assert_eq!(sha, f["sha256"].as_str().unwrap(), "{f}");
    }
}

/// `id -> (source, file)` of a `--resolve-only --json` answer.
fn picks(o: &Output) -> BTreeMap<String, (String, String)> {
    let json: serde_json::Value =
        serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", stderr(o)));
    json["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let s = |k: &str| c[k].as_str().unwrap_or("-").to_string();
            (s("id"), (s("source"), s("file")))
        })
        .collect()
}

// --- cases/sglang-qwen-image.toml, resolve-only ------------------------------------------------

/// The Qwen files of sgl-project/ci-data-diffusion's tree at main (2026-07-24; the snapshot
/// tests/sglang_suite.rs serves), placeholder contents.
const QWEN_TREE: &[&str] = &[
    "official_generated/qwen_image_edit_2509_ti2i_1gpu.jpg",
    "official_generated/qwen_image_edit_2511_ti2i_1gpu.jpg",
    "official_generated/qwen_image_edit_ti2i_1gpu.jpg",
    "official_generated/qwen_image_layered_i2i_1gpu.png",
    "official_generated/qwen_image_t2i_1gpu.jpg",
    "sglang_generated/ascend/qwen_image_t2i_2npu_2gpu.jpg",
    "sglang_generated/b200/qwen_image_2512_modelopt_nvfp4_t2i_1gpu.jpg",
    "sglang_generated/h100/qwen_image_edit_2509_ti2i_1gpu.jpg",
    "sglang_generated/h100/qwen_image_edit_2511_ti2i_1gpu.jpg",
    "sglang_generated/h100/qwen_image_edit_modelopt_fp8_ti2i_1gpu.jpg",
    "sglang_generated/h100/qwen_image_edit_ti2i_1gpu.jpg",
    "sglang_generated/h100/qwen_image_layered_i2i_1gpu.png",
    "sglang_generated/h100/qwen_image_modelopt_fp8_t2i_1gpu.jpg",
    "sglang_generated/h100/qwen_image_t2i_1gpu.jpg",
    "sglang_generated/h100/qwen_image_t2i_2_gpus_2gpu.jpg",
    "sglang_generated/h100/qwen_image_t2i_cache_dit_enabled_1gpu.jpg",
    "sglang_generated/h100/qwen_image_t2i_cache_dit_scm_config_diffusers_1gpu_1gpu.jpg",
    "sglang_generated/qwen_image_2512_modelopt_nvfp4_t2i_1gpu.jpg",
    "sglang_generated/qwen_image_edit_2509_ti2i_1gpu.jpg",
    "sglang_generated/qwen_image_edit_2511_ti2i_1gpu.jpg",
    "sglang_generated/qwen_image_edit_modelopt_fp8_ti2i_1gpu.jpg",
    "sglang_generated/qwen_image_edit_ti2i_1gpu.jpg",
    "sglang_generated/qwen_image_layered_i2i_1gpu.png",
    "sglang_generated/qwen_image_modelopt_fp8_t2i_1gpu.jpg",
    "sglang_generated/qwen_image_t2i_1gpu.jpg",
    "sglang_generated/qwen_image_t2i_2_gpus_2gpu.jpg",
    "sglang_generated/qwen_image_t2i_cache_dit_enabled_1gpu.jpg",
];

/// The tree above with the official case map, and the suite's input images under `web/<URL
/// without https://>`; the suite's text with its URLs moved onto the host (`@HOST@/web/…`).
fn sglang_tree() -> (BTreeMap<String, Vec<u8>>, String) {
    let mut files: BTreeMap<String, Vec<u8>> = QWEN_TREE
        .iter()
        .map(|f| (format!("{TREE}/{f}"), image(f)))
        .collect();
    let declared: serde_json::Map<String, serde_json::Value> = QWEN_TREE
        .iter()
        .filter_map(|f| f.strip_prefix("official_generated/"))
        .map(|f| {
            let case = f
                .strip_suffix("_1gpu.jpg")
                .or(f.strip_suffix("_1gpu.png"))
                .unwrap();
            (case.to_string(), serde_json::json!({"outputs": [f]}))
        })
        .collect();
    let map = serde_json::json!({"cases": declared});
    files.insert(
        format!("{TREE}/official_generated/case_map.json"),
        map.to_string().into(),
    );
    let text = std::fs::read_to_string(root().join("cases/sglang-qwen-image.toml")).unwrap();
    for url in text.split('"').filter_map(|t| t.strip_prefix("https://")) {
        if url.ends_with(".jpg") || url.ends_with(".png") {
            files.insert(format!("web/{url}"), image(url));
        }
    }
    (files, text.replace("https://", "@HOST@/web/"))
}

/// Every case of SGLang's Qwen suite (skipped ones too) resolves, from a folder prefetched for
/// h100 and b200 together, offline and with a fresh GT cache, to the file it resolves to online,
/// on both platforms; the offline runs make no request.
#[test]
fn the_sglang_suite_resolves_offline_to_what_it_resolves_to_online() {
    let dir = tempfile::tempdir().unwrap();
    let (files, text) = sglang_tree();
    let host = Host::start(files, None);
    // The suite beside a copy of its threshold files, its inputs on the host.
    let suite = dir.path().join("suite/sglang-qwen-image.toml");
    let th = root().join("cases/consistency_thresholds");
    std::fs::create_dir_all(dir.path().join("suite/consistency_thresholds")).unwrap();
    for e in std::fs::read_dir(&th).unwrap() {
        let e = e.unwrap();
        let to = dir
            .path()
            .join("suite/consistency_thresholds")
            .join(e.file_name());
        std::fs::copy(e.path(), to).unwrap();
    }
    std::fs::write(&suite, text.replace("@HOST@", &host.base)).unwrap();
    let (online_cache, offline_cache, hub) = (
        dir.path().join("c1"),
        dir.path().join("c2"),
        dir.path().join("hub"),
    );
    let out = dir.path().join("gt-folder");
    let o = prefetch(
        &online_cache,
        &hub,
        &suite,
        &host.gt_root(),
        &out,
        &["--platform", "h100", "--platform", "b200"],
    );
    ok(&o);
    let manifest = manifest(&out);
    assert_eq!(manifest["platforms"], serde_json::json!(["b200", "h100"]));
    // The four distinct input URLs of the cases that run.
    assert_eq!(
        manifest["inputs"].as_array().unwrap().len(),
        4,
        "{manifest}"
    );
    check_files(&out, manifest["inputs"].as_array().unwrap());

    let resolve = |cache: &Path, platform: &str, gt: &[&str]| {
        let o = xtask(cache, &hub)
            .args(["consistency", "--cases"])
            .arg(&suite)
            .args(["--resolve-only", "--json", "--platform", platform])
            .args(gt)
            .output()
            .unwrap();
        (o.status.code(), picks(&o))
    };
    let gt_dir = out.to_str().unwrap();
    for platform in ["h100", "b200"] {
        let online = resolve(&online_cache, platform, &["--gt-root", &host.gt_root()]);
        // On b200 one skipped case has GT nowhere (only an h100/ copy): 1, online and offline.
        assert_eq!(
            online.0,
            Some(if platform == "h100" { 0 } else { 1 }),
            "{platform}"
        );
        assert_eq!(online.1.len(), 11);
        let before = host.count();
        let offline = resolve(&offline_cache, platform, &["--gt-dir", gt_dir, "--offline"]);
        assert_eq!(host.count(), before, "an offline run asks nothing");
        assert_eq!(offline, online, "{platform}");
    }
    // Both trees and both platforms were needed: h100 takes SGLang's h100/ copy, b200 the bare
    // official file, and the quarantined Edit-2509 case ours.
    let (_, h100) = resolve(&offline_cache, "h100", &["--gt-dir", gt_dir, "--offline"]);
    let (_, b200) = resolve(&offline_cache, "b200", &["--gt-dir", gt_dir, "--offline"]);
    let t2i = |p: &BTreeMap<String, (String, String)>| p["qwen_image_t2i"].clone();
    assert_eq!(
        t2i(&h100),
        (
            "sglang".into(),
            "sglang_generated/h100/qwen_image_t2i_1gpu.jpg".into()
        )
    );
    assert_eq!(
        t2i(&b200),
        (
            "official".into(),
            "official_generated/qwen_image_t2i_1gpu.jpg".into()
        )
    );
    assert_eq!(b200["qwen_image_edit_2509_ti2i"].0, "sglang");
}

// --- The tiny suites, full runs ------------------------------------------------------------

/// A fake HF cache holding the tiny CLIP as `test-org/tiny-clip`, as huggingface_hub lays it out.
fn clip_hub(hub: &Path) {
    let commit = "0123456789abcdef0123456789abcdef01234567";
    let repo = hub.join("models--test-org--tiny-clip");
    let snap = repo.join("snapshots").join(commit);
    std::fs::create_dir_all(&snap).unwrap();
    for e in std::fs::read_dir(testdata().join("metrics/tiny-clip")).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), snap.join(e.file_name())).unwrap();
    }
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs/main"), commit).unwrap();
}

/// `id -> (gt_source, GT file relative to the folder)` of a report run with `--gt-dir folder`.
fn gt_of(r: &serde_json::Value, folder: &Path) -> BTreeMap<String, (String, String)> {
    let prefix = format!("file://{}/", folder.display());
    r["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let url = c["gt_files"][0]["url"].as_str().unwrap();
            let file = url.strip_prefix(&prefix).unwrap_or(url).to_string();
            let source = c["gt_source"].as_str().unwrap().to_string();
            (c["id"].as_str().unwrap().to_string(), (source, file))
        })
        .collect()
}

/// The three tiny suites and the CLIP model prefetched into one folder; the embedded default then
/// runs in full offline from it (fresh GT cache, empty HF cache) with the GT it resolves to
/// online, every case passing with CLIP computed, and no request to the GT host.
#[test]
fn the_tiny_suites_run_offline_from_the_folder_with_the_gt_they_get_online() {
    let dir = tempfile::tempdir().unwrap();
    let host = Host::start(tiny_tree(), None);
    let (c1, c2) = (dir.path().join("c1"), dir.path().join("c2"));
    let (hub, empty_hub) = (dir.path().join("hub"), dir.path().join("empty-hub"));
    clip_hub(&hub);
    let folder = dir.path().join("gt-folder");
    for (suite, extra) in [
        ("tiny.toml", &["--clip", "test-org/tiny-clip"][..]),
        ("tiny_edit.toml", &[][..]),
        ("tiny_layered.toml", &[][..]),
    ] {
        let cases = testdata().join("cases").join(suite);
        ok(&prefetch(
            &c1,
            &hub,
            &cases,
            &host.gt_root(),
            &folder,
            extra,
        ));
    }
    let manifest = manifest(&folder);
    assert_eq!(manifest["case_files"].as_array().unwrap().len(), 3);
    assert_eq!(manifest["clip"]["repo"], "test-org/tiny-clip");
    assert!(
        folder
            .join("hf-hub/models--test-org--tiny-clip/refs/main")
            .is_file()
    );
    // Ten GT files and the case map, each as its manifest entry says.
    let files = manifest["files"].as_array().unwrap();
    assert_eq!(files.len(), 11);
    check_files(&folder, files);
    for f in files {
        assert!(f["url"].as_str().unwrap().starts_with(&host.gt_root()));
    }

    // Online, the embedded default (the three suites) resolves against the host.
    let o = xtask(&c1, &hub)
        .args([
            "consistency",
            "--resolve-only",
            "--json",
            "--gt-root",
            &host.gt_root(),
        ])
        .output()
        .unwrap();
    ok(&o);
    let online = picks(&o);
    let before = host.count();
    let offline = dir.path().join("offline");
    let o = xtask(&c2, &empty_hub)
        .args([
            "consistency",
            "--offline",
            "--clip-model",
            "test-org/tiny-clip",
            "--gt-dir",
        ])
        .arg(&folder)
        .arg("--out")
        .arg(&offline)
        .output()
        .unwrap();
    ok(&o);
    assert_eq!(host.count(), before, "an offline run asks nothing");
    let off = report(&offline);
    assert_eq!(off["passed"], 10);
    assert_eq!(gt_of(&off, &folder), online);
    for c in off["cases"].as_array().unwrap() {
        assert!(c["metrics"][0]["clip"].as_f64().unwrap() > 0.99, "{c}");
    }
}

// --- Input images, a damaged folder, a killed prefetch -------------------------------------

/// A case whose input image is a URL: prefetched with it, the case runs offline with a fresh GT
/// cache (the image from the folder, no request); a folder whose file no longer matches its
/// manifest is refused (exit 2) naming the file.
#[test]
fn input_urls_come_from_the_folder_and_a_damaged_folder_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut files = tiny_tree();
    let input = std::fs::read(testdata().join("e2e-edit/edit_input.jpg")).unwrap();
    files.insert("img/edit_input.jpg".into(), input);
    let host = Host::start(files, None);
    let cases = dir.path().join("cases.toml");
    std::fs::write(
        &cases,
        format!(
            "[[case]]\nid = \"tiny_edit_cfg\"\nmodel = {:?}\nimage = \"{}/img/edit_input.jpg\"\n\
             prompt = \"Make the sky a deep purple and add a small red kite\"\n\
             negative_prompt = \" \"\ntrue_cfg_scale = 4.0\nheight = 48\nwidth = 80\n\
             num_inference_steps = 2\nlatents = {:?}\noutput_format = \"png\"\n",
            testdata().join("tiny-qwen-image-edit"),
            host.base,
            testdata().join("e2e-edit/latents/tiny_edit_cfg.safetensors"),
        ),
    )
    .unwrap();
    let (c1, c2, hub) = (
        dir.path().join("c1"),
        dir.path().join("c2"),
        dir.path().join("hub"),
    );
    let folder = dir.path().join("gt-folder");
    ok(&prefetch(&c1, &hub, &cases, &host.gt_root(), &folder, &[]));
    let manifest = manifest(&folder);
    let input = &manifest["inputs"][0];
    assert_eq!(input["url"], format!("{}/img/edit_input.jpg", host.base));
    let before = host.count();
    let run = || {
        xtask(&c2, &hub)
            .args(["consistency", "--no-clip", "--offline", "--cases"])
            .arg(&cases)
            .arg("--gt-dir")
            .arg(&folder)
            .arg("--out")
            .arg(dir.path().join("out"))
            .output()
            .unwrap()
    };
    let o = run();
    ok(&o);
    assert_eq!(report(&dir.path().join("out"))["passed"], 1);
    assert_eq!(host.count(), before);

    let copy = folder.join(input["path"].as_str().unwrap());
    std::fs::write(&copy, image("x.jpg")).unwrap();
    let o = run();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("sha256") && stderr(&o).contains(input["path"].as_str().unwrap()),
        "{}",
        stderr(&o)
    );
}

/// Killed while a GT download hangs, a prefetch leaves no `--out` and a temp folder without a
/// manifest; the rerun completes (every file as its manifest entry says, no temp folder left). A
/// folder gt prefetch did not write is never replaced.
#[test]
fn a_prefetch_killed_midway_leaves_no_complete_folder_and_a_rerun_completes() {
    let dir = tempfile::tempdir().unwrap();
    let stall = format!("/{TREE}/official_generated/tiny_t2i_seed_1gpu.png");
    let host = Host::start(tiny_tree(), Some(stall));
    let (cache, hub) = (dir.path().join("c1"), dir.path().join("hub"));
    let cases = testdata().join("cases/tiny.toml");
    let folder = dir.path().join("gt-folder");

    let mine = dir.path().join("mine");
    std::fs::create_dir_all(&mine).unwrap();
    std::fs::write(mine.join("notes.txt"), "mine").unwrap();
    let o = prefetch(&cache, &hub, &cases, &host.gt_root(), &mine, &[]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("did not write"), "{}", stderr(&o));
    assert!(mine.join("notes.txt").is_file());

    let mut child = xtask(&cache, &hub)
        .args(["gt", "prefetch", "--cases"])
        .arg(&cases)
        .args(["--gt-root", &host.gt_root(), "--out"])
        .arg(&folder)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let t = Instant::now();
    while !host.stalled.load(Ordering::SeqCst) {
        assert!(
            t.elapsed() < Duration::from_secs(120),
            "the prefetch never reached the stall"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!folder.exists(), "nothing at --out until complete");
    let tmp = dir.path().join(".gt-folder.prefetch.tmp");
    assert!(
        tmp.join("official_generated").is_dir(),
        "the work was under way"
    );
    assert!(!tmp.join("prefetch.json").exists());

    host.stall.store(false, Ordering::SeqCst);
    ok(&prefetch(
        &cache,
        &hub,
        &cases,
        &host.gt_root(),
        &folder,
        &[],
    ));
    assert!(!tmp.exists());
    let manifest = manifest(&folder);
    assert_eq!(manifest["complete"], true);
    let files = manifest["files"].as_array().unwrap();
    assert_eq!(files.len(), 5, "four GT files and the case map");
    check_files(&folder, files);
}
