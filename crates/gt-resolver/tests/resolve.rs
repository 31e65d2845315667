//! Which source and files a query resolves to, against a real loopback server and local trees.

mod support;

use std::path::Path;
use std::time::Duration;

use gt_resolver::{
    Answer, Backoff, Error, GtQuery, GtRoot, Location, Platform, Resolution, Resolver, Source,
    SourceKind,
};
use support::{Reply, TestServer};

const REV: &str = "4ce5eeb9606e378478b2d0964d83e960af4e88cf";
const REPO: &str = "org/ci-data";

fn gt_path(rel: &str) -> String {
    format!("/{REPO}/{REV}/diffusion-ci/consistency_gt/{rel}")
}

fn fast() -> Backoff {
    Backoff {
        attempts: 3,
        initial: Duration::from_millis(1),
        max: Duration::from_millis(4),
    }
}

fn resolver_for(server: &TestServer, cache: &Path) -> Resolver {
    let root = GtRoot::github(server.url(), REPO, REV, false).expect("pinned root");
    Resolver::builder()
        .root(&root)
        .backoff(fast())
        .timeout(Duration::from_millis(500))
        .cache_dir(cache)
        .build()
        .expect("resolver")
}

fn case_map(server: &TestServer, entries: &[(&str, &[&str])]) {
    let cases: serde_json::Map<String, serde_json::Value> = entries
        .iter()
        .map(|(id, outs)| (id.to_string(), serde_json::json!({ "outputs": outs })))
        .collect();
    let body = serde_json::json!({ "cases": cases }).to_string();
    server.file(
        &gt_path("official_generated/case_map.json"),
        body.as_bytes(),
    );
}

fn names(r: &Resolution) -> Vec<&str> {
    r.files.iter().map(|f| f.name.as_str()).collect()
}

fn png(case: &str) -> GtQuery {
    GtQuery::image(case, 1, Some("png"), Platform::H100)
}

#[test]
fn official_present_but_not_declared_uses_ours() {
    let s = TestServer::start();
    case_map(&s, &[("other_case", &["other_case_1gpu.png"])]);
    s.file(&gt_path("official_generated/c_1gpu.png"), b"official");
    s.file(&gt_path("sglang_generated/c_1gpu.png"), b"ours");
    let tmp = tempfile::tempdir().expect("tempdir");
    let r = resolver_for(&s, tmp.path())
        .resolve(&png("c"))
        .expect("resolve");
    assert_eq!(r.source, Some(SourceKind::Sglang));
    assert!(
        r.notes.iter().any(|n| n.contains("not declared")),
        "{:?}",
        r.notes
    );
    // The undeclared official file is never even probed.
    assert_eq!(s.count(&gt_path("official_generated/c_1gpu.png")), 0);
}

#[test]
fn declared_official_wins_over_ours() {
    let s = TestServer::start();
    case_map(&s, &[("c", &["c_1gpu.png"])]);
    s.file(&gt_path("official_generated/c_1gpu.png"), b"official");
    s.file(&gt_path("sglang_generated/c_1gpu.png"), b"ours");
    let tmp = tempfile::tempdir().expect("tempdir");
    let r = resolver_for(&s, tmp.path())
        .resolve(&png("c"))
        .expect("resolve");
    assert_eq!(r.source, Some(SourceKind::Official));
    assert_eq!(names(&r), ["c_1gpu.png"]);
    assert_eq!(
        r.files[0].url,
        format!("{}{}", s.url(), gt_path("official_generated/c_1gpu.png"))
    );
}

#[test]
fn forced_case_ignores_declared_official() {
    let s = TestServer::start();
    let case = "qwen_image_edit_2509_ti2i";
    case_map(&s, &[(case, &["qwen_image_edit_2509_ti2i_1gpu.png"])]);
    s.file(
        &gt_path("official_generated/qwen_image_edit_2509_ti2i_1gpu.png"),
        b"o",
    );
    s.file(
        &gt_path("sglang_generated/qwen_image_edit_2509_ti2i_1gpu.png"),
        b"s",
    );
    let tmp = tempfile::tempdir().expect("tempdir");
    let r = resolver_for(&s, tmp.path())
        .resolve(&png(case))
        .expect("resolve");
    assert_eq!(r.source, Some(SourceKind::Sglang));
    assert!(
        r.notes.iter().any(|n| n.contains("forced")),
        "{:?}",
        r.notes
    );
}

