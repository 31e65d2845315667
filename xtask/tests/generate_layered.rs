//! `cargo xtask generate` on a Layered folder, as a user calls it: an empty prompt is captioned
//! (printed on stdout), `--out DIR` receives the RGBA layers, equal to diffusers' (the tiny
//! official `tiny_layered_caption` case of testdata/e2e-layered); Layered options on another kind
//! of folder, and sizes on a Layered one, exit 2 before any work.

use std::path::Path;

use crate::common::{testdata, xtask};

fn psnr_rgba(a: &image::RgbaImage, b: &image::RgbaImage) -> f64 {
    assert_eq!(a.dimensions(), b.dimensions());
    let mse = a
        .as_raw()
        .iter()
        .zip(b.as_raw())
        .map(|(&x, &y)| (f64::from(x) - f64::from(y)).powi(2))
        .sum::<f64>()
        / a.as_raw().len() as f64;
    10.0 * (255.0f64 * 255.0 / mse.max(1e-12)).log10()
}

#[test]
fn an_empty_prompt_is_captioned_and_the_layers_match_diffusers() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("layers");
    // gen_e2e_layered.py's tiny_layered_caption: prompt " ", CFG 4 with " ", cfg_normalize and
    // use_en_prompt on, 1 layer, 2 steps, torch.Generator("cpu").manual_seed(42).
    let o = xtask()
        .args(["generate", "--model"])
        .arg(testdata().join("tiny-qwen-image-layered"))
        .arg("--image")
        .arg(testdata().join("caption/image_rgba.png"))
        .args([
            "--prompt",
            " ",
            "--negative-prompt",
            " ",
            "--true-cfg-scale",
            "4",
            "--layers",
            "1",
            "--resolution",
            "640",
            "--cfg-normalize",
            "--use-en-prompt",
            "--steps",
            "2",
            "--seed",
            "42",
            "--out",
        ])
        .arg(&out)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{stderr}");
    let info: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(testdata().join("e2e-layered/cases.json")).unwrap(),
    )
    .unwrap();
    let caption = info["tiny_layered_caption"]["prompt_used"]
        .as_str()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim_end(),
        format!("caption: {caption}")
    );
    let ours = image::open(out.join("layer_0.png")).unwrap();
    assert_eq!(ours.color(), image::ColorType::Rgba8);
    let want = image::open(testdata().join("e2e-layered/tiny_layered_caption/layer_0.png"))
        .unwrap()
        .to_rgba8();
    let psnr = psnr_rgba(&ours.to_rgba8(), &want);
    assert!(psnr >= 40.0, "PSNR {psnr}");
    assert!(!out.join("layer_1.png").exists());
}

#[test]
fn options_of_another_kind_exit_2_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    let image = testdata().join("caption/image_rgba.png");
    let run = |model: &str, extra: &[&str], out: &Path| {
        xtask()
            .args(["generate", "--model"])
            .arg(testdata().join(model))
            .args(extra)
            .arg("--out")
            .arg(out)
            .output()
            .unwrap()
    };
    // Layered options on a text-to-image folder.
    let out = dir.path().join("t2i.png");
    let o = run("tiny-qwen-image", &["--prompt", "x", "--layers", "2"], &out);
    assert_eq!(o.status.code(), Some(2));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains("--layers") && e.contains("QwenImagePipeline"),
        "{e}"
    );
    assert!(!out.exists());

    // A size on a Layered folder, no image, a bad bucket.
    let layered = "tiny-qwen-image-layered";
    let out = dir.path().join("l");
    let img = image.to_str().unwrap();
    let o = run(layered, &["--image", img, "--height", "64"], &out);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--height"));
    let o = run(layered, &["--prompt", "x"], &out);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--image"));
    let o = run(layered, &["--image", img, "--resolution", "800"], &out);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("640 or 1024"));
    assert!(!out.exists());
}
