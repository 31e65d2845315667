//! Loading is strict: a checkpoint or config that does not fit the model is an error that names
//! the offending tensor (and its file) or config key, never a panic or a silently random weight.

use std::path::{Path, PathBuf};

use burn::backend::Flex;
use qwen_image_dit::{DitError, ImageShape, QwenImageTransformer};
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};

type B = Flex;

fn tiny_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/tiny-qwen-image/transformer")
}

/// A copy of the tiny transformer whose tensors went through `edit` (name, dtype, shape, bytes).
fn edited_copy(
    edit: impl Fn(
        Vec<(String, Dtype, Vec<usize>, Vec<u8>)>,
    ) -> Vec<(String, Dtype, Vec<usize>, Vec<u8>)>,
) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().expect("temp dir");
    std::fs::copy(
        tiny_dir().join("config.json"),
        tmp.path().join("config.json"),
    )
    .expect("copy");
    let bytes =
        std::fs::read(tiny_dir().join("diffusion_pytorch_model.safetensors")).expect("read");
    let st = SafeTensors::deserialize(&bytes).expect("tiny checkpoint");
    let tensors = st
        .tensors()
        .into_iter()
        .map(|(n, v)| (n, v.dtype(), v.shape().to_vec(), v.data().to_vec()))
        .collect();
    let tensors = edit(tensors);
    let views: Vec<(String, TensorView)> = tensors
        .iter()
        .map(|(n, d, s, b)| (n.clone(), TensorView::new(*d, s.clone(), b).expect("view")))
        .collect();
    safetensors::serialize_to_file(
        views,
        None,
        &tmp.path().join("diffusion_pytorch_model.safetensors"),
    )
    .expect("write");
    tmp
}

fn load_err(dir: &Path) -> String {
    match QwenImageTransformer::<B>::load(dir, &Default::default()) {
        Ok(_) => panic!("{} should not load", dir.display()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn an_unchanged_copy_loads() {
    let tmp = edited_copy(|t| t);
    QwenImageTransformer::<B>::load(tmp.path(), &Default::default()).expect("loads");
}

#[test]
fn a_missing_tensor_is_an_error_naming_it_and_the_file() {
    let name = "transformer_blocks.1.attn.norm_added_k.weight";
    let tmp = edited_copy(|t| t.into_iter().filter(|(n, ..)| n != name).collect());
    let msg = load_err(tmp.path());
    assert!(msg.contains(name), "{msg}");
    assert!(msg.contains("diffusion_pytorch_model.safetensors"), "{msg}");
}

#[test]
fn a_wrong_shape_is_an_error_naming_the_tensor_the_file_and_both_shapes() {
    let name = "txt_in.weight";
    let tmp = edited_copy(|t| {
        t.into_iter()
            .map(|(n, d, s, b)| {
                if n == name {
                    // [64, 32] stored as [64, 31]: a checkpoint for another text width.
                    (
                        n,
                        d,
                        vec![s[0], s[1] - 1],
                        b[..s[0] * (s[1] - 1) * 4].to_vec(),
                    )
                } else {
                    (n, d, s, b)
                }
            })
            .collect()
    });
    let msg = load_err(tmp.path());
    assert!(msg.contains(name), "{msg}");
    assert!(msg.contains("diffusion_pytorch_model.safetensors"), "{msg}");
    assert!(
        msg.contains("[64, 31]") && msg.contains("[64, 32]"),
        "{msg}"
    );
}

#[test]
fn an_unexpected_tensor_is_an_error_naming_it() {
    let extra = "transformer_blocks.2.img_mod.1.bias";
    let tmp = edited_copy(|mut t| {
        t.push((extra.to_string(), Dtype::F32, vec![1], vec![0; 4]));
        t
    });
    let msg = load_err(tmp.path());
    assert!(msg.contains(extra), "{msg}");
}

#[test]
fn a_missing_config_is_an_error_naming_the_file() {
    let tmp = edited_copy(|t| t);
    std::fs::remove_file(tmp.path().join("config.json")).expect("rm");
    let msg = load_err(tmp.path());
    assert!(msg.contains("config.json"), "{msg}");
}

#[test]
fn a_config_whose_rope_axes_do_not_fill_the_head_is_rejected() {
    let tmp = edited_copy(|t| t);
    let path = tmp.path().join("config.json");
    let mut json: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(tiny_dir().join("config.json")).expect("read"),
    )
    .expect("json");
    json["axes_dims_rope"] = serde_json::json!([8, 12, 10]);
    std::fs::write(&path, json.to_string()).expect("write");
    let err = QwenImageTransformer::<B>::load(tmp.path(), &Default::default()).unwrap_err();
    assert!(matches!(err, DitError::Config { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("axes_dims_rope") && msg.contains("config.json"),
        "{msg}"
    );
}

#[test]
fn edit_and_layered_variants_are_rejected_by_name() {
    for key in ["zero_cond_t", "use_additional_t_cond", "use_layer3d_rope"] {
        let tmp = edited_copy(|t| t);
        let mut json: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(tiny_dir().join("config.json")).expect("read"),
        )
        .expect("json");
        json[key] = serde_json::json!(true);
        std::fs::write(tmp.path().join("config.json"), json.to_string()).expect("write");
        let msg = load_err(tmp.path());
        assert!(msg.contains(key), "{msg}");
    }
}

#[test]
fn inputs_that_do_not_fit_the_model_are_errors_not_panics() {
    use burn::tensor::Tensor;
    let dev = Default::default();
    let model = QwenImageTransformer::<B>::load(&tiny_dir(), &dev).expect("loads");
    let c = model.config().clone();
    let x = || Tensor::<B, 3>::zeros([1, 16, c.in_channels], &dev);
    let enc = || Tensor::<B, 3>::zeros([1, 5, c.joint_attention_dim], &dev);
    let t = || Tensor::<B, 1>::zeros([1], &dev);
    let shapes = [ImageShape::new(1, 4, 4)];
    // 16 tokens do not fit a 4x5 image.
    let err = model
        .forward(x(), enc(), None, t(), &[ImageShape::new(1, 4, 5)])
        .unwrap_err();
    assert!(err.to_string().contains("tokens"), "{err}");
    // A timestep per sample.
    let err = model
        .forward(x(), enc(), None, Tensor::zeros([2], &dev), &shapes)
        .unwrap_err();
    assert!(err.to_string().contains("timestep"), "{err}");
    // A mask as long as the text.
    let mask = Tensor::<B, 2, burn::tensor::Int>::ones([1, 4], &dev);
    let err = model
        .forward(x(), enc(), Some(mask), t(), &shapes)
        .unwrap_err();
    assert!(err.to_string().contains("mask"), "{err}");
    // No image at all.
    assert!(model.forward(x(), enc(), None, t(), &[]).is_err());
}