#[test]
fn platform_file_wins_over_bare() {
    let s = TestServer::start();
    case_map(&s, &[("c", &["c_1gpu.png"])]);
    // Bare official GT exists and is declared, yet platform GT of ours comes first (upstream's
    // test_remote_platform_video_gt_prefers_platform_sglang_before_default_official).
    s.file(&gt_path("official_generated/c_1gpu.png"), b"o");
    s.file(&gt_path("sglang_generated/h100/c_1gpu.png"), b"s-h100");
    s.file(&gt_path("sglang_generated/c_1gpu.png"), b"s");
    let tmp = tempfile::tempdir().expect("tempdir");
    let r = resolver_for(&s, tmp.path())
        .resolve(&png("c"))
        .expect("resolve");
    assert_eq!(r.source, Some(SourceKind::Sglang));
    assert_eq!(names(&r), ["h100/c_1gpu.png"]);
}

#[test]
fn requested_format_first_then_png_jpg_webp() {
    let s = TestServer::start();
    case_map(&s, &[]);
    s.file(&gt_path("sglang_generated/c_1gpu.jpg"), b"j");
    s.file(&gt_path("sglang_generated/c_1gpu.webp"), b"w");
    let tmp = tempfile::tempdir().expect("tempdir");
    let r = resolver_for(&s, tmp.path());
    assert_eq!(
        names(
            &r.resolve(&GtQuery::image("c", 1, Some("webp"), Platform::H100))
                .expect("r")
        ),
        ["c_1gpu.webp"]
    );
    assert_eq!(names(&r.resolve(&png("c")).expect("r")), ["c_1gpu.jpg"]);
}

fn frames(case: &str) -> [String; 3] {
    ["frame_0", "frame_mid", "frame_last"].map(|f| format!("{case}_1gpu_{f}.png"))
}

