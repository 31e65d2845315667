//! `cargo xtask forward dit` on the official golden inputs writes the official `sample` (f32, max
//! relative error ≤ 1e-4), and a broken input file is a clean error naming the file, not a panic.

use std::path::Path;
use std::process::Command;

use crate::common::root;

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

fn forward_dit(inputs: &Path, output: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["forward", "dit", "--model"])
        .arg(root().join("testdata/tiny-qwen-image/transformer"))
        .arg("--inputs")
        .arg(inputs)
        .arg("--output")
        .arg(output)
        .output()
        .expect("run xtask")
}

#[test]
fn forward_dit_on_the_masked_batch_writes_the_official_sample() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let golden = root().join("testdata/dit/b2_mask.safetensors");
    let out = tmp.path().join("out.safetensors");
    let run = forward_dit(&golden, &out);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );

    let (ours, shape) = read_f32(&out, "sample");
    let (theirs, golden_shape) = read_f32(&golden, "sample");
    assert_eq!(shape, golden_shape);
    let scale = theirs.iter().fold(0f32, |m, v| m.max(v.abs()));
    let diff = ours
        .iter()
        .zip(&theirs)
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    assert!(diff / scale <= 1e-4, "max relative error {}", diff / scale);
}

#[test]
fn forward_dit_with_missing_inputs_fails_naming_the_tensor_and_file() {
    let tmp = tempfile::tempdir().expect("temp dir");
    // The tiny transformer checkpoint is a valid safetensors file without any of the inputs.
    let wrong =
        root().join("testdata/tiny-qwen-image/transformer/diffusion_pytorch_model.safetensors");
    let out = tmp.path().join("out.safetensors");
    let run = forward_dit(&wrong, &out);
    let err = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(2), "{err}");
    assert!(
        err.contains("hidden_states") && err.contains("diffusion_pytorch_model"),
        "{err}"
    );
    assert!(!out.exists(), "no output file on failure");
}
