//! Existence from the pinned commit's file list (GitHub's git/trees API), against one loopback
//! server that plays both raw.githubusercontent.com and api.github.com.

mod support;

use std::path::Path;
use std::time::Duration;

use gt_resolver::{Answer, Backoff, GtQuery, GtRoot, Platform, Resolution, Resolver, SourceKind};
use support::{REV, Reply, Suite, TREE, TestServer, api_path, raw, suite, tree_json};

fn builder(server: &TestServer, cache: &Path) -> gt_resolver::ResolverBuilder {
    Resolver::builder()
        .root(&GtRoot::github(server.url(), "org/ci-data", REV, false).expect("root"))
        .github_api(server.url())
        .github_token(None)
        .timeout(Duration::from_secs(5))
        .cache_dir(cache)
}

fn fast() -> Backoff {
    Backoff {
        attempts: 2,
        initial: Duration::from_millis(1),
        max: Duration::from_millis(2),
    }
}

fn check(suite: &Suite, got: &[Result<Resolution, gt_resolver::Error>]) -> Vec<Resolution> {
    got.iter()
        .zip(&suite.queries)
        .zip(&suite.expected)
        .map(|((r, q), want)| {
            let r = r.as_ref().expect("resolve").clone();
            assert_eq!(r.source, *want, "{}: {:#?}", q.case, r.probes);
            r
        })
        .collect()
}

#[test]
fn eighty_cases_cold_in_two_requests_warm_in_none() {
    let s = TestServer::start();
    let suite = suite(&s);
    s.file(&api_path(), &tree_json(&suite.blobs, false));
    let cache = tempfile::tempdir().expect("tempdir");

    // Upstream's real backoff (1, 2, 4, 8 s): an absent candidate would cost 15 s if it were
    // probed. With the listing nothing is probed at all.
    let cold = builder(&s, cache.path()).build().expect("resolver");
    let resolved = check(&suite, &cold.resolve_many(&suite.queries));
    assert_eq!(s.count(&api_path()), 1, "the commit is listed once");
    assert_eq!(
        s.requests(),
        2,
        "cold: the listing and case_map.json, not one probe"
    );
    for r in &resolved {
        assert!(r.probes.iter().all(|p| p.attempts == 0), "{:#?}", r.probes);
        assert!(
            r.notes
                .iter()
                .any(|n| n.contains("file list of org/ci-data@")),
            "{:?}",
            r.notes
        );
    }
    let absent = resolved
        .iter()
        .flat_map(|r| &r.probes)
        .find(|p| p.answer == Answer::No)
        .expect("some candidate is absent");
    assert!(absent.reason.contains("not listed"), "{}", absent.reason);

    // Warm: a new resolver (a new process) on the same cache makes no request.
    s.reset_counts();
    let warm = builder(&s, cache.path()).build().expect("resolver");
    let again = check(&suite, &warm.resolve_many(&suite.queries));
    assert_eq!(s.requests(), 0, "warm cache must not touch the network");
    for (c, w) in resolved.iter().zip(&again) {
        assert_eq!((c.source, &c.files), (w.source, &w.files));
    }
}

#[test]
fn the_listing_agrees_with_probing() {
    let s = TestServer::start();
    let suite = suite(&s);
    s.file(&api_path(), &tree_json(&suite.blobs, false));
    let listed_cache = tempfile::tempdir().expect("tempdir");
    let probed_cache = tempfile::tempdir().expect("tempdir");
    let listed = builder(&s, listed_cache.path())
        .build()
        .expect("resolver")
        .resolve_many(&suite.queries);
    let probed = builder(&s, probed_cache.path())
        .tree_listing(false)
        .backoff(fast())
        .build()
        .expect("resolver")
        .resolve_many(&suite.queries);
    for (l, p) in check(&suite, &listed).iter().zip(check(&suite, &probed)) {
        assert_eq!((l.source, &l.files), (p.source, &p.files), "{}", l.case);
    }
}

