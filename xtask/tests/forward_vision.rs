//! `cargo xtask forward vision` on the official processor output writes the official
//! `image_embeds` (f32, max relative error ≤ 1e-4), and grids that do not fit `pixel_values` are a
//! clean error (exit 2) naming the input file, not a panic.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::common::root;

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn read_f32(path: &Path, name: &str) -> (Vec<f32>, Vec<usize>) {
    let bytes = read(path);
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

fn forward_vision(inputs: &Path, output: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["forward", "vision", "--model"])
        .arg(root().join("testdata/vision/text_encoder"))
        .arg("--inputs")
        .arg(inputs)
        .arg("--output")
        .arg(output)
        .output()
        .expect("run xtask")
}

/// The golden inputs with `image_grid_thw` replaced.
fn with_grid(dir: &Path, grid: &[i64]) -> PathBuf {
    let bytes = read(&root().join("testdata/vision/processor.safetensors"));
    let st = safetensors::SafeTensors::deserialize(&bytes).expect("safetensors");
    let pixels = st.tensor("pixel_values").expect("pixel_values");
    let grid_bytes: Vec<u8> = grid.iter().flat_map(|v| v.to_le_bytes()).collect();
    let grid_view = safetensors::tensor::TensorView::new(
        safetensors::Dtype::I64,
        vec![grid.len() / 3, 3],
        &grid_bytes,
    )
    .expect("grid view");
    let path = dir.join("inputs.safetensors");
    safetensors::serialize_to_file(
        [("pixel_values", pixels), ("image_grid_thw", grid_view)],
        None,
        &path,
    )
    .expect("write inputs");
    path
}

#[test]
fn forward_vision_on_the_processor_output_writes_the_official_image_embeds() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let out = tmp.path().join("out.safetensors");
    let run = forward_vision(&root().join("testdata/vision/processor.safetensors"), &out);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );

    let (ours, shape) = read_f32(&out, "image_embeds");
    let (theirs, golden_shape) = read_f32(
        &root().join("testdata/vision/tower.safetensors"),
        "image_embeds",
    );
    assert_eq!(shape, golden_shape);
    assert_eq!(shape, vec![72 / 4, 40]);
    let err = ours
        .iter()
        .zip(&theirs)
        .map(|(a, b)| (a - b).abs() / b.abs().max(1.0))
        .fold(0f32, f32::max);
    assert!(err <= 1e-4, "max relative error {err}");
}

#[test]
fn forward_vision_with_an_inconsistent_grid_exits_2_naming_the_file() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let out = tmp.path().join("out.safetensors");
    // 24 + 60 patches for 72 rows; then an odd width the merger cannot pair.
    for grid in [
        &[1, 4, 6, 1, 6, 10][..],
        &[1, 4, 6, 1, 8, 5][..],
        &[1, 4, 6][..],
    ] {
        let inputs = with_grid(tmp.path(), grid);
        let run = forward_vision(&inputs, &out);
        let err = String::from_utf8_lossy(&run.stderr);
        assert_eq!(run.status.code(), Some(2), "{grid:?}: {err}");
        assert!(
            err.contains("image_grid_thw") && err.contains("inputs.safetensors"),
            "{grid:?}: {err}"
        );
        assert!(!err.contains("panicked"), "{err}");
        assert!(!out.exists(), "no output file on failure");
    }
}

#[test]
fn forward_vision_without_pixel_values_names_the_tensor() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let out = tmp.path().join("out.safetensors");
    let run = forward_vision(&root().join("testdata/vision/tower.safetensors"), &out);
    let err = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(2), "{err}");
    assert!(
        err.contains("pixel_values") && err.contains("tower.safetensors"),
        "{err}"
    );
}
