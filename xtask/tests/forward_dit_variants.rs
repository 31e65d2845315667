//! `cargo xtask forward dit` with the Edit / Edit-2511 / Layered variants: `img_shapes` [B,K,3] and
//! `additional_t_cond` in, the official `sample` out (f32, max relative error ≤ 1e-4 against the
//! goldens of xtask/reference/gen_dit_variants.py); and hostile configs and inputs (sizes that
//! overflowed, a config of another class, a missing or impossible Layered class) exit 2 with a
//! message naming the field, never a panic, before any weight is read.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use safetensors::Dtype;
use safetensors::tensor::TensorView;

use crate::common::root;

fn variants() -> PathBuf {
    root().join("testdata/dit-variants")
}

fn forward_dit(model: &Path, inputs: &Path, output: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["forward", "dit", "--model"])
        .arg(model)
        .arg("--inputs")
        .arg(inputs)
        .arg("--output")
        .arg(output)
        .output()
        .expect("run xtask")
}

/// All tensors of a safetensors file as (name, dtype, shape, bytes).
type Raw = Vec<(String, Dtype, Vec<usize>, Vec<u8>)>;

fn read_all(path: &Path) -> Raw {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let st = safetensors::SafeTensors::deserialize(&bytes).expect("safetensors");
    st.tensors()
        .into_iter()
        .map(|(n, v)| (n, v.dtype(), v.shape().to_vec(), v.data().to_vec()))
        .collect()
}

fn write_all(path: &Path, tensors: &Raw) {
    let views: Vec<(String, TensorView)> = tensors
        .iter()
        .map(|(n, d, s, b)| (n.clone(), TensorView::new(*d, s.clone(), b).expect("view")))
        .collect();
    safetensors::serialize_to_file(views, None, path).expect("write");
}

fn f32s(raw: &Raw, name: &str) -> (Vec<f32>, Vec<usize>) {
    let (_, d, s, b) = raw
        .iter()
        .find(|(n, ..)| n == name)
        .unwrap_or_else(|| panic!("no {name}"));
    assert_eq!(*d, Dtype::F32, "{name} must be f32");
    let v = b
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    (v, s.clone())
}

/// A golden's inputs with `name` replaced by (or, with `None`, stripped of) an i64 tensor.
fn with_i64(golden: &str, name: &str, value: Option<(Vec<i64>, Vec<usize>)>, dst: &Path) {
    let mut raw: Raw = read_all(&variants().join(golden))
        .into_iter()
        .filter(|(n, ..)| n != name)
        .collect();
    if let Some((v, shape)) = value {
        let bytes = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        raw.push((name.to_string(), Dtype::I64, shape, bytes));
    }
    write_all(dst, &raw);
}

fn assert_matches_golden(model: &str, golden: &str) {
    let tmp = tempfile::tempdir().expect("temp dir");
    let out = tmp.path().join("out.safetensors");
    let inputs = variants().join(golden);
    let run = forward_dit(&variants().join(model), &inputs, &out);
    assert!(
        run.status.success(),
        "{golden}: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    let (ours, shape) = f32s(&read_all(&out), "sample");
    let (theirs, golden_shape) = f32s(&read_all(&inputs), "sample");
    assert_eq!(shape, golden_shape);
    let scale = theirs.iter().fold(0f32, |m, v| m.max(v.abs()));
    let diff = ours
        .iter()
        .zip(&theirs)
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    assert!(
        diff / scale <= 1e-4,
        "{golden}: max relative error {}",
        diff / scale
    );
}

/// The run failed cleanly: exit 2, no panic, the message contains every `needle`, no output.
fn assert_clean_error(run: &Output, out: &Path, needles: &[&str]) {
    let err = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(2), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    for n in needles {
        assert!(err.contains(n), "`{n}` not in: {err}");
    }
    assert!(!out.exists(), "no output file on failure");
}

#[test]
fn edit_inputs_with_k_shapes_per_sample_give_the_official_sample() {
    assert_matches_golden("edit", "edit_k2.safetensors");
    assert_matches_golden("edit", "edit_k3.safetensors");
}

#[test]
fn edit_2511_zero_cond_t_gives_the_official_sample() {
    assert_matches_golden("edit-2511", "edit2511_k3.safetensors");
}

#[test]
fn layered_with_additional_t_cond_gives_the_official_sample() {
    assert_matches_golden("layered", "layered.safetensors");
}

#[test]
fn layered_without_or_with_a_bad_additional_t_cond_exits_2_naming_it() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let out = tmp.path().join("out.safetensors");
    let inputs = tmp.path().join("in.safetensors");
    let model = variants().join("layered");
    with_i64("layered.safetensors", "additional_t_cond", None, &inputs);
    assert_clean_error(
        &forward_dit(&model, &inputs, &out),
        &out,
        &["additional_t_cond", "use_additional_t_cond"],
    );
    with_i64(
        "layered.safetensors",
        "additional_t_cond",
        Some((vec![0, 7], vec![2])),
        &inputs,
    );
    assert_clean_error(
        &forward_dit(&model, &inputs, &out),
        &out,
        &["additional_t_cond", "7"],
    );
    // Given to a model without the embedding: refused, not silently ignored.
    assert_clean_error(
        &forward_dit(
            &variants().join("edit"),
            &variants().join("layered.safetensors"),
            &out,
        ),
        &out,
        &["additional_t_cond"],
    );
}