#[test]
fn the_token_is_sent_as_a_bearer() {
    let s = TestServer::start();
    let suite = suite(&s);
    s.file(&api_path(), &tree_json(&suite.blobs, false));
    let cache = tempfile::tempdir().expect("tempdir");
    builder(&s, cache.path())
        .github_token(Some("t0ken".into()))
        .build()
        .expect("resolver")
        .resolve(&suite.queries[0])
        .expect("resolve");
    assert_eq!(
        s.header(&api_path(), "authorization").as_deref(),
        Some("Bearer t0ken")
    );
    assert_eq!(
        s.header(&api_path(), "accept").as_deref(),
        Some("application/vnd.github+json")
    );
}

#[test]
fn an_unavailable_listing_falls_back_to_probing() {
    let s = TestServer::start();
    let suite = suite(&s);
    // GitHub's answer to an exhausted rate limit.
    s.script(&api_path(), vec![Reply::Status(403)]);
    let cache = tempfile::tempdir().expect("tempdir");
    let r = builder(&s, cache.path())
        .backoff(fast())
        .build()
        .expect("resolver");
    let got = check(&suite, &r.resolve_many(&suite.queries));
    assert!(
        got[0]
            .notes
            .iter()
            .any(|n| n.contains("no file list") && n.contains("HTTP 403")),
        "{:?}",
        got[0].notes
    );
    assert!(got[0].probes.iter().any(|p| p.attempts > 0));
}

#[test]
fn a_truncated_listing_falls_back_to_probing_and_is_not_asked_for_again() {
    let s = TestServer::start();
    let suite = suite(&s);
    s.file(&api_path(), &tree_json(&suite.blobs[..3], true));
    let cache = tempfile::tempdir().expect("tempdir");
    let first = builder(&s, cache.path())
        .backoff(fast())
        .build()
        .expect("resolver")
        .resolve(&suite.queries[1])
        .expect("resolve");
    assert_eq!(first.source, suite.expected[1]);
    assert!(
        first.notes.iter().any(|n| n.contains("truncated")),
        "{:?}",
        first.notes
    );
    // Another case in another run: the truncated answer is remembered for this commit.
    let second = builder(&s, cache.path())
        .backoff(fast())
        .build()
        .expect("resolver")
        .resolve(&suite.queries[30])
        .expect("resolve");
    assert_eq!(second.source, suite.expected[30]);
    assert_eq!(s.count(&api_path()), 1);
}

#[test]
fn a_case_map_absent_from_the_listing_is_not_downloaded() {
    let s = TestServer::start();
    s.file(&raw("sglang_generated/c_1gpu.png"), b"ours");
    let blobs = vec![format!("{TREE}/sglang_generated/c_1gpu.png")];
    s.file(&api_path(), &tree_json(&blobs, false));
    let cache = tempfile::tempdir().expect("tempdir");
    let r = builder(&s, cache.path())
        .build()
        .expect("resolver")
        .resolve(&GtQuery::image("c", 1, Some("png"), Platform::H100))
        .expect("resolve");
    assert_eq!(r.source, Some(SourceKind::Sglang));
    assert_eq!(s.count(&raw("official_generated/case_map.json")), 0);
    assert!(
        r.notes.iter().any(|n| n.contains("case_map.json")),
        "{:?}",
        r.notes
    );
    assert_eq!(s.requests(), 1, "only the listing");
}

#[test]
fn only_raw_urls_on_a_known_host_are_listed() {
    let raw_host = TestServer::start();
    let api_host = TestServer::start();
    raw_host.file(&raw("sglang_generated/c_1gpu.png"), b"ours");
    let cache = tempfile::tempdir().expect("tempdir");
    let r = Resolver::builder()
        .root(&GtRoot::github(raw_host.url(), "org/ci-data", REV, false).expect("root"))
        .github_api(api_host.url())
        .backoff(fast())
        .cache_dir(cache.path())
        .build()
        .expect("resolver")
        .resolve(&GtQuery::image("c", 1, Some("png"), Platform::H100))
        .expect("resolve");
    assert_eq!(r.source, Some(SourceKind::Sglang));
    assert_eq!(
        api_host.requests(),
        0,
        "a host that is not GitHub's is probed"
    );
}
