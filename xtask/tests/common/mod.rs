//! What the CLI test files share: the repository paths, the xtask binary kept off the user's
//! environment, and its stderr as text.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository root (xtask's parent).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

pub fn testdata() -> PathBuf {
    root().join("testdata")
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The xtask binary with its GT cache in `cache`, and none of the shell's GT settings (a local GT
/// folder, a platform, a GitHub API root or token). One attempt per GT probe or download: the
/// 404s and unreachable hosts of these tests are made on purpose, and upstream's five attempts
/// would sleep 15 s on each (the schedule itself is tested in gt-resolver/tests/probe.rs).
pub fn xtask_with_cache(cache: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_xtask"));
    c.env("GT_RESOLVER_CACHE_DIR", cache)
        .env("GT_RESOLVER_ATTEMPTS", "1");
    for var in [
        "SGLANG_CONSISTENCY_GT_DIR",
        "SGLANG_DIFFUSION_CONSISTENCY_PLATFORM",
        "QWEN_GITHUB_API",
        "GITHUB_TOKEN",
    ] {
        c.env_remove(var);
    }
    c
}

/// [`xtask_with_cache`] with one GT cache for all these tests, away from the user's.
pub fn xtask() -> Command {
    xtask_with_cache(&std::env::temp_dir().join("qwen-xtask-test-cache"))
}

/// A run's `OUT/report.json`.
pub fn report(out: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(out.join("report.json")).expect("report.json");
    serde_json::from_str(&text).expect("report JSON")
}

/// The case `id` of a report.
pub fn case<'a>(r: &'a serde_json::Value, id: &str) -> &'a serde_json::Value {
    r["cases"]
        .as_array()
        .expect("cases")
        .iter()
        .find(|c| c["id"] == id)
        .expect("the case is in the report")
}
