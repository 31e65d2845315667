//! `cargo xtask forward vae-encode` on the official golden images writes the official posterior
//! mean (RGB and RGBA VAEs, max relative error ≤ 1e-4), and an image the VAE cannot take (wrong
//! channel count, sides not multiples of 8, no `image` tensor) is a clean exit 2 that says why,
//! with no output file.

use std::path::Path;
use std::process::{Command, Output};

use crate::common::testdata;

fn read_f32(path: &Path, name: &str) -> (Vec<f32>, Vec<usize>) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let st = safetensors::SafeTensors::deserialize(&bytes).expect("safetensors");
    let t = st.tensor(name).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(t.dtype(), safetensors::Dtype::F32, "{name} must be f32");
    let v = t
        .data()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    (v, t.shape().to_vec())
}

/// An f32 safetensors file holding one tensor `image` of this shape (values in [-1, 1]).
fn write_image(path: &Path, shape: &[usize]) {
    let n: usize = shape.iter().product();
    let bytes: Vec<u8> = (0..n)
        .flat_map(|i| ((i % 17) as f32 / 8.0 - 1.0).to_le_bytes())
        .collect();
    let view =
        safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.to_vec(), &bytes)
            .unwrap();
    safetensors::serialize_to_file([("image", view)], None, path).unwrap();
}

fn vae_encode(model: &Path, inputs: &Path, output: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["forward", "vae-encode", "--model"])
        .arg(model)
        .arg("--inputs")
        .arg(inputs)
        .arg("--output")
        .arg(output)
        .output()
        .expect("run xtask")
}

fn assert_writes_the_official_mean(model: &Path, golden: &str, latent_shape: [usize; 5]) {
    let tmp = tempfile::tempdir().expect("temp dir");
    let golden = testdata().join("vae-encoder").join(golden);
    let out = tmp.path().join("latents.safetensors");
    let run = vae_encode(model, &golden, &out);
    assert_eq!(
        run.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let (ours, shape) = read_f32(&out, "latents");
    let (theirs, _) = read_f32(&golden, "mean");
    assert_eq!(shape, latent_shape.to_vec());
    let err = ours
        .iter()
        .zip(&theirs)
        .map(|(a, b)| (a - b).abs() / b.abs().max(1.0))
        .fold(0f32, f32::max);
    assert!(err <= 1e-4, "max relative error {err}");
}

#[test]
fn forward_vae_encode_writes_the_official_posterior_mean_for_rgb_and_rgba() {
    assert_writes_the_official_mean(
        &testdata().join("tiny-qwen-image/vae"),
        "encode_rgb_40x56.safetensors",
        [1, 16, 1, 5, 7],
    );
    assert_writes_the_official_mean(
        &testdata().join("vae-encoder/rgba-vae"),
        "encode_rgba_24x40.safetensors",
        [1, 16, 1, 3, 5],
    );
}

#[test]
fn forward_vae_encode_refuses_images_the_vae_cannot_take_with_exit_2() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let rgb = testdata().join("tiny-qwen-image/vae");
    let out = tmp.path().join("latents.safetensors");
    let cases: [(&str, &[usize], &[&str]); 3] = [
        (
            "rgba.safetensors",
            &[1, 4, 1, 16, 16],
            &["[1, 4, 1, 16, 16]", "[B, 3, 1, H, W]"],
        ),
        (
            "h20.safetensors",
            &[1, 3, 1, 20, 16],
            &["[1, 3, 1, 20, 16]", "multiples of 8"],
        ),
        (
            "w12.safetensors",
            &[1, 3, 1, 16, 12],
            &["[1, 3, 1, 16, 12]", "multiples of 8"],
        ),
    ];
    for (file, shape, needles) in cases {
        let inputs = tmp.path().join(file);
        write_image(&inputs, shape);
        let run = vae_encode(&rgb, &inputs, &out);
        let err = String::from_utf8_lossy(&run.stderr);
        assert_eq!(run.status.code(), Some(2), "{file}: {err}");
        assert!(err.contains(file), "{file}: names the input file: {err}");
        for needle in needles {
            assert!(
                err.contains(needle),
                "{file}: expected `{needle}` in: {err}"
            );
        }
        assert!(!err.contains("panicked"), "{err}");
        assert!(!out.exists(), "no output file on failure");
    }

    // A file without `image` (a decoder golden): named tensor and file.
    let wrong = testdata().join("vae/decode_6x10.safetensors");
    let run = vae_encode(&rgb, &wrong, &out);
    let err = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(2), "{err}");
    assert!(
        err.contains("image") && err.contains("decode_6x10.safetensors"),
        "{err}"
    );
    assert!(!out.exists(), "no output file on failure");
}