#[test]
fn video_with_a_missing_frame_at_official_uses_next_source() {
    let s = TestServer::start();
    let [f0, fm, fl] = frames("v");
    case_map(&s, &[("v", &[f0.as_str(), fm.as_str(), fl.as_str()])]);
    s.file(&gt_path(&format!("official_generated/{f0}")), b"0");
    s.file(&gt_path(&format!("official_generated/{fl}")), b"2");
    for f in [&f0, &fm, &fl] {
        s.file(&gt_path(&format!("sglang_generated/{f}")), b"x");
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let r = resolver_for(&s, tmp.path())
        .resolve(&GtQuery::video("v", 1, Platform::H100))
        .expect("resolve");
    assert_eq!(r.source, Some(SourceKind::Sglang));
    assert_eq!(names(&r), [f0.as_str(), fm.as_str(), fl.as_str()]);
    let missing = r
        .probes
        .iter()
        .find(|p| p.url.ends_with(&format!("official_generated/{fm}")))
        .expect("official mid frame probed");
    assert_eq!(missing.answer, Answer::No);
}

#[test]
fn legacy_is_the_last_resort_and_says_so() {
    let s = TestServer::start();
    case_map(&s, &[]);
    s.file(&gt_path("c_1gpu.png"), b"legacy");
    let tmp = tempfile::tempdir().expect("tempdir");
    let r = resolver_for(&s, tmp.path())
        .resolve(&png("c"))
        .expect("resolve");
    assert_eq!(r.source, Some(SourceKind::Legacy));
    assert!(
        r.notes.iter().any(|n| n.contains("legacy")),
        "{:?}",
        r.notes
    );
}

#[test]
fn unknown_answer_is_taken_as_present_and_logged() {
    let s = TestServer::start();
    case_map(&s, &[("c", &["c_1gpu.png"])]);
    s.script(
        &gt_path("official_generated/c_1gpu.png"),
        vec![Reply::Status(429)],
    );
    s.file(&gt_path("sglang_generated/c_1gpu.png"), b"ours");
    let tmp = tempfile::tempdir().expect("tempdir");
    let r = resolver_for(&s, tmp.path())
        .resolve(&png("c"))
        .expect("resolve");
    assert_eq!(r.source, Some(SourceKind::Official));
    assert!(
        r.notes.iter().any(|n| n.contains("treated as present")),
        "{:?}",
        r.notes
    );
}

#[test]
fn throttled_then_404_platform_copy_loses_to_the_bare_official_file() {
    // Issue: a platform copy answering 429, 429, then 404 used to count as "unknown" (present),
    // so a file that does not exist beat the bare official file that does. Upstream's rule makes
    // it "no".
    let s = TestServer::start();
    case_map(&s, &[("c", &["c_1gpu.png"])]);
    let platform_copy = gt_path("sglang_generated/h100/c_1gpu.png");
    s.script(
        &platform_copy,
        vec![Reply::Status(429), Reply::Status(429), Reply::Status(404)],
    );
    s.file(&gt_path("official_generated/c_1gpu.png"), b"official");
    let tmp = tempfile::tempdir().expect("tempdir");
    let r = resolver_for(&s, tmp.path())
        .resolve(&png("c"))
        .expect("resolve");
    assert_eq!(r.source, Some(SourceKind::Official));
    assert_eq!(names(&r), ["c_1gpu.png"]);
    let p = r
        .probes
        .iter()
        .find(|p| p.url.ends_with("sglang_generated/h100/c_1gpu.png"))
        .expect("platform copy probed");
    assert_eq!((p.answer, p.reason.as_str()), (Answer::No, "HTTP 404"));
    assert!(s.count(&platform_copy) >= 3);
}

#[test]
fn a_root_that_refuses_connections_is_unknown_with_its_reason_and_unconfirmed() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let r = Resolver::builder()
        .root(&GtRoot::parse("http://127.0.0.1:1/gt", false).expect("root"))
        .backoff(fast())
        .cache_dir(tmp.path())
        .build()
        .expect("resolver")
        .resolve(&png("c"))
        .expect("resolve");
    // Upstream's benefit of the doubt: a source is chosen...
    assert_eq!(r.source, Some(SourceKind::Sglang));
    assert!(!r.probes.is_empty());
    for p in &r.probes {
        assert_eq!(p.describe(), "unknown (connection refused)", "{}", p.url);
    }
    // ...but nothing confirmed it, and every output says why.
    assert!(r.is_unconfirmed());
    assert_eq!(r.unknown_reasons(), "connection refused");
    let j: serde_json::Value = serde_json::from_str(&r.to_json()).expect("json");
    assert_eq!(j["probes"][0]["answer"], "unknown");
    assert_eq!(j["probes"][0]["reason"], "connection refused");
    assert!(
        r.notes
            .iter()
            .any(|n| n.contains("(connection refused)") && n.contains("treated as present")),
        "{:?}",
        r.notes
    );
}

#[test]
fn a_confirmed_choice_is_not_unconfirmed() {
    let s = TestServer::start();
    case_map(&s, &[]);
    s.script(
        &gt_path("sglang_generated/h100/c_1gpu.png"),
        vec![Reply::Status(503)],
    );
    s.file(&gt_path("sglang_generated/h100/c_1gpu.jpg"), b"ours");
    let tmp = tempfile::tempdir().expect("tempdir");
    let r = resolver_for(&s, tmp.path())
        .resolve(&png("c"))
        .expect("resolve");
    assert_eq!(names(&r), ["h100/c_1gpu.jpg"]);
    assert!(!r.is_unconfirmed());
}

#[test]
fn a_local_root_that_is_missing_or_a_file_is_an_error_naming_it() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let file = tmp.path().join("gt.txt");
    std::fs::write(&file, b"not a folder").expect("write");
    let missing = tmp.path().join("nope");
    for (dir, why) in [(&missing, "no such folder"), (&file, "is a file")] {
        let root = GtRoot::parse(&dir.display().to_string(), false).expect("parse");
        let err = Resolver::builder()
            .root(&root)
            .cache_dir(tmp.path().join("cache"))
            .build()
            .expect_err("not a folder");
        assert!(matches!(err, Error::InvalidLocation { .. }), "{err}");
        let msg = err.to_string();
        assert!(
            msg.contains(&dir.display().to_string()) && msg.contains(why),
            "{msg}"
        );
        let err = Resolver::builder()
            .local_override(Some(dir.clone()))
            .cache_dir(tmp.path().join("cache"))
            .build()
            .expect_err("override not a folder");
        assert!(err.to_string().contains(why), "{err}");
    }
}

