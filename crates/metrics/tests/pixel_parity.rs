//! SSIM, PSNR and mean-abs-diff equal scikit-image's (goldens written by
//! xtask/reference/gen_metrics.py with upstream's exact calls) within 1e-6 relative.

use std::path::{Path, PathBuf};

use metrics::{PixelMetrics, load_rgb};
use serde::Deserialize;

#[derive(Deserialize)]
struct Goldens {
    pairs: Vec<Pair>,
}

#[derive(Deserialize)]
struct Pair {
    name: String,
    output: String,
    gt: String,
    ssim: f64,
    psnr: serde_json::Value,
    mean_abs_diff: f64,
}

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/metrics")
}

fn close(ours: f64, theirs: f64) -> bool {
    // Relative 1e-6, with an absolute floor for values near zero (the random pair's SSIM ≈ -0.002).
    (ours - theirs).abs() <= 1e-6 * theirs.abs().max(1e-3)
}

#[test]
fn pixel_metrics_equal_skimage_on_every_golden_pair() {
    let text = std::fs::read_to_string(dir().join("pixel_goldens.json")).unwrap();
    let goldens: Goldens = serde_json::from_str(&text).unwrap();
    assert!(goldens.pairs.len() >= 5);
    for p in &goldens.pairs {
        let out = load_rgb(&dir().join(&p.output)).unwrap();
        let gt = load_rgb(&dir().join(&p.gt)).unwrap();
        let m = PixelMetrics::compute(&out, &gt).unwrap();
        assert!(
            close(m.ssim, p.ssim),
            "{}: ssim {} vs skimage {}",
            p.name,
            m.ssim,
            p.ssim
        );
        match p.psnr.as_f64() {
            Some(want) => assert!(
                close(m.psnr, want),
                "{}: psnr {} vs skimage {want}",
                p.name,
                m.psnr
            ),
            None => {
                assert_eq!(p.psnr, "inf", "{}", p.name);
                assert_eq!(m.psnr, f64::INFINITY, "{}", p.name);
            }
        }
        assert!(
            close(m.mean_abs_diff, p.mean_abs_diff),
            "{}: mad {} vs numpy {}",
            p.name,
            m.mean_abs_diff,
            p.mean_abs_diff
        );
    }
}

#[test]
fn identical_images_give_ssim_one_and_infinite_psnr() {
    let img = load_rgb(&dir().join("images/chelsea.png")).unwrap();
    let m = PixelMetrics::compute(&img, &img).unwrap();
    assert_eq!((m.ssim, m.psnr, m.mean_abs_diff), (1.0, f64::INFINITY, 0.0));
}

#[test]
fn different_sizes_are_an_error_naming_both() {
    let a = load_rgb(&dir().join("images/chelsea.png")).unwrap();
    let b = load_rgb(&dir().join("images/coffee.png")).unwrap();
    let msg = PixelMetrics::compute(&a, &b).unwrap_err().to_string();
    assert!(msg.contains("301x241") && msg.contains("150x100"), "{msg}");
}

#[test]
fn unreadable_images_are_an_error_naming_the_file() {
    let msg = load_rgb(&dir().join("pixel_goldens.json"))
        .unwrap_err()
        .to_string();
    assert!(msg.contains("pixel_goldens.json"), "{msg}");
    let msg = load_rgb(Path::new("/nonexistent/x.png"))
        .unwrap_err()
        .to_string();
    assert!(msg.contains("/nonexistent/x.png"), "{msg}");
}