/// A model folder holding only `config.json` (the edit model's, edited): whatever the error, it
/// must come from the config or the inputs, since there are no weights to read.
fn config_only(tmp: &Path, edit: impl Fn(&mut serde_json::Value)) -> PathBuf {
    let dir = tmp.join("transformer");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let mut json: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(variants().join("edit/config.json")).expect("read"),
    )
    .expect("json");
    edit(&mut json);
    std::fs::write(dir.join("config.json"), json.to_string()).expect("write");
    dir
}

#[test]
fn oversized_config_values_exit_2_naming_the_key() {
    for (key, value) in [
        ("num_attention_heads", serde_json::json!(1u64 << 60)),
        ("patch_size", serde_json::json!(1u64 << 33)),
    ] {
        let tmp = tempfile::tempdir().expect("temp dir");
        let out = tmp.path().join("out.safetensors");
        let model = config_only(tmp.path(), |j| j[key] = value.clone());
        let run = forward_dit(&model, &variants().join("edit_k2.safetensors"), &out);
        assert_clean_error(&run, &out, &[key, "config.json"]);
    }
}

#[test]
fn a_config_of_another_class_exits_2_naming_it() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let out = tmp.path().join("out.safetensors");
    let model = config_only(tmp.path(), |j| {
        j["_class_name"] = serde_json::json!("AutoencoderKLQwenImage")
    });
    let run = forward_dit(&model, &variants().join("edit_k2.safetensors"), &out);
    assert_clean_error(
        &run,
        &out,
        &["_class_name", "AutoencoderKLQwenImage", "config.json"],
    );
}

#[test]
fn huge_or_malformed_img_shapes_exit_2_naming_img_shapes() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let out = tmp.path().join("out.safetensors");
    let inputs = tmp.path().join("in.safetensors");
    // Only a config: the shapes must be refused before any weight would be read.
    let model = config_only(tmp.path(), |_| {});
    let huge = 1i64 << 40;
    for (shape_values, dims) in [
        (vec![1, huge, huge, 1, huge, huge], vec![2, 3]),
        (vec![1, huge, huge, 1, huge, huge], vec![2, 1, 3]),
        (vec![huge, 1, 1, huge, 1, 1], vec![2, 3]),
        (vec![i64::MAX; 6], vec![2, 3]),
        (vec![1, 3, 5, 1, 3, 5], vec![2, 1, 1, 3]),
        (vec![1, 3, 5], vec![1, 3]),
        (vec![1, 3, 5, 1, -4, 3], vec![2, 3]),
        // Samples with different image lists.
        (vec![1, 3, 5, 1, 4, 3, 1, 3, 5, 1, 3, 4], vec![2, 2, 3]),
    ] {
        with_i64(
            "edit_k2.safetensors",
            "img_shapes",
            Some((shape_values.clone(), dims.clone())),
            &inputs,
        );
        let run = forward_dit(&model, &inputs, &out);
        assert_clean_error(&run, &out, &["img_shapes"]);
    }
}
