//! What the cache keeps and how long a download may take (issue 29, item 3): a body enters the
//! cache only when it is whole, within the size cap and the deadline, and accepted by the
//! caller's check; an HTML page answered once, a body cut short without `Content-Length`, a
//! server that drips a byte at a time, a body over the cap. Offline, a cache with nothing in it
//! asks nothing and says so.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use gt_resolver::{
    Answer, Backoff, Error, GtFile, GtQuery, GtRoot, Platform, Resolver, ResolverBuilder,
};
use support::{Reply, TestServer};

const REV: &str = "0123456789abcdef0123456789abcdef01234567";
const CHILD_ENV: &str = "GT_RESOLVER_TEST_LIMITS_CHILD";
const PNG_SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";
const IEND: &[u8] = b"\0\0\0\0IEND\xaeB`\x82";

/// A stand-in PNG: the signature, some bytes, the IEND chunk.
fn png() -> Vec<u8> {
    let mut b = PNG_SIGNATURE.to_vec();
    b.extend((0..20_000u32).map(|i| (i * 13 % 251) as u8));
    b.extend_from_slice(IEND);
    b
}

/// The caller's check of these tests: a PNG from its signature to its IEND chunk (xtask's
/// decodes the image).
fn whole_png(_url: &str, path: &Path) -> Result<(), String> {
    let b = std::fs::read(path).map_err(|e| e.to_string())?;
    if !b.starts_with(PNG_SIGNATURE) {
        return Err("not a PNG".into());
    }
    if !b.ends_with(IEND) {
        return Err("the PNG has no end".into());
    }
    Ok(())
}

fn builder(server_url: &str, cache: &Path, attempts: u32) -> ResolverBuilder {
    let root = GtRoot::github(server_url, "org/ci-data", REV, false).expect("root");
    Resolver::builder()
        .root(&root)
        .backoff(Backoff {
            attempts,
            initial: Duration::from_millis(1),
            max: Duration::from_millis(4),
        })
        .timeout(Duration::from_secs(5))
        .progress(false)
        .cache_dir(cache)
}

fn checked(server_url: &str, cache: &Path, attempts: u32) -> Resolver {
    builder(server_url, cache, attempts)
        .verify(whole_png)
        .build()
        .expect("resolver")
}

fn remote(url: String) -> GtFile {
    GtFile {
        name: "x.png".into(),
        url,
        local_path: None,
        revision: Some(REV.into()),
    }
}

fn objects(cache: &Path) -> usize {
    fn walk(dir: &Path) -> usize {
        std::fs::read_dir(dir)
            .map(|rd| {
                rd.flatten()
                    .map(|e| {
                        if e.path().is_dir() {
                            walk(&e.path())
                        } else {
                            1
                        }
                    })
                    .sum()
            })
            .unwrap_or(0)
    }
    walk(&cache.join("objects"))
}

fn download_reason(e: Error) -> (u32, String) {
    match e {
        Error::Download {
            attempts, reason, ..
        } => (attempts, reason),
        other => panic!("expected a download error, got {other}"),
    }
}

#[test]
fn an_html_page_answered_once_is_retried_and_never_cached() {
    let s = TestServer::start();
    s.script(
        "/x.png",
        vec![
            Reply::Html(b"<html>slow down</html>".to_vec()),
            Reply::Body(png()),
        ],
    );
    let tmp = tempfile::tempdir().expect("tempdir");
    let f = remote(format!("{}/x.png", s.url()));
    let p = checked(s.url(), tmp.path(), 3)
        .fetch(&f)
        .expect("second answer");
    assert_eq!(std::fs::read(&p).expect("read"), png());
    assert_eq!(s.count("/x.png"), 2);
    assert_eq!(objects(tmp.path()), 1, "only the PNG is cached");

    // With one attempt the page is refused, nothing is cached, and the next run gets the PNG.
    let s = TestServer::start();
    s.script(
        "/x.png",
        vec![
            Reply::Html(b"<html>slow down</html>".to_vec()),
            Reply::Body(png()),
        ],
    );
    let tmp = tempfile::tempdir().expect("tempdir");
    let f = remote(format!("{}/x.png", s.url()));
    let e = checked(s.url(), tmp.path(), 1).fetch(&f).expect_err("html");
    let (attempts, reason) = download_reason(e);
    assert_eq!(attempts, 1);
    assert!(reason.contains("not a usable file: not a PNG"), "{reason}");
    assert_eq!(objects(tmp.path()), 0);
    let p = checked(s.url(), tmp.path(), 1).fetch(&f).expect("rerun");
    assert_eq!(std::fs::read(&p).expect("read"), png());
}

