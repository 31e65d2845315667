//! The GT cache keeps no bad file, and a GT that could not be had is "could not run" (issue 29,
//! items 3, 7 and 8): a GT host that answers an HTML page once, `--offline` with nothing cached,
//! `--resolve-only` with no answer from the host, the options `gt resolve` refuses, settings it
//! warns about, and what its errors say.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::Output;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::common::{stderr, testdata, xtask_with_cache as xtask};

const REV: &str = "0123456789abcdef0123456789abcdef01234567";

/// A loopback GT host: `files` by path; the first `html_first` whole GETs of each PNG answer
/// `200 text/html` instead (probes, HEAD and ranged GETs, see the file). Counts every request.
fn gt_host(files: HashMap<String, Vec<u8>>, html_first: usize) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let requests = Arc::new(AtomicUsize::new(0));
    let count = requests.clone();
    let served: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            count.fetch_add(1, Ordering::SeqCst);
            let mut reader = BufReader::new(stream.try_clone().expect("clone"));
            let mut request = String::new();
            if reader.read_line(&mut request).is_err() {
                continue;
            }
            let mut ranged = false;
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                ranged |= line.to_ascii_lowercase().starts_with("range:");
                line.clear();
            }
            let mut parts = request.split_whitespace();
            let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
            let (status, kind, body) = match files.get(path) {
                None => ("404 Not Found", "text/plain", Vec::new()),
                Some(b) if ranged => ("206 Partial Content", "image/png", b[..1].to_vec()),
                Some(b) => {
                    let mut served = served.lock().unwrap_or_else(|e| e.into_inner());
                    let n = served.entry(path.to_string()).or_insert(0);
                    let html = method == "GET" && path.ends_with(".png") && *n < html_first;
                    if method == "GET" {
                        *n += 1;
                    }
                    if html {
                        let page = b"<!DOCTYPE html><html>rate limited</html>".to_vec();
                        ("200 OK", "text/html", page)
                    } else {
                        ("200 OK", "image/png", b.clone())
                    }
                }
            };
            let head = format!(
                "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\n\
                 Connection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes());
            if method != "HEAD" {
                let _ = stream.write_all(&body);
            }
        }
    });
    (base, requests)
}

/// The official GT of the tiny cases, served under a pinned root; the root's URL.
fn tiny_gt_host(html_first: usize) -> (String, Arc<AtomicUsize>) {
    let gt = testdata().join("gt/official_generated");
    let mut files = HashMap::new();
    for name in ["case_map.json", "tiny_t2i_cfg_1gpu.png"] {
        let path = format!("/org/ci-data/{REV}/gt/official_generated/{name}");
        files.insert(path, std::fs::read(gt.join(name)).expect("GT file"));
    }
    let (base, n) = gt_host(files, html_first);
    (format!("{base}/org/ci-data/{REV}/gt"), n)
}

fn consistency(cache: &Path, root: &str, out: &Path, extra: &[&str]) -> Output {
    xtask(cache)
        .args(["consistency", "--no-clip", "--cases"])
        .arg(testdata().join("cases/tiny.toml"))
        .args(["--case", "tiny_t2i_cfg", "--gt-root", root, "--out"])
        .arg(out)
        .args(extra)
        .output()
        .expect("run xtask")
}

fn resolve(cache: &Path, root: &str, extra: &[&str]) -> Output {
    xtask(cache)
        .args(["gt", "resolve", "--case", "tiny_t2i_cfg", "--gt-root", root])
        .args(extra)
        .output()
        .expect("run xtask")
}

fn objects(cache: &Path) -> Vec<Vec<u8>> {
    let mut found = Vec::new();
    let Ok(dirs) = std::fs::read_dir(cache.join("objects")) else {
        return found;
    };
    for d in dirs.flatten() {
        for f in std::fs::read_dir(d.path()).into_iter().flatten().flatten() {
            found.push(std::fs::read(f.path()).expect("object"));
        }
    }
    found
}

