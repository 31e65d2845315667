//! `cargo xtask caption` on the tiny Layered folders of testdata/caption prints what diffusers'
//! `QwenImageLayeredPipeline` captions (goldens of xtask/reference/gen_caption.py: the ids and the
//! text exactly, `--json` as docs/formats.md gives it), and bad input is a clean error (exit 2).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

use crate::common::testdata;

fn case(name: &str) -> Value {
    let cases: Value = serde_json::from_str(
        &std::fs::read_to_string(testdata().join("caption/cases.json")).expect("cases.json"),
    )
    .expect("JSON");
    cases["cases"][name].clone()
}

fn caption(model: &Path, image: &Path, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .arg("caption")
        .arg("--model")
        .arg(model)
        .arg("--image")
        .arg(image)
        .args(extra)
        .output()
        .expect("run xtask")
}

fn input() -> PathBuf {
    testdata().join("caption/image_rgba.png")
}

/// Run the CLI as the golden case was run and compare its JSON with the pipeline's output.
fn check(name: &str, extra: &[&str]) {
    let info = case(name);
    let model = testdata().join(info["folder"].as_str().expect("folder"));
    let lang = if info["use_en_prompt"].as_bool().expect("lang") {
        "en"
    } else {
        "zh"
    };
    let mut args = vec!["--json", "--lang", lang];
    args.extend_from_slice(extra);
    let out = caption(&model, &input(), &args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{name}: {stderr}");
    let got: Value = serde_json::from_slice(&out.stdout).expect("--json prints JSON");
    let keys: Vec<&String> = got.as_object().expect("object").keys().collect();
    assert_eq!(keys, ["caption", "ids"], "{name}: the documented keys only");
    assert_eq!(got["ids"], info["generated_ids"], "{name}: ids");
    assert_eq!(got["caption"], info["caption"], "{name}: caption");
    eprintln!("{name}: {stderr}");
}

#[test]
fn untied_english_and_chinese_end_on_eos_as_the_pipeline() {
    check("untied_en", &[]);
    check("untied_zh", &["--resolution", "640"]);
}

#[test]
fn tied_caption_is_cut_at_max_new_tokens() {
    let n = case("tied_zh_cap")["max_new_tokens"].to_string();
    check("tied_zh_cap", &["--max-new-tokens", &n]);
}

#[test]
fn plain_output_is_the_caption_line() {
    let info = case("untied_en");
    let out = caption(
        &testdata().join("caption/tiny-layered-untied"),
        &input(),
        &["--lang", "en"],
    );
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("{}\n", info["caption"].as_str().expect("caption"))
    );
}

#[test]
fn bad_input_exits_2_and_says_why() {
    let model = testdata().join("caption/tiny-layered-untied");
    let cases: [(PathBuf, PathBuf, Vec<&str>, &str); 5] = [
        (
            model.clone(),
            testdata().join("nope.png"),
            vec![],
            "nope.png",
        ),
        (
            model.clone(),
            input(),
            vec!["--resolution", "512"],
            "640 or 1024",
        ),
        (
            model.clone(),
            input(),
            vec!["--max-new-tokens", "0"],
            "at least 1",
        ),
        (
            testdata().join("tiny-qwen-image"),
            input(),
            vec![],
            "processor/preprocessor_config.json",
        ),
        (
            testdata().join("no-such-folder"),
            input(),
            vec![],
            "not a folder",
        ),
    ];
    for (model, image, extra, want) in cases {
        let out = caption(&model, &image, &extra);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{extra:?}: {stderr}");
        assert!(stderr.contains(want), "{extra:?}: {stderr}");
    }
}
