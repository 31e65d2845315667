//! The tri-state probe against a real loopback server (upstream PR #29545's state table and more).

mod support;

use std::time::Duration;

use gt_resolver::{Answer, Backoff, Resolver};
use support::{Reply, TestServer};

fn resolver(cache: &std::path::Path) -> Resolver {
    Resolver::builder()
        .source(gt_resolver::Source::new(
            gt_resolver::SourceKind::Sglang,
            gt_resolver::Location::Remote("http://127.0.0.1:9".into()),
        ))
        .backoff(Backoff {
            attempts: 5,
            initial: Duration::from_millis(1),
            max: Duration::from_millis(16),
        })
        .timeout(Duration::from_millis(300))
        .cache_dir(cache)
        .build()
        .expect("resolver")
}

/// (name, script, expected answer, expected attempts)
fn matrix() -> Vec<(&'static str, Vec<Reply>, Answer, u32)> {
    let png = b"\x89PNG fake".to_vec();
    vec![
        ("ok", vec![Reply::Body(png.clone())], Answer::Yes, 1),
        (
            "head_405_get_206",
            vec![Reply::RefuseHead(png.clone())],
            Answer::Yes,
            1,
        ),
        ("persistent_404", vec![Reply::Status(404)], Answer::No, 5),
        // Each attempt is a HEAD then a ranged GET, so the third request opens attempt 2.
        (
            "cdn_warming_404_then_200",
            vec![
                Reply::Status(404),
                Reply::Status(404),
                Reply::Body(png.clone()),
            ],
            Answer::Yes,
            2,
        ),
        (
            "persistent_429",
            vec![Reply::Status(429)],
            Answer::Unknown,
            5,
        ),
        (
            "burst_429_then_200",
            vec![
                Reply::Status(429),
                Reply::Status(429),
                Reply::Status(429),
                Reply::Body(png.clone()),
            ],
            Answer::Yes,
            2,
        ),
        (
            "timeout",
            vec![Reply::Hang(Duration::from_secs(3))],
            Answer::Unknown,
            5,
        ),
        (
            "persistent_503",
            vec![Reply::Status(503)],
            Answer::Unknown,
            5,
        ),
        // Upstream's rule: a clean 4xx on any attempt, with no 200/206 ever, is absent.
        (
            "404_then_429_is_absent",
            vec![Reply::Status(404), Reply::Status(429)],
            Answer::No,
            5,
        ),
        (
            "429_429_then_404_is_absent",
            vec![Reply::Status(429), Reply::Status(429), Reply::Status(404)],
            Answer::No,
            5,
        ),
        (
            "403_405_and_5xx_only_is_unknown",
            vec![Reply::Status(403), Reply::Status(405), Reply::Status(502)],
            Answer::Unknown,
            5,
        ),
        (
            "redirect_to_another_path",
            vec![Reply::Redirect("/elsewhere/target.png".into())],
            Answer::Yes,
            1,
        ),
        ("gone_410", vec![Reply::Status(410)], Answer::No, 5),
    ]
}

#[test]
fn probe_state_table() {
    let server = TestServer::start();
    server.file("/elsewhere/target.png", b"moved");
    let tmp = tempfile::tempdir().expect("tempdir");
    let r = resolver(tmp.path());
    let mut failures = Vec::new();
    for (name, script, want, attempts) in matrix() {
        let path = format!("/{name}.png");
        server.script(&path, script);
        let url = format!("{}{path}", server.url());
        let p = r.exists(&url).expect("valid url");
        if p.answer != want || p.attempts != attempts {
            failures.push(format!(
                "{name}: got {:?} after {} attempt(s), want {want:?} after {attempts}",
                p.answer, p.attempts
            ));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn every_attempt_is_a_head_then_a_ranged_get() {
    let server = TestServer::start();
    let tmp = tempfile::tempdir().expect("tempdir");
    let p = resolver(tmp.path())
        .exists(&format!("{}/gone.png", server.url()))
        .expect("url");
    assert_eq!((p.answer, p.attempts), (Answer::No, 5));
    assert_eq!(p.reason, "HTTP 404");
    assert_eq!(server.methods("/gone.png"), ["HEAD", "GET"].repeat(5));
}

#[test]
fn head_refused_falls_back_to_ranged_get() {
    let server = TestServer::start();
    server.script("/x.png", vec![Reply::RefuseHead(b"abc".to_vec())]);
    let tmp = tempfile::tempdir().expect("tempdir");
    let p = resolver(tmp.path())
        .exists(&format!("{}/x.png", server.url()))
        .expect("url");
    assert_eq!(p.answer, Answer::Yes);
    assert_eq!(server.methods("/x.png"), ["HEAD", "GET"]);
}

#[test]
fn connection_refused_is_unknown_not_absent() {
    // Bind then drop to get a port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let tmp = tempfile::tempdir().expect("tempdir");
    let p = resolver(tmp.path())
        .exists(&format!("http://127.0.0.1:{port}/x.png"))
        .expect("url");
    assert_eq!(p.answer, Answer::Unknown);
    assert_eq!(p.reason, "connection refused");
    assert_eq!(p.describe(), "unknown (connection refused)");
}

#[test]
fn backoff_doubles_and_caps() {
    let b = Backoff::default();
    let secs: Vec<u64> = (1..=6).map(|n| b.delay_after(n).as_secs()).collect();
    assert_eq!(secs, [1, 2, 4, 8, 16, 16]);
}
