//! The small commands as outside scripts call them: the JSON contracts of `gt resolve`,
//! `metrics` and `tokenize`, `--help` listing every subcommand, and the exit codes.

use std::path::{Path, PathBuf};
use std::process::Command;

fn xtask() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_xtask"));
    c.env(
        "GT_RESOLVER_CACHE_DIR",
        std::env::temp_dir().join("qwen-xtask-cli-cache"),
    );
    c.env_remove("SGLANG_CONSISTENCY_GT_DIR");
    c.env_remove("SGLANG_DIFFUSION_CONSISTENCY_PLATFORM");
    c
}

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata")
}

fn json(o: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    })
}

#[test]
fn help_lists_every_subcommand() {
    let o = xtask().arg("--help").output().unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    for cmd in [
        "consistency",
        "generate",
        "forward",
        "encode-prompt",
        "tokenize",
        "metrics",
        "gt",
        "fixtures",
        "bench",
    ] {
        assert!(text.contains(cmd), "{cmd} missing from --help:\n{text}");
    }
}

#[test]
fn gt_resolve_json_follows_the_contract() {
    let o = xtask()
        .args([
            "gt",
            "resolve",
            "--case",
            "tiny_t2i_cfg",
            "--json",
            "--gt-root",
        ])
        .arg(testdata().join("gt"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0));
    let v = json(&o);
    assert_eq!(v["source"], "official");
    assert!(
        v["files"][0]["url"]
            .as_str()
            .unwrap()
            .ends_with("official_generated/tiny_t2i_cfg_1gpu.png")
    );
    assert_eq!(v["files"][0]["name"], "tiny_t2i_cfg_1gpu.png");
    assert!(
        v["probes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["answer"] == "yes" && p["attempts"] == 1)
    );

    let o = xtask()
        .args([
            "gt",
            "resolve",
            "--case",
            "no_such_case",
            "--json",
            "--gt-root",
        ])
        .arg(testdata().join("gt"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(json(&o)["source"], "none");
}

#[test]
fn metrics_json_follows_the_contract() {
    let gt = testdata().join("gt/official_generated/tiny_t2i_cfg_1gpu.png");
    let o = xtask()
        .args(["metrics", "--json"])
        .arg(&gt)
        .arg(&gt)
        .arg("--clip-model")
        .arg(testdata().join("metrics/tiny-clip"))
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let v = json(&o);
    assert_eq!(v["psnr"], "inf");
    assert_eq!(v["ssim"], 1.0);
    assert_eq!(v["mean_abs_diff"], 0.0);
    assert!(v["clip"].as_f64().unwrap() > 0.999);

    let other = testdata().join("gt/official_generated/tiny_t2i_nonsquare_1gpu.png");
    let o = xtask()
        .args(["metrics", "--json"])
        .arg(&gt)
        .arg(&other)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "different sizes are an error");
    assert!(String::from_utf8_lossy(&o.stderr).contains("64"));
}

#[test]
fn tokenize_json_says_which_path_and_why() {
    let o = xtask()
        .args(["tokenize", "--json", "--text", "Hello world", "--model"])
        .arg(testdata().join("tiny-qwen-image"))
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let v = json(&o);
    assert_eq!(v["path"], "slow");
    assert!(v["reason"].as_str().unwrap().contains("Qwen2Tokenizer"));
    assert_eq!(v["ids"], serde_json::json!([9707, 1879]));
}