#[test]
fn a_body_cut_short_without_length_is_never_cached() {
    let s = TestServer::start();
    let cut = Reply::Unframed {
        body: png(),
        sent: 9_000,
    };
    s.script(
        "/x.png",
        vec![cut.clone(), cut.clone(), cut, Reply::Body(png())],
    );
    let tmp = tempfile::tempdir().expect("tempdir");
    let f = remote(format!("{}/x.png", s.url()));
    let e = checked(s.url(), tmp.path(), 3).fetch(&f).expect_err("cut");
    let (attempts, reason) = download_reason(e);
    assert_eq!(attempts, 3);
    assert!(reason.contains("the PNG has no end"), "{reason}");
    assert_eq!(objects(tmp.path()), 0, "a cut body was cached");
    // The whole body, unframed too, is kept.
    s.script(
        "/y.png",
        vec![Reply::Unframed {
            body: png(),
            sent: usize::MAX,
        }],
    );
    let p = checked(s.url(), tmp.path(), 3)
        .fetch(&remote(format!("{}/y.png", s.url())))
        .expect("whole");
    assert_eq!(std::fs::read(&p).expect("read"), png());
    let p = checked(s.url(), tmp.path(), 3).fetch(&f).expect("rerun");
    assert_eq!(std::fs::read(&p).expect("read"), png());
}

#[test]
fn a_cached_copy_the_check_refuses_is_removed() {
    let s = TestServer::start();
    s.script(
        "/x.png",
        vec![
            Reply::Html(b"<html>oops</html>".to_vec()),
            Reply::Body(png()),
        ],
    );
    let tmp = tempfile::tempdir().expect("tempdir");
    let f = remote(format!("{}/x.png", s.url()));
    // A resolver without the check (an older version) kept the page.
    let unchecked = builder(s.url(), tmp.path(), 1).build().expect("resolver");
    unchecked.fetch(&f).expect("kept");
    assert_eq!(objects(tmp.path()), 1);
    // Offline, the checked resolver refuses it by URL, removes it, and asks nothing.
    let offline = builder(s.url(), tmp.path(), 1)
        .verify(whole_png)
        .offline(true)
        .build()
        .expect("resolver");
    let err = offline.fetch(&f).expect_err("refused").to_string();
    assert!(
        err.contains(&f.url) && err.contains("not a usable file (not a PNG)"),
        "{err}"
    );
    assert_eq!(objects(tmp.path()), 0);
    assert_eq!(s.count("/x.png"), 1);
    // Online, it downloads the file again.
    let p = checked(s.url(), tmp.path(), 1).fetch(&f).expect("again");
    assert_eq!(std::fs::read(&p).expect("read"), png());
    assert_eq!(s.count("/x.png"), 2);
}

#[test]
fn a_server_that_drips_bytes_is_stopped_by_the_deadline() {
    let s = TestServer::start();
    s.script(
        "/x.png",
        vec![Reply::Drip {
            body: png(),
            every: Duration::from_millis(700),
        }],
    );
    let tmp = tempfile::tempdir().expect("tempdir");
    let r = builder(s.url(), tmp.path(), 5)
        .verify(whole_png)
        .download_deadline(Duration::from_millis(1500))
        .build()
        .expect("resolver");
    let t = Instant::now();
    let e = r
        .fetch(&remote(format!("{}/x.png", s.url())))
        .expect_err("deadline");
    let took = t.elapsed();
    assert!(took < Duration::from_secs(4), "took {took:?}");
    let (_, reason) = download_reason(e);
    assert!(
        reason.contains("download deadline (GT_RESOLVER_DOWNLOAD_DEADLINE)"),
        "{reason}"
    );
    assert_eq!(objects(tmp.path()), 0);
}

