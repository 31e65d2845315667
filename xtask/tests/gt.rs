//! `cargo xtask gt resolve` exit codes: 0 found, 1 no GT anywhere, 2 the lookup could not run
//! (a local root that is missing or a file, a GT host that could not be asked at all).

use std::path::Path;
use std::process::Output;

use crate::common::{stderr, testdata, xtask_with_cache as xtask};

fn resolve(cache: &Path, case: &str, root: &str) -> Output {
    xtask(cache)
        .args(["gt", "resolve", "--json", "--case", case, "--gt-root", root])
        .output()
        .expect("run xtask")
}

#[test]
fn found_is_0_and_missing_is_1() {
    let cache = tempfile::tempdir().expect("tempdir");
    let root = testdata().join("gt").display().to_string();
    let o = resolve(cache.path(), "tiny_t2i_cfg", &root);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = resolve(cache.path(), "no_such_case", &root);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
}

#[test]
fn a_local_root_that_is_missing_or_a_file_is_2() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let file = tmp.path().join("gt.png");
    std::fs::write(&file, b"not a folder").expect("write");
    let missing = tmp.path().join("no-such-gt");
    for (root, why) in [(&missing, "no such folder"), (&file, "is a file")] {
        let o = resolve(tmp.path(), "tiny_t2i_cfg", &root.display().to_string());
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
        let err = stderr(&o);
        assert!(
            err.contains(&root.display().to_string()) && err.contains(why),
            "{err}"
        );
    }
}

#[test]
fn a_root_that_refuses_connections_is_2_and_says_so() {
    let cache = tempfile::tempdir().expect("tempdir");
    let o = resolve(cache.path(), "tiny_t2i_cfg", "http://127.0.0.1:1");
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    // The JSON contract is still printed, with the reason of every probe.
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON on stdout");
    let probes = v["probes"].as_array().expect("probes");
    assert!(!probes.is_empty());
    for p in probes {
        assert_eq!(p["answer"], "unknown", "{p}");
        assert_eq!(p["reason"], "connection refused", "{p}");
    }
    let err = stderr(&o);
    assert!(
        err.contains("every probe") && err.contains("connection refused"),
        "{err}"
    );
    // Plain output shows the reason too.
    let o = xtask(cache.path())
        .args([
            "gt",
            "resolve",
            "--case",
            "tiny_t2i_cfg",
            "--gt-root",
            "http://127.0.0.1:1",
        ])
        .output()
        .expect("run xtask");
    assert_eq!(o.status.code(), Some(2));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("unknown x1  http://127.0.0.1:1/") && text.contains("(connection refused)"),
        "{text}"
    );
}