#[test]
fn an_html_page_for_the_gt_is_never_cached_and_the_case_could_not_run() {
    let (root, _) = tiny_gt_host(1);
    let cache = tempfile::tempdir().expect("tempdir");
    let out = tempfile::tempdir().expect("tempdir");
    // One attempt per download (the tests' setting): the page is refused, nothing is cached,
    // and the case could not run (2), as `gt resolve` says of a GT it cannot fetch.
    let o = consistency(cache.path(), &root, out.path(), &[]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    let report = std::fs::read_to_string(out.path().join("report.json")).expect("report");
    assert!(
        report.contains("not a usable file: not an image (an HTML page)"),
        "{report}"
    );
    assert!(
        objects(cache.path())
            .iter()
            .all(|o| !o.starts_with(b"<!DOCTYPE")),
        "the page was cached"
    );
    // The next run gets the PNG and passes; then offline passes from the cache alone.
    let o = consistency(cache.path(), &root, out.path(), &[]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = consistency(cache.path(), &root, out.path(), &["--offline"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

#[test]
fn a_failed_gt_download_is_2_in_consistency_as_in_gt_resolve() {
    // Every whole GET is a page: the download fails however often it is tried.
    let (root, _) = tiny_gt_host(usize::MAX);
    let cache = tempfile::tempdir().expect("tempdir");
    let out = tempfile::tempdir().expect("tempdir");
    let o = consistency(cache.path(), &root, out.path(), &[]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.path().join("report.json")).expect("report"))
            .expect("json");
    let case = &report["cases"][0];
    assert!(
        case["error"]
            .as_str()
            .is_some_and(|e| e.contains("download of")),
        "{case}"
    );
}

#[test]
fn offline_with_nothing_cached_could_not_run_and_asks_nothing() {
    let (root, requests) = tiny_gt_host(0);
    let cache = tempfile::tempdir().expect("tempdir");
    let o = resolve(cache.path(), &root, &["--offline", "--json"]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("nothing was asked"), "{err}");
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON on stdout");
    for p in v["probes"].as_array().expect("probes") {
        assert_eq!(p["answer"], "unknown", "{p}");
        assert_eq!(p["attempts"], 0, "{p}");
    }
    // The same from consistency, with and without --resolve-only.
    let out = tempfile::tempdir().expect("tempdir");
    let o = consistency(
        cache.path(),
        &root,
        out.path(),
        &["--offline", "--resolve-only"],
    );
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("nothing was asked"), "{err}");
    let o = consistency(cache.path(), &root, out.path(), &["--offline"]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    let report = std::fs::read_to_string(out.path().join("report.json")).expect("report");
    assert!(report.contains("nothing was asked"), "{report}");
    assert_eq!(requests.load(Ordering::SeqCst), 0, "offline made a request");
}

#[test]
fn resolve_only_with_no_answer_from_the_gt_host_is_2() {
    let cache = tempfile::tempdir().expect("tempdir");
    let out = tempfile::tempdir().expect("tempdir");
    let root = format!("http://127.0.0.1:1/org/ci-data/{REV}/gt");
    let o = consistency(cache.path(), &root, out.path(), &["--resolve-only"]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("no request to the GT host succeeded") && err.contains("connection refused"),
        "{err}"
    );
}

#[test]
fn gt_resolve_refuses_what_a_case_file_refuses() {
    let cache = tempfile::tempdir().expect("tempdir");
    let root = testdata().join("gt").display().to_string();
    for (extra, needle) in [
        (&["--num-gpus", "0"][..], "--num-gpus"),
        (&["--output-format", "gif"], "--output-format"),
    ] {
        let o = resolve(cache.path(), &root, extra);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{extra:?}: {err}");
        assert!(err.contains(needle), "{err}");
    }
    let o = resolve(cache.path(), &root, &["--output-format", "png"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

#[test]
fn unusable_gt_settings_are_warned_about_and_change_no_exit_code() {
    let cache = tempfile::tempdir().expect("tempdir");
    let root = testdata().join("gt").display().to_string();
    let o = xtask(cache.path())
        .env("GT_RESOLVER_ATTEMPTS", "abc")
        .args([
            "gt",
            "resolve",
            "--case",
            "tiny_t2i_cfg",
            "--gt-root",
            &root,
        ])
        .output()
        .expect("run xtask");
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(
        err.contains("warning: GT_RESOLVER_ATTEMPTS=\"abc\" is not a whole number"),
        "{err}"
    );
}

#[test]
fn only_a_branch_is_told_about_the_floating_switch() {
    let cache = tempfile::tempdir().expect("tempdir");
    let o = resolve(cache.path(), "ftp://example.com/gt", &[]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("only http(s)://"), "{err}");
    assert!(!err.contains("FLOATING"), "{err}");
    let o = resolve(
        cache.path(),
        "https://raw.githubusercontent.com/o/r/main/gt",
        &[],
    );
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("GT_RESOLVER_ALLOW_FLOATING_REVISION"), "{err}");
}
