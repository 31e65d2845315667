//! `cargo xtask fixtures` says whether the oracle ran (issue 29, item 7): a Python that is
//! killed before it finishes is "could not run" (2), one that fails is 1. A fake venv stands in
//! for the reference one (`QWEN_REFERENCE_VENV`), so nothing is installed and testdata/ is never
//! touched (`--out` is a temp folder).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::common::{root, stderr, xtask};

/// A venv whose `bin/python` runs `script`, with the requirements stamp already current.
fn fake_venv(dir: &Path, script: &str) {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).expect("mkdir");
    let python = bin.join("python");
    std::fs::write(&python, format!("#!/bin/sh\n{script}\n")).expect("write");
    std::fs::set_permissions(&python, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let req = std::fs::read(root().join("xtask/reference/requirements.txt")).expect("reqs");
    std::fs::write(dir.join(".requirements"), req).expect("stamp");
}

fn fixtures(venv: &Path, out: &Path) -> std::process::Output {
    xtask()
        .env("QWEN_REFERENCE_VENV", venv)
        .args(["fixtures", "--only", "dit", "--out"])
        .arg(out)
        .output()
        .expect("run xtask")
}

#[test]
fn a_killed_oracle_is_2_and_a_failed_one_is_1() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("out");
    let killed = dir.path().join("killed");
    fake_venv(&killed, "kill -9 $$");
    let o = fixtures(&killed, &out);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("killed by signal 9") && err.contains("run `cargo xtask fixtures` again"),
        "{err}"
    );
    let failed = dir.path().join("failed");
    fake_venv(&failed, "exit 1");
    let o = fixtures(&failed, &out);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let fine = dir.path().join("fine");
    fake_venv(&fine, "exit 0");
    let o = fixtures(&fine, &out);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}