#[test]
fn an_unreadable_case_map_is_no_false_missing() {
    // Official GT only, and the case map answers 503 throughout: "missing" would be a guess.
    let s = TestServer::start();
    s.script(
        &gt_path("official_generated/case_map.json"),
        vec![Reply::Status(503)],
    );
    s.file(&gt_path("official_generated/c_1gpu.png"), b"official");
    s.file(&gt_path("sglang_generated/d_1gpu.png"), b"ours");
    let tmp = tempfile::tempdir().expect("tempdir");
    let r = resolver_for(&s, tmp.path());
    let err = r.resolve(&png("c")).expect_err("cannot tell");
    assert!(matches!(err, Error::CaseMapUnavailable { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("case_map.json") && msg.contains("HTTP 503") && msg.contains(" c:"),
        "{msg}"
    );
    // A case another source has is still resolved (with a note that official was skipped).
    let d = r.resolve(&png("d")).expect("resolve");
    assert_eq!(d.source, Some(SourceKind::Sglang));
    assert!(
        d.notes.iter().any(|n| n.contains("skipped in this run")),
        "{:?}",
        d.notes
    );
}

#[test]
fn missing_case_map_means_no_official() {
    let s = TestServer::start();
    s.file(&gt_path("official_generated/c_1gpu.png"), b"o");
    s.file(&gt_path("sglang_generated/c_1gpu.png"), b"s");
    let tmp = tempfile::tempdir().expect("tempdir");
    let r = resolver_for(&s, tmp.path())
        .resolve(&png("c"))
        .expect("resolve");
    assert_eq!(r.source, Some(SourceKind::Sglang));
    assert!(
        r.notes.iter().any(|n| n.contains("case_map.json")),
        "{:?}",
        r.notes
    );
    // 404 is final for a download: one request, not a retry loop.
    assert_eq!(s.count(&gt_path("official_generated/case_map.json")), 1);
}

#[test]
fn not_found_names_case_urls_revision_and_what_to_do() {
    let s = TestServer::start();
    case_map(&s, &[]);
    let tmp = tempfile::tempdir().expect("tempdir");
    let q = png("nowhere");
    let r = resolver_for(&s, tmp.path()).resolve(&q).expect("resolve");
    assert_eq!(r.source, None);
    assert!(r.to_json().contains(r#""source": "none""#));
    let err = r.into_found(&q).expect_err("no GT anywhere");
    assert!(matches!(err, Error::NotFound { .. }));
    let msg = err.to_string();
    for needle in [
        "nowhere",
        REV,
        "sglang_generated/h100/nowhere_1gpu.png",
        "sglang_generated/nowhere_1gpu.webp",
        "consistency_gt/nowhere_1gpu.jpg",
        "ci-data-diffusion",
        "SGLANG_CONSISTENCY_GT_DIR",
    ] {
        assert!(msg.contains(needle), "missing {needle:?} in:\n{msg}");
    }
}

#[test]
fn json_has_exactly_the_contract_shape() {
    let s = TestServer::start();
    case_map(&s, &[]);
    s.file(&gt_path("sglang_generated/c_1gpu.png"), b"s");
    let tmp = tempfile::tempdir().expect("tempdir");
    let r = resolver_for(&s, tmp.path())
        .resolve(&png("c"))
        .expect("resolve");
    let text = r.to_json();
    // Contract order: source, files, probes.
    let at = |k: &str| text.find(&format!("\"{k}\":")).expect(k);
    assert!(
        at("source") < at("files") && at("files") < at("probes"),
        "{text}"
    );
    let j: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
    assert_eq!(j.as_object().expect("object").len(), 3);
    assert_eq!(j["source"], "sglang");
    assert_eq!(j["files"][0].as_object().expect("file").len(), 2);
    let probe = j["probes"][0].as_object().expect("probe");
    // `reason` is the one addition to the contract's probe object.
    assert_eq!(
        probe.keys().map(String::as_str).collect::<Vec<_>>(),
        ["answer", "attempts", "reason", "url"]
    );
    assert!(
        j["probes"]
            .as_array()
            .expect("probes")
            .iter()
            .any(|p| p["answer"] == "yes")
    );
}

#[test]
fn floating_main_is_refused_unless_allowed() {
    let err = GtRoot::github(
        "https://raw.githubusercontent.com",
        "sgl-project/ci-data",
        "main",
        false,
    )
    .expect_err("floating main refused");
    assert!(err.to_string().contains("main"), "{err}");
    assert!(
        GtRoot::github(
            "https://raw.githubusercontent.com",
            "sgl-project/ci-data",
            "main",
            true
        )
        .is_ok()
    );
    assert!(GtRoot::parse("https://raw.githubusercontent.com/sgl-project/ci-data/main/diffusion-ci/consistency_gt", false).is_err());
    let pinned = GtRoot::parse(
        &format!("https://raw.githubusercontent.com/{REPO}/{REV}/x"),
        false,
    )
    .expect("pinned");
    assert_eq!(pinned.revision.as_deref(), Some(REV));
}

#[test]
fn invalid_case_ids_are_rejected() {
    let s = TestServer::start();
    let tmp = tempfile::tempdir().expect("tempdir");
    let r = resolver_for(&s, tmp.path());
    for bad in ["../etc", "a/b", "", "x y", ".."] {
        assert!(
            matches!(r.resolve(&png(bad)), Err(Error::InvalidCase { .. })),
            "{bad:?}"
        );
    }
}

fn write(root: &Path, rel: &str, bytes: &[u8]) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
    std::fs::write(p, bytes).expect("write");
}

#[test]
fn local_tree_follows_the_same_rules() {
    let gt = tempfile::tempdir().expect("tempdir");
    let cache = tempfile::tempdir().expect("tempdir");
    write(
        gt.path(),
        "official_generated/case_map.json",
        br#"{"cases": {"c": {"outputs": ["c_1gpu.png"]}}}"#,
    );
    write(gt.path(), "official_generated/c_1gpu.png", b"o");
    write(gt.path(), "official_generated/d_1gpu.png", b"o");
    write(gt.path(), "sglang_generated/d_1gpu.png", b"s");
    let root = GtRoot::parse(&format!("file://{}", gt.path().display()), false).expect("root");
    let r = Resolver::builder()
        .root(&root)
        .cache_dir(cache.path())
        .build()
        .expect("resolver");
    let c = r.resolve(&png("c")).expect("c");
    assert_eq!(c.source, Some(SourceKind::Official));
    assert!(c.files[0].url.starts_with("file://"));
    let path = r.fetch(&c.files[0]).expect("local fetch");
    assert_eq!(std::fs::read(path).expect("read"), b"o");
    assert_eq!(
        r.resolve(&png("d")).expect("d").source,
        Some(SourceKind::Sglang)
    );
}

#[test]
fn flat_local_override_replaces_remote_lookup() {
    let s = TestServer::start();
    let gt = tempfile::tempdir().expect("tempdir");
    let cache = tempfile::tempdir().expect("tempdir");
    write(gt.path(), "h100/c_1gpu.png", b"local");
    let r = Resolver::builder()
        .root(&GtRoot::github(s.url(), REPO, REV, false).expect("root"))
        .local_override(Some(gt.path().to_path_buf()))
        .cache_dir(cache.path())
        .build()
        .expect("resolver");
    let res = r.resolve(&png("c")).expect("resolve");
    assert_eq!(names(&res), ["h100/c_1gpu.png"]);
    assert!(res.files[0].local_path.is_some());
    assert_eq!(s.requests(), 0, "no remote lookup with a local override");
}

#[test]
fn resolve_many_keeps_order_and_warm_cache_makes_no_request() {
    let s = TestServer::start();
    let declared: Vec<(String, [String; 1])> = (0..12)
        .step_by(2)
        .map(|i| (format!("c{i}"), [format!("c{i}_1gpu.png")]))
        .collect();
    let entries: Vec<(&str, Vec<&str>)> = declared
        .iter()
        .map(|(c, o)| (c.as_str(), o.iter().map(String::as_str).collect()))
        .collect();
    let entries: Vec<(&str, &[&str])> = entries.iter().map(|(c, o)| (*c, o.as_slice())).collect();
    case_map(&s, &entries);
    let mut queries = Vec::new();
    for i in 0..12 {
        let case = format!("c{i}");
        let folder = if i % 2 == 0 {
            "official_generated"
        } else {
            "sglang_generated"
        };
        s.file(&gt_path(&format!("{folder}/{case}_1gpu.png")), b"x");
        queries.push(png(&case));
    }
    let tmp = tempfile::tempdir().expect("tempdir");
    let cold = resolver_for(&s, tmp.path()).resolve_many(&queries);
    for (q, r) in queries.iter().zip(&cold) {
        let r = r.as_ref().expect("resolved");
        assert_eq!(r.case, q.case);
        let even = q.case[1..].parse::<u32>().expect("index") % 2 == 0;
        let want = if even {
            SourceKind::Official
        } else {
            SourceKind::Sglang
        };
        assert_eq!(r.source, Some(want), "{}", q.case);
    }
    let before = s.requests();
    let warm = resolver_for(&s, tmp.path()).resolve_many(&queries);
    assert_eq!(
        s.requests(),
        before,
        "warm cache must not touch the network"
    );
    for (c, w) in cold.iter().zip(&warm) {
        let (c, w) = (c.as_ref().expect("cold"), w.as_ref().expect("warm"));
        assert_eq!((c.source, &c.files), (w.source, &w.files));
    }
}

#[test]
fn offline_serves_from_cache_only() {
    let s = TestServer::start();
    case_map(&s, &[]);
    s.file(&gt_path("sglang_generated/c_1gpu.png"), b"ours");
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = GtRoot::github(s.url(), REPO, REV, false).expect("root");
    let offline = || {
        Resolver::builder()
            .root(&root)
            .offline(true)
            .cache_dir(tmp.path())
            .build()
            .expect("resolver")
    };
    // Cold cache, offline: nothing is found and nothing is requested.
    let r = offline().resolve(&png("c")).expect("resolve");
    assert_eq!(r.source, None);
    assert_eq!(s.requests(), 0);
    // Online once, fetching the file; then offline resolves and fetches with no request.
    let online = resolver_for(&s, tmp.path());
    let r = online.resolve(&png("c")).expect("resolve");
    online.fetch(&r.files[0]).expect("fetch");
    let before = s.requests();
    let off = offline();
    let r = off.resolve(&png("c")).expect("resolve");
    assert_eq!(r.source, Some(SourceKind::Sglang));
    assert_eq!(
        std::fs::read(off.fetch(&r.files[0]).expect("cached")).expect("read"),
        b"ours"
    );
    assert_eq!(s.requests(), before);
}

#[test]
fn explicit_sources_accept_plain_paths_and_urls() {
    let loc = Location::parse("/tmp/gt").expect("path");
    assert!(loc.is_local());
    assert!(
        matches!(Location::parse("https://h/x/").expect("url"), Location::Remote(u) if u == "https://h/x")
    );
    assert!(Location::parse("ftp://h/x").is_err());
    let src = Source::new(SourceKind::Legacy, loc);
    assert!(src.is_pinned(), "local folders need no pin");
}

#[test]
fn sequential_and_parallel_agree_and_sequential_stops_early() {
    let s = TestServer::start();
    case_map(&s, &[("c", &["c_1gpu.png"])]);
    s.file(&gt_path("official_generated/c_1gpu.png"), b"o");
    s.file(&gt_path("sglang_generated/c_1gpu.png"), b"s");
    let q = png("c");
    let seq_cache = tempfile::tempdir().expect("tempdir");
    let seq = Resolver::builder()
        .root(&GtRoot::github(s.url(), REPO, REV, false).expect("root"))
        .backoff(fast())
        .max_in_flight(1)
        .cache_dir(seq_cache.path())
        .build()
        .expect("resolver")
        .resolve(&q)
        .expect("sequential");
    let par_cache = tempfile::tempdir().expect("tempdir");
    let par = resolver_for(&s, par_cache.path())
        .resolve(&q)
        .expect("parallel");
    assert_eq!((seq.source, &seq.files), (par.source, &par.files));
    // One URL after another: the bare ours candidates after the official hit are never probed.
    assert!(
        seq.probes.len() < par.probes.len(),
        "{} vs {}",
        seq.probes.len(),
        par.probes.len()
    );
    assert!(
        !seq.probes
            .iter()
            .any(|p| p.url.ends_with("sglang_generated/c_1gpu.png"))
    );
}
