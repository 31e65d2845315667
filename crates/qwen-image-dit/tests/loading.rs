//! Loading is strict: a checkpoint or config that does not fit the model is an error that names
//! the offending tensor (and its file) or config key, never a panic or a silently random weight.

use std::path::{Path, PathBuf};

use burn::backend::Flex;
use qwen_image_dit::{DitError, DitInputs, ImageShape, QwenImageTransformer};
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

/// A copy of the tiny transformer whose config.json went through `edit`.
fn with_config(edit: impl Fn(&mut serde_json::Value)) -> tempfile::TempDir {
    let tmp = edited_copy(|t| t);
    let mut json: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(tiny_dir().join("config.json")).expect("read"),
    )
    .expect("json");
    edit(&mut json);
    std::fs::write(tmp.path().join("config.json"), json.to_string()).expect("write");
    tmp
}

#[test]
fn the_edit_2511_variant_loads_and_the_layered_one_asks_for_its_embedding_by_name() {
    // zero_cond_t and the Layer3D RoPE add no weights: the base checkpoint fits.
    for key in ["zero_cond_t", "use_layer3d_rope"] {
        let tmp = with_config(|j| j[key] = serde_json::json!(true));
        let model = QwenImageTransformer::<B>::load(tmp.path(), &Default::default())
            .unwrap_or_else(|e| panic!("{key}: {e}"));
        assert!(
            model.config().zero_cond_t || model.config().use_layer3d_rope,
            "{key}"
        );
    }
    // use_additional_t_cond needs time_text_embed.addition_t_embedding, which the base lacks.
    let tmp = with_config(|j| j["use_additional_t_cond"] = serde_json::json!(true));
    let msg = load_err(tmp.path());
    assert!(
        msg.contains("time_text_embed.addition_t_embedding.weight"),
        "{msg}"
    );
}

/// Config values that overflowed `usize` arithmetic (a panic in debug, a silent wrap in
/// release) are refused by name, before any weight is read.
#[test]
fn oversized_config_values_are_errors_naming_the_key_not_overflows() {
    for (key, value, named) in [
        (
            "num_attention_heads",
            serde_json::json!(1u64 << 60),
            "num_attention_heads",
        ),
        (
            "attention_head_dim",
            serde_json::json!(1u64 << 62),
            "attention_head_dim",
        ),
        ("patch_size", serde_json::json!(1u64 << 33), "patch_size"),
        (
            "out_channels",
            serde_json::json!(1u64 << 62),
            "out_channels",
        ),
        ("in_channels", serde_json::json!(1u64 << 40), "in_channels"),
        (
            "joint_attention_dim",
            serde_json::json!(1u64 << 40),
            "joint_attention_dim",
        ),
        (
            "axes_dims_rope",
            serde_json::json!([1u64 << 63, 1u64 << 63, 32]),
            "axes_dims_rope",
        ),
    ] {
        let tmp = with_config(|j| j[key] = value.clone());
        // No weights at all: the config must be refused before they are looked for.
        std::fs::remove_file(tmp.path().join("diffusion_pytorch_model.safetensors")).expect("rm");
        let err = QwenImageTransformer::<B>::load(tmp.path(), &Default::default()).unwrap_err();
        assert!(matches!(err, DitError::Config { .. }), "{key}: {err}");
        let msg = err.to_string();
        assert!(
            msg.contains(named) && msg.contains("config.json"),
            "{key}: {msg}"
        );
    }
}

