//! Folders saved by today's libraries (hostile input, round three, item 1): diffusers 0.42.1 +
//! transformers 5.24 `save_pretrained` writes the processor as `processor_config.json` (image
//! processor nested, bounds as `size.shortest_edge` / `size.longest_edge`) and the tokenizers as
//! `tokenizer.json`. `generate`, `encode-prompt --image` and `caption` on those folders
//! (testdata/saved-layout, made by xtask/reference/gen_saved_layout.py) give exactly what they give
//! on the released-layout tiny folders.

use std::path::{Path, PathBuf};
use std::process::Output;

use crate::common::{stderr, testdata, xtask};

fn saved(name: &str) -> PathBuf {
    testdata().join("saved-layout").join(name)
}

fn ok(o: Output) -> Output {
    assert!(o.status.success(), "{}", stderr(&o));
    o
}

/// `generate` on `model` (64×64, 2 steps, seed 3, CFG on) with `images`, written to `out`.
fn generate(model: &Path, images: &[&str], out: &Path) -> Vec<u8> {
    let mut c = xtask();
    c.args([
        "generate",
        "--prompt",
        "make it blue",
        "--negative-prompt",
        " ",
    ])
    .args([
        "--height", "64", "--width", "64", "--steps", "2", "--seed", "3",
    ])
    .arg("--model")
    .arg(model)
    .arg("--out")
    .arg(out);
    for i in images {
        c.arg("--image").arg(testdata().join(i));
    }
    ok(c.output().unwrap());
    std::fs::read(out).unwrap()
}

#[test]
fn generate_gives_the_same_bytes_on_folders_saved_by_todays_libraries() {
    let dir = tempfile::tempdir().unwrap();
    for (name, images) in [
        ("tiny-qwen-image", vec![]),
        // Edit-Plus (the processor's layout); Edit's is checked by encode-prompt below.
        ("tiny-qwen-image-edit-plus", vec!["e2e-edit/plus_gray.png"]),
    ] {
        let released = generate(
            &testdata().join(name),
            &images,
            &dir.path().join(format!("{name}.png")),
        );
        let today = generate(
            &saved(name),
            &images,
            &dir.path().join(format!("{name}-saved.png")),
        );
        assert!(
            released == today,
            "{name}: the saved folder gives other bytes"
        );
    }
}

#[test]
fn encode_prompt_with_an_image_reads_processor_config_json() {
    let dir = tempfile::tempdir().unwrap();
    let prompts = dir.path().join("p.json");
    std::fs::write(&prompts, r#"{"prompts": ["make it blue"]}"#).unwrap();
    let run = |model: &Path, out: &str| {
        let out = dir.path().join(out);
        ok(xtask()
            .args(["encode-prompt", "--model"])
            .arg(model)
            .arg("--prompts")
            .arg(&prompts)
            .arg("--image")
            .arg(testdata().join("e2e-edit/edit_input.jpg"))
            .arg("--output")
            .arg(&out)
            .output()
            .unwrap());
        std::fs::read(out).unwrap()
    };
    let released = run(
        &testdata().join("tiny-qwen-image-edit"),
        "released.safetensors",
    );
    let today = run(&saved("tiny-qwen-image-edit"), "saved.safetensors");
    assert!(released == today, "prompt embeddings differ");
}

#[test]
fn caption_reads_processor_config_json() {
    let run = |model: &Path| {
        let o = ok(xtask()
            .args(["caption", "--json", "--max-new-tokens", "4", "--model"])
            .arg(model)
            .arg("--image")
            .arg(testdata().join("caption/image_rgba.png"))
            .output()
            .unwrap());
        String::from_utf8(o.stdout).unwrap()
    };
    assert_eq!(
        run(&testdata().join("tiny-qwen-image-layered")),
        run(&saved("tiny-qwen-image-layered"))
    );
}

#[test]
fn a_processor_folder_with_neither_config_names_both() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("m");
    std::fs::create_dir_all(model.join("processor")).unwrap();
    for entry in std::fs::read_dir(saved("tiny-qwen-image-edit")).unwrap() {
        let e = entry.unwrap();
        if e.file_name() != "processor" {
            std::os::unix::fs::symlink(e.path().canonicalize().unwrap(), model.join(e.file_name()))
                .unwrap();
        }
    }
    let o = xtask()
        .args([
            "generate", "--prompt", "x", "--height", "64", "--width", "64", "--steps", "1",
        ])
        .arg("--model")
        .arg(&model)
        .arg("--image")
        .arg(testdata().join("e2e-edit/edit_input.jpg"))
        .arg("--out")
        .arg(dir.path().join("o.png"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(
        e.contains("preprocessor_config.json") && e.contains("processor_config.json"),
        "{e}"
    );
}