#[test]
fn a_body_over_the_cap_fails_at_once_and_is_never_cached() {
    let s = TestServer::start();
    s.file("/big.png", &png());
    s.script(
        "/endless.png",
        vec![Reply::Unframed {
            body: png(),
            sent: usize::MAX,
        }],
    );
    let tmp = tempfile::tempdir().expect("tempdir");
    let r = builder(s.url(), tmp.path(), 3)
        .max_download_bytes(10_000)
        .build()
        .expect("resolver");
    for (path, says) in [
        (
            "/big.png",
            "announces 20020 bytes, over the 10000-byte limit",
        ),
        ("/endless.png", "goes on past the 10000-byte limit"),
    ] {
        let e = r
            .fetch(&remote(format!("{}{path}", s.url())))
            .expect_err(path);
        let (attempts, reason) = download_reason(e);
        assert_eq!(attempts, 1, "{reason}");
        assert!(
            reason.contains(says) && reason.contains("GT_RESOLVER_MAX_BYTES"),
            "{reason}"
        );
        assert_eq!(s.count(path), 1);
    }
    assert_eq!(objects(tmp.path()), 0);
}

#[test]
fn offline_with_nothing_cached_asks_nothing_and_says_so() {
    let s = TestServer::start();
    s.file("/org/ci-data/x", b"never asked");
    let tmp = tempfile::tempdir().expect("tempdir");
    let r = builder(s.url(), tmp.path(), 1)
        .offline(true)
        .tree_listing(false)
        .build()
        .expect("resolver");
    let q = GtQuery::image("c", 1, Some("png"), Platform::H100);
    let resolution = r.resolve(&q).expect("resolve");
    assert_eq!(resolution.source, None);
    assert!(resolution.is_unasked());
    assert!(!resolution.probes.is_empty());
    for p in &resolution.probes {
        assert_eq!((p.answer, p.attempts), (Answer::Unknown, 0), "{p:?}");
        assert!(p.reason.contains("not asked"), "{p:?}");
    }
    let e = resolution.into_found(&q).expect_err("not asked");
    assert!(matches!(e, Error::NotAsked { .. }), "{e}");
    let text = e.to_string();
    assert!(
        text.contains("nothing was asked") && !text.contains("GT not found"),
        "{text}"
    );
    assert_eq!(s.requests(), 0);
}

/// Environment values that cannot be used are ignored with a warning, in a child process so
/// that the variables reach no other test.
#[test]
fn unusable_environment_values_are_warned_about() {
    if std::env::var_os(CHILD_ENV).is_some() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let r = Resolver::builder()
            .source(gt_resolver::Source::new(
                gt_resolver::SourceKind::Sglang,
                gt_resolver::Location::Local(tmp.path().to_path_buf()),
            ))
            .cache_dir(tmp.path().join("cache"))
            .build()
            .expect("resolver");
        let w = r.warnings().join("\n");
        for needle in [
            "GT_RESOLVER_ATTEMPTS=\"abc\" is not a whole number from 1 to 10",
            "GT_RESOLVER_MAX_BYTES=\"-1\"",
            "GT_RESOLVER_DOWNLOAD_DEADLINE=\"0\"",
        ] {
            assert!(w.contains(needle), "`{needle}` missing from: {w}");
        }
        let res = r
            .resolve(&GtQuery::image("c", 1, Some("png"), Platform::H100))
            .expect("resolve");
        assert!(res.notes.iter().any(|n| n.contains("GT_RESOLVER_ATTEMPTS")));
        return;
    }
    let exe = std::env::current_exe().expect("test binary");
    let out = Command::new(exe)
        .args([
            "--exact",
            "unusable_environment_values_are_warned_about",
            "--nocapture",
        ])
        .env(CHILD_ENV, "1")
        .env("GT_RESOLVER_ATTEMPTS", "abc")
        .env("GT_RESOLVER_MAX_BYTES", "-1")
        .env("GT_RESOLVER_DOWNLOAD_DEADLINE", "0")
        .output()
        .expect("child");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
