//! The GPU-style code path (burn-cubecl: fusion, autotune, the matmul/softmax/masking/cast kernels
//! CUDA shares) on burn's wgpu backend, against the same official goldens and tolerances as the CPU
//! tests: `forward dit` on the padded-mask batch, `forward vae-decode`, the text encoder (one
//! prompt layer by layer and a padded batch through the prompt path), and one end-to-end case.
//!
//! Compiled only with `--features wgpu` (`cargo test -p xtask --features wgpu --test wgpu`); CI
//! runs it on Mesa's software Vulkan driver (lavapipe). Without a Vulkan driver every test fails
//! with the backend's message: a run that cannot reach the backend must not pass.
#![cfg(feature = "wgpu")]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The CPU tests' f32 tolerance (max relative error against the golden's largest magnitude).
const TOLERANCE: f32 = 1e-4;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn testdata() -> PathBuf {
    root().join("testdata")
}

/// The binary under test: cargo's, or `QWEN_XTASK_BIN` (a copy, for a shared `target/` where
/// another build may relink `target/debug/xtask` without the feature mid-run).
fn xtask(args: &[&str]) -> Output {
    let bin = std::env::var_os("QWEN_XTASK_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_xtask")));
    Command::new(bin)
        .args(args)
        // cubecl keeps its autotune cache in `target/` beside the nearest Cargo.toml above the
        // working directory: the workspace's (ignored), not a new `xtask/target/`.
        .current_dir(root())
        // Keep the GT cache of these runs away from the user's.
        .env(
            "GT_RESOLVER_CACHE_DIR",
            std::env::temp_dir().join("qwen-xtask-test-cache"),
        )
        .env_remove("SGLANG_CONSISTENCY_GT_DIR")
        .env_remove("SGLANG_DIFFUSION_CONSISTENCY_PLATFORM")
        .output()
        .expect("run xtask")
}

