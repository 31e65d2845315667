//! The small commands as outside scripts call them: the JSON contracts of `gt resolve`,
//! `metrics` and `tokenize`, `--help` listing every subcommand, and the exit codes.

use std::path::Path;

use crate::common::{testdata, xtask};

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

fn max_rel_err(path: &Path, key: &str, golden: &Path, golden_key: &str) -> f32 {
    let read = |p: &Path, k: &str| {
        let w = weights::Weights::open(p).unwrap();
        w.get_f32(k).unwrap()
    };
    let (a, sa) = read(path, key);
    let (b, sb) = read(golden, golden_key);
    assert_eq!(sa, sb, "{key} shape");
    parity_support::peak_rel_err(&a, &b)
}

#[test]
fn encode_prompt_writes_what_diffusers_returns() {
    let dir = tempfile::tempdir().unwrap();
    let all: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(testdata().join("text-encoder/prompts.json")).unwrap(),
    )
    .unwrap();
    let prompts = dir.path().join("p.json");
    std::fs::write(&prompts, all["batch"].to_string()).unwrap();
    let out = dir.path().join("out.safetensors");
    let o = xtask()
        .args(["encode-prompt", "--model"])
        .arg(testdata().join("tiny-qwen-image"))
        .arg("--prompts")
        .arg(&prompts)
        .arg("--output")
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let golden = testdata().join("text-encoder/prompt_embeds.safetensors");
    assert!(
        max_rel_err(
            &out,
            "prompt_embeds",
            &golden,
            "batch.encoded.prompt_embeds"
        ) <= 1e-4
    );
    let w = weights::Weights::open(&out).unwrap();
    let g = weights::Weights::open(&golden).unwrap();
    assert_eq!(
        w.get_i64("prompt_embeds_mask").unwrap(),
        g.get_i64("batch.encoded.prompt_embeds_mask").unwrap()
    );
}

#[test]
fn forward_vae_decode_matches_diffusers_and_bad_inputs_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("sample.safetensors");
    let golden = testdata().join("vae/decode_6x10.safetensors");
    let run = |inputs: &Path| {
        xtask()
            .args(["forward", "vae-decode", "--model"])
            .arg(testdata().join("tiny-qwen-image/vae"))
            .arg("--inputs")
            .arg(inputs)
            .arg("--output")
            .arg(&out)
            .output()
            .unwrap()
    };
    let o = run(&golden);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(max_rel_err(&out, "sample", &golden, "sample") <= 1e-4);
    std::fs::remove_file(&out).unwrap();
    let o = run(&testdata().join("dit/b1_nomask.safetensors"));
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("latents"));
    assert!(!out.exists(), "no output file after a failure");
}

#[test]
fn generate_from_a_seed_reproduces_the_diffusers_image() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("img.png");
    // The tiny seed-only case: diffusers with torch.Generator("cpu").manual_seed(42).
    let o = xtask()
        .args(["generate", "--model"])
        .arg(testdata().join("tiny-qwen-image"))
        .args([
            "--prompt",
            "A lighthouse on a cliff at night",
            "--negative-prompt",
            " ",
            "--true-cfg-scale",
            "4",
            "--steps",
            "6",
            "--height",
            "64",
            "--width",
            "48",
            "--seed",
            "42",
            "--out",
        ])
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let ours = metrics::load_rgb(&out).unwrap();
    let gt = metrics::load_rgb(&testdata().join("gt/official_generated/tiny_t2i_seed_1gpu.png"))
        .unwrap();
    assert!(metrics::psnr(&ours, &gt).unwrap() >= 40.0);

    let o = xtask()
        .args([
            "generate",
            "--model",
            "no/such-model-here",
            "--prompt",
            "x",
            "--out",
        ])
        .arg(dir.path().join("x.png"))
        .env("HF_HUB_OFFLINE", "1")
        .env("HF_HOME", dir.path())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no/such-model-here"));
    assert!(!dir.path().join("x.png").exists());
}

#[test]
fn bench_commands_time_a_cfg_step_and_print_the_gpu_table() {
    let dir = tempfile::tempdir().unwrap();
    let t = dir.path().join("t.json");
    let o = xtask()
        .args(["bench", "dit-step", "--config"])
        .arg(testdata().join("tiny-qwen-image/transformer/config.json"))
        .args([
            "--height",
            "128",
            "--width",
            "128",
            "--txt-len",
            "12",
            "--steps",
            "2",
            "--warmup",
            "1",
            "--timings",
        ])
        .arg(&t)
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&t).unwrap()).unwrap();
    assert_eq!(v["runs_ms"].as_array().unwrap().len(), 2);
    assert!(v["median_ms"].as_f64().unwrap() > 0.0);

    let report = dir.path().join("gpu-report.json");
    std::fs::write(
        &report,
        r#"{"card": "NVIDIA H100 80GB HBM3", "date": "2026-11-26", "torch": "2.15.0", "sm_count": 132,
            "max_threads_per_sm": 2048, "rows": [
            {"section": "wide", "item": "dit 4 blocks b1", "ok": true, "max_rel": 0.01, "mean_rel": 0.002,
             "torch_ms": 10.0, "ours_ms": 9.0, "ratio": 0.9},
            {"section": "randn", "item": "cuda randn 12 f32 x2", "ok": true, "skipped": "no CUDA",
             "note": "skipped: no CUDA"},
            {"section": "randn", "item": "cuda randn 12 bf16 x2", "ok": true, "max_abs": 0.0,
             "bit_equal": 1.0, "note": "max abs 0.0e+00, 100.000% bit-equal, 132x2048"},
            {"section": "speed", "item": "DiT 60 layers CFG step 1024²", "ok": false, "torch_ms": 250.0,
             "ours_ms": 300.0, "ratio": 1.2}]}"#,
    )
    .unwrap();
    let o = xtask()
        .args(["bench", "gpu"])
        .arg(&report)
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        o.status.code(),
        Some(1),
        "a failed row makes the exit code 1"
    );
    assert!(
        table.contains("H100") && table.contains("0.90") && table.contains("FAIL"),
        "{table}"
    );
    assert!(table.contains("132 SMs x 2048 threads"), "{table}");
    assert!(
        table.contains("skip ") && table.contains("skipped: no CUDA"),
        "a skipped row is marked, not failed: {table}"
    );
    assert!(table.contains("100.000% bit-equal"), "{table}");
}

#[test]
fn a_device_this_binary_cannot_run_exits_2_naming_the_feature() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out.safetensors");
    let forward = |device: &str, dtype: &str| {
        xtask()
            .args(["forward", "dit", "--model"])
            .arg(testdata().join("tiny-qwen-image/transformer"))
            .arg("--inputs")
            .arg(testdata().join("dit/b1_nomask.safetensors"))
            .arg("--output")
            .arg(&out)
            .args(["--device", device, "--dtype", dtype])
            .output()
            .unwrap()
    };
    // WGSL has no bf16: refused whatever the build.
    let o = forward("wgpu", "bf16");
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("bf16"));
    #[cfg(not(feature = "wgpu"))]
    {
        let o = forward("wgpu", "f32");
        assert_eq!(o.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&o.stderr).contains("--features wgpu"));
    }
    #[cfg(not(feature = "cuda"))]
    {
        let o = forward("cuda", "bf16");
        assert_eq!(o.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&o.stderr).contains("--features cuda"));
    }
    let o = forward("tpu", "f32");
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("cpu, cuda or wgpu"));
    assert!(!out.exists());
}
