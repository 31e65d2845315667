//! `cargo xtask encode-prompt --image …` on the tiny Edit and Edit-Plus folders writes what the
//! pipelines' `encode_prompt` returns for the same prompts and image files (goldens of
//! xtask/reference/gen_text_encoder_mm.py; f32, max relative error ≤ 1e-4, masks identical), and
//! image arguments that do not fit the pipeline are a clean error (exit 2) that says why.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::common::testdata;

fn golden() -> PathBuf {
    testdata().join("text-encoder-mm/mm_embeds.safetensors")
}

fn image(name: &str) -> PathBuf {
    testdata().join("text-encoder-mm").join(name)
}

/// The prompts of a golden case, written as the CLI's `{"prompts": [...]}` file in `dir`.
fn prompts_file(dir: &Path, case: &str) -> PathBuf {
    let cases: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(testdata().join("text-encoder-mm/cases.json")).unwrap(),
    )
    .unwrap();
    let path = dir.join(format!("{case}.json"));
    let body = serde_json::json!({"prompts": cases["cases"][case]["prompts"]});
    std::fs::write(&path, body.to_string()).unwrap();
    path
}

fn encode_prompt(
    model: &str,
    prompts: &Path,
    images: &[&str],
    extra: &[&str],
    out: &Path,
) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_xtask"));
    c.args(["encode-prompt", "--model"])
        .arg(testdata().join(model))
        .arg("--prompts")
        .arg(prompts)
        .arg("--output")
        .arg(out)
        .args(extra);
    for i in images {
        c.arg("--image").arg(image(i));
    }
    c.output().expect("run xtask")
}

fn f32s(path: &Path, key: &str) -> (Vec<f32>, Vec<usize>) {
    weights::Weights::open(path)
        .unwrap()
        .get_f32(key)
        .unwrap_or_else(|e| panic!("{}: {key}: {e}", path.display()))
}

fn i64s(path: &Path, key: &str) -> (Vec<i64>, Vec<usize>) {
    weights::Weights::open(path)
        .unwrap()
        .get_i64(key)
        .unwrap_or_else(|e| panic!("{}: {key}: {e}", path.display()))
}

/// The CLI's output against `<golden_prefix>prompt_embeds` / `_mask`.
fn assert_matches(out: &Path, golden_prefix: &str) {
    let (ours, shape) = f32s(out, "prompt_embeds");
    let (want, want_shape) = f32s(&golden(), &format!("{golden_prefix}prompt_embeds"));
    assert_eq!(shape, want_shape, "{golden_prefix}prompt_embeds shape");
    let err = ours
        .iter()
        .zip(&want)
        .map(|(a, b)| (a - b).abs() / b.abs().max(1.0))
        .fold(0f32, f32::max);
    eprintln!("{golden_prefix}prompt_embeds: max relative error {err:.2e}");
    assert!(err <= 1e-4, "{golden_prefix}prompt_embeds: {err}");
    assert_eq!(
        i64s(out, "prompt_embeds_mask"),
        i64s(&golden(), &format!("{golden_prefix}prompt_embeds_mask"))
    );
}

fn assert_ok(o: &Output) {
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn an_edit_folder_with_one_image_per_prompt_writes_encode_prompts_output() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.safetensors");
    let prompts = prompts_file(dir.path(), "edit_batch");
    let o = encode_prompt(
        "tiny-qwen-image-edit",
        &prompts,
        &["image_a.png", "image_b.png"],
        &[],
        &out,
    );
    assert_ok(&o);
    assert_matches(&out, "edit_batch.encoded.");
}

#[test]
fn an_edit_plus_folder_names_every_image_in_the_prompt() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.safetensors");
    let prompts = prompts_file(dir.path(), "edit_plus");
    let o = encode_prompt(
        "tiny-qwen-image-edit-plus",
        &prompts,
        &["image_c.png", "image_a.png"],
        &[],
        &out,
    );
    assert_ok(&o);
    assert_matches(&out, "edit_plus.encoded.");
}

#[test]
fn sequential_positions_reproduce_the_pinned_pipeline_as_it_is() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.safetensors");
    let prompts = prompts_file(dir.path(), "edit_single");
    let o = encode_prompt(
        "tiny-qwen-image-edit",
        &prompts,
        &["image_a.png"],
        &["--vision-positions", "sequential"],
        &out,
    );
    assert_ok(&o);
    assert_matches(&out, "edit_single.as_is.encoded.");
}

#[test]
fn images_that_do_not_fit_the_pipeline_are_clean_errors() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.safetensors");
    let batch = prompts_file(dir.path(), "edit_batch");
    let stderr = |o: &Output| String::from_utf8_lossy(&o.stderr).into_owned();

    // A text-to-image folder takes no image.
    let o = encode_prompt("tiny-qwen-image", &batch, &["image_a.png"], &[], &out);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("text-to-image"), "{}", stderr(&o));

    // Edit: one image per prompt (or one for all), not three for two.
    let three = ["image_a.png", "image_b.png", "image_c.png"];
    let o = encode_prompt("tiny-qwen-image-edit", &batch, &three, &[], &out);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("one image per prompt"),
        "{}",
        stderr(&o)
    );

    // Edit without an image: its template holds one.
    let o = encode_prompt("tiny-qwen-image-edit", &batch, &[], &[], &out);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("0 --image"), "{}", stderr(&o));

    // A missing or undecodable file is named.
    let o = encode_prompt("tiny-qwen-image-edit", &batch, &["nope.png"], &[], &out);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("nope.png"), "{}", stderr(&o));
    let o = encode_prompt("tiny-qwen-image-edit", &batch, &["cases.json"], &[], &out);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("cases.json"), "{}", stderr(&o));
    assert!(!out.exists(), "no output after a failure");
}