fn succeeded(o: &Output) {
    assert_eq!(
        o.status.code(),
        Some(0),
        "stderr: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

fn path(p: &Path) -> &str {
    p.to_str().expect("UTF-8 path")
}

/// A tensor of a safetensors file as f32 values (i64 read as exact integers), with its shape.
fn read(file: &Path, name: &str) -> (Vec<f32>, Vec<usize>) {
    let bytes = std::fs::read(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    let st = safetensors::SafeTensors::deserialize(&bytes).expect("safetensors");
    let t = st
        .tensor(name)
        .unwrap_or_else(|e| panic!("{}: {name}: {e}", file.display()));
    let v = match t.dtype() {
        safetensors::Dtype::F32 => t
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        safetensors::Dtype::I64 => t
            .data()
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes(c.try_into().expect("8 bytes")) as f32)
            .collect(),
        other => panic!("{name}: unexpected {other:?}"),
    };
    (v, t.shape().to_vec())
}

/// Max |ours − theirs| over max |theirs|, after checking the shapes agree.
fn max_rel_err(ours: &(Vec<f32>, Vec<usize>), theirs: &(Vec<f32>, Vec<usize>)) -> f32 {
    assert_eq!(ours.1, theirs.1, "shape");
    // A NaN anywhere must fail, not vanish in `max`.
    assert!(ours.0.iter().all(|v| v.is_finite()), "non-finite output");
    parity_support::peak_rel_err(ours, theirs)
}

fn assert_within(what: &str, err: f32) {
    eprintln!("wgpu {what}: max relative error {err:.3e}");
    assert!(err <= TOLERANCE, "{what}: max relative error {err:e}");
}

/// `forward <component>` on the golden inputs with `--device wgpu`, compared with `golden_name`.
fn forward(component: &str, model: &str, golden: &str, out_name: &str, golden_name: &str) -> f32 {
    let tmp = tempfile::tempdir().expect("temp dir");
    let inputs = testdata().join(golden);
    let out = tmp.path().join("out.safetensors");
    succeeded(&xtask(&[
        "forward",
        component,
        "--model",
        path(&testdata().join(model)),
        "--inputs",
        path(&inputs),
        "--output",
        path(&out),
        "--device",
        "wgpu",
    ]));
    max_rel_err(&read(&out, out_name), &read(&inputs, golden_name))
}

#[test]
fn dit_on_the_padded_mask_batch_matches_diffusers() {
    let err = forward(
        "dit",
        "tiny-qwen-image/transformer",
        "dit/b2_mask.safetensors",
        "sample",
        "sample",
    );
    assert_within("dit b2_mask", err);
}

#[test]
fn dit_on_a_single_sample_matches_diffusers() {
    // Batch 1: the timestep and modulation linears see one row, the case burn-cubecl-fusion's
    // fused GEMV gets wrong (docs/gpu.md); `linear_rows` in the DiT runs it as two rows.
    let err = forward(
        "dit",
        "tiny-qwen-image/transformer",
        "dit/b1_nomask.safetensors",
        "sample",
        "sample",
    );
    assert_within("dit b1_nomask", err);
}

#[test]
fn dit_on_non_square_latents_matches_diffusers() {
    let err = forward(
        "dit",
        "tiny-qwen-image/transformer",
        "dit/nonsquare.safetensors",
        "sample",
        "sample",
    );
    assert_within("dit nonsquare", err);
}

#[test]
fn vae_decode_matches_diffusers() {
    for golden in ["decode_6x10", "decode_8x8_b2"] {
        let err = forward(
            "vae-decode",
            "tiny-qwen-image/vae",
            &format!("vae/{golden}.safetensors"),
            "sample",
            "sample",
        );
        assert_within(&format!("vae {golden}"), err);
    }
}

#[test]
fn text_encoder_last_hidden_state_matches_transformers() {
    // hidden_states.2 is transformers' last entry: the output of the final norm.
    let err = forward(
        "text-encoder",
        "tiny-qwen-image/text_encoder",
        "text-encoder/hidden_states.safetensors",
        "last_hidden_state",
        "hidden_states.2",
    );
    assert_within("text encoder (one prompt)", err);
}

#[test]
fn a_padded_prompt_batch_matches_the_pipeline() {
    // Three prompts of different lengths: the padded attention mask, the 34-token drop and the
    // re-padding of the prompt path, all on the device.
    let tmp = tempfile::tempdir().expect("temp dir");
    let all: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(testdata().join("text-encoder/prompts.json")).expect("prompts"),
    )
    .expect("JSON");
    let prompts = tmp.path().join("prompts.json");
    std::fs::write(
        &prompts,
        serde_json::json!({"prompts": all["batch"]["prompts"]}).to_string(),
    )
    .expect("write prompts");
    let out = tmp.path().join("out.safetensors");
    succeeded(&xtask(&[
        "encode-prompt",
        "--model",
        path(&testdata().join("tiny-qwen-image")),
        "--prompts",
        path(&prompts),
        "--output",
        path(&out),
        "--device",
        "wgpu",
    ]));
    let golden = testdata().join("text-encoder/prompt_embeds.safetensors");
    assert_eq!(
        read(&out, "prompt_embeds_mask"),
        read(&golden, "batch.encoded.prompt_embeds_mask")
    );
    let err = max_rel_err(
        &read(&out, "prompt_embeds"),
        &read(&golden, "batch.encoded.prompt_embeds"),
    );
    assert_within("prompt batch", err);
}

#[test]
fn an_end_to_end_cfg_case_passes_against_the_official_gt() {
    // The tiny true-CFG case: text encoder, 6 steps of two DiT forwards, CFG, scheduler, VAE
    // decode, all on wgpu; compared with the official diffusers image by the consistency verdict.
    let out = tempfile::tempdir().expect("temp dir");
    let o = xtask(&[
        "consistency",
        "--case",
        "tiny_t2i_cfg",
        "--device",
        "wgpu",
        "--out",
        path(out.path()),
    ]);
    succeeded(&o);
    let report: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out.path().join("report.json")).expect("report"),
    )
    .expect("JSON");
    assert_eq!(
        (report["passed"].as_u64(), report["failed"].as_u64()),
        (Some(1), Some(0))
    );
    let m = &report["cases"][0]["metrics"][0];
    // PSNR is a number, or the string "inf" for an identical image.
    let psnr = m["psnr"].as_f64().unwrap_or(f64::INFINITY);
    assert!(m["psnr"].is_number() || m["psnr"] == "inf", "{m}");
    eprintln!("wgpu e2e tiny_t2i_cfg: {m}");
    assert!(psnr >= 40.0, "PSNR {psnr} dB < 40: {m}");
}