#[test]
fn a_config_of_another_class_is_rejected_by_name() {
    let tmp = with_config(|j| j["_class_name"] = serde_json::json!("AutoencoderKLQwenImage"));
    let err = QwenImageTransformer::<B>::load(tmp.path(), &Default::default()).unwrap_err();
    assert!(matches!(err, DitError::Config { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("_class_name")
            && msg.contains("AutoencoderKLQwenImage")
            && msg.contains("QwenImageTransformer2DModel"),
        "{msg}"
    );
    // A config without the key (hand-written) is still accepted.
    let tmp = with_config(|j| {
        j.as_object_mut().expect("object").remove("_class_name");
    });
    QwenImageTransformer::<B>::load(tmp.path(), &Default::default()).expect("loads");
}

#[test]
fn image_shapes_beyond_the_rope_tables_are_errors_naming_img_shapes_not_overflows() {
    use qwen_image_dit::{MAX_IMAGE_TOKENS, MAX_ROPE_POSITION, Rope};
    let dev = Default::default();
    let rope = |shapes: &[ImageShape], l: usize| Rope::<B>::new([8, 12, 12], shapes, l, &dev);
    let layer3d =
        |shapes: &[ImageShape], l: usize| Rope::<B>::new_layer3d([8, 12, 12], shapes, l, &dev);
    let huge = 1usize << 40;
    for (shapes, what) in [
        (vec![ImageShape::new(1, huge, huge)], "height"),
        (vec![ImageShape::new(huge, 2, 2)], "frame"),
        (
            vec![ImageShape::new(usize::MAX, usize::MAX, usize::MAX)],
            "frame",
        ),
        (
            vec![ImageShape::new(1, 2, 2 * MAX_ROPE_POSITION + 1)],
            "width",
        ),
        (
            vec![ImageShape::new(1, 4, 4), ImageShape::new(1, 0, 4)],
            "no tokens",
        ),
        // Every side within the tables, but 8192 × 8192 tokens is far past the token bound.
        (vec![ImageShape::new(1, 8192, 8192)], "image tokens"),
    ] {
        let msg = rope(&shapes, 7).unwrap_err().to_string();
        assert!(
            msg.contains("img_shapes") && msg.contains(what),
            "{shapes:?}: {msg}"
        );
    }
    const { assert!(8192 * 8192 > MAX_IMAGE_TOKENS) };
    // The largest centred side the reference has rows for still works: 8191 tokens use the 4096
    // negative rows and 4095 positive ones, and one text token fits at row 4095; one more row
    // of image is refused.
    rope(&[ImageShape::new(1, 2 * MAX_ROPE_POSITION - 1, 1)], 1).expect("fits the tables");
    let msg = rope(&[ImageShape::new(1, 2 * MAX_ROPE_POSITION + 1, 1)], 0)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("height"), "{msg}");
    // Text must end within the tables: it starts after the largest image half-size.
    let msg = rope(&[ImageShape::new(1, 2, 200)], MAX_ROPE_POSITION - 50)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("text length"), "{msg}");
    assert!(rope(&[ImageShape::new(1, 4, 4)], 0).is_ok());
    // Layered: the condition image (last) has a single frame at position -1.
    let msg = layer3d(&[ImageShape::new(1, 2, 2), ImageShape::new(2, 2, 2)], 3)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("condition") && msg.contains("img_shapes"),
        "{msg}"
    );
    assert!(rope(&[], 3).unwrap_err().to_string().contains("img_shapes"));
}

#[test]
fn inputs_that_do_not_fit_the_model_are_errors_not_panics() {
    use burn::tensor::Tensor;
    let dev = Default::default();
    let model = QwenImageTransformer::<B>::load(tiny_dir(), &dev).expect("loads");
    let c = model.config().clone();
    let x = || Tensor::<B, 3>::zeros([1, 16, c.in_channels], &dev);
    let enc = || Tensor::<B, 3>::zeros([1, 5, c.joint_attention_dim], &dev);
    let t = || Tensor::<B, 1>::zeros([1], &dev);
    let shapes = [ImageShape::new(1, 4, 4)];
    // 16 tokens do not fit a 4x5 image.
    let err = model
        .forward(DitInputs::new(x(), enc(), t(), &[ImageShape::new(1, 4, 5)]))
        .unwrap_err();
    assert!(err.to_string().contains("tokens"), "{err}");
    // A timestep per sample.
    let err = model
        .forward(DitInputs::new(
            x(),
            enc(),
            Tensor::zeros([2], &dev),
            &shapes,
        ))
        .unwrap_err();
    assert!(err.to_string().contains("timestep"), "{err}");
    // A mask as long as the text.
    let mask = Tensor::<B, 2, burn::tensor::Int>::ones([1, 4], &dev);
    let err = model
        .forward(DitInputs::new(x(), enc(), t(), &shapes).encoder_mask(Some(mask)))
        .unwrap_err();
    assert!(err.to_string().contains("mask"), "{err}");
    // No image at all.
    assert!(model.forward(DitInputs::new(x(), enc(), t(), &[])).is_err());
}
