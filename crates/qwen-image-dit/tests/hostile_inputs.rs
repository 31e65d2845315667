//! Input tensors a hostile caller hands `forward` (issue 29 item 5): empty axes and mask values
//! outside {0, 1} are a `DitError::Input` naming the input, never a panic inside a tensor op; a
//! fuzzer over small shapes and mask values finds no panic either. And a config's layer count is
//! bounded, with the weights it implies countable before any is made.

use std::path::{Path, PathBuf};

use burn::backend::Flex;
use burn::tensor::{Int, Tensor, TensorData};
use proptest::prelude::*;
use qwen_image_dit::{
    DitConfig, DitError, DitInputs, ImageShape, MAX_NUM_LAYERS, QwenImageTransformer,
    check_encoder_mask_values,
};

type B = Flex;

fn tiny_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/tiny-qwen-image/transformer")
}

fn tiny() -> QwenImageTransformer<B> {
    QwenImageTransformer::load(tiny_dir(), &Default::default()).expect("tiny transformer")
}

fn input_error(r: Result<Tensor<B, 3>, DitError>) -> String {
    match r {
        Err(e @ DitError::Input(_)) => e.to_string(),
        other => panic!("expected an input error, got {other:?}"),
    }
}

#[test]
fn empty_text_or_batch_is_an_input_error() {
    let dev = Default::default();
    let model = tiny();
    let c = model.config().clone();
    let shapes = [ImageShape::new(1, 4, 4)];
    let x = |b| Tensor::<B, 3>::zeros([b, 16, c.in_channels], &dev);
    let enc = |b, l| Tensor::<B, 3>::zeros([b, l, c.joint_attention_dim], &dev);
    let t = |b| Tensor::<B, 1>::zeros([b], &dev);
    // encoder_hidden_states [1, 0, 32], with the tables built by the call or by the caller.
    let e = input_error(model.forward(DitInputs::new(x(1), enc(1, 0), t(1), &shapes)));
    assert!(e.contains("text length 0"), "{e}");
    let rope = model.rope(&shapes, 0, &dev).expect("tables without text");
    let e = input_error(model.forward(DitInputs::new(x(1), enc(1, 0), t(1), &rope)));
    assert!(e.contains("[1, 0, 32] has text length 0"), "{e}");
    // An empty mask with it.
    let mask = Tensor::<B, 2, Int>::zeros([1, 0], &dev);
    let inputs = DitInputs::new(x(1), enc(1, 0), t(1), &shapes).encoder_mask(Some(mask));
    assert!(input_error(model.forward(inputs)).contains("text length 0"));
    // No sample at all.
    let rope = model.rope(&shapes, 3, &dev).expect("rope");
    let e = input_error(model.forward(DitInputs::new(x(0), enc(0, 3), t(0), &rope)));
    assert!(e.contains("batch is empty"), "{e}");
}

#[test]
fn a_mask_value_other_than_0_or_1_is_an_input_error() {
    let dev = Default::default();
    let model = tiny();
    let c = model.config().clone();
    let shapes = [ImageShape::new(1, 4, 4)];
    for bad in [2i64, -1, i64::from(i32::MAX)] {
        let mask = Tensor::<B, 2, Int>::from_data(TensorData::new(vec![1, bad, 0], [1, 3]), &dev);
        let inputs = DitInputs::new(
            Tensor::zeros([1, 16, c.in_channels], &dev),
            Tensor::zeros([1, 3, c.joint_attention_dim], &dev),
            Tensor::zeros([1], &dev),
            &shapes,
        )
        .encoder_mask(Some(mask));
        let e = input_error(model.forward(inputs));
        assert!(
            e.contains("encoder_hidden_states_mask") && e.contains(&format!("value {bad}")),
            "{e}"
        );
    }
    // 2^62 does not fit this backend's i32: a caller checks the i64 values before making the
    // tensor (what `forward dit` does with its file).
    let e = check_encoder_mask_values(&[1, 1 << 62, 0])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("value 4611686018427387904 at flat index 1"),
        "{e}"
    );
    assert!(check_encoder_mask_values(&[1, 0, 1, 1]).is_ok());
    assert!(check_encoder_mask_values(&[]).is_ok());
}

#[test]
fn a_config_with_a_billion_layers_is_refused_by_name() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("config.json");
    let text = std::fs::read_to_string(tiny_dir().join("config.json")).expect("config");
    let mut doc: serde_json::Value = serde_json::from_str(&text).expect("json");
    doc["num_layers"] = serde_json::json!(1_000_000_000u64);
    std::fs::write(&path, doc.to_string()).expect("write");
    let e = DitConfig::from_file(&path).unwrap_err().to_string();
    assert!(
        e.contains("`num_layers` 1000000000") && e.contains(&MAX_NUM_LAYERS.to_string()),
        "{e}"
    );
    // `random` validates a hand-made config too, before making any block.
    let c = DitConfig {
        num_layers: 1_000_000_000,
        ..DitConfig::from_file(&tiny_dir().join("config.json")).expect("tiny")
    };
    let e = QwenImageTransformer::<B>::random(c, &Default::default()).unwrap_err();
    assert!(e.to_string().contains("`num_layers`"), "{e}");
}

#[test]
fn num_parameters_counts_every_stored_weight() {
    let root = tiny_dir().join("../..");
    for dir in [
        "tiny-qwen-image/transformer",
        "dit-variants/edit-2511",
        "dit-variants/layered",
    ] {
        let dir = root.join(dir);
        let c = DitConfig::from_file(&dir.join("config.json")).expect("config");
        let bytes = std::fs::read(dir.join("diffusion_pytorch_model.safetensors")).expect("read");
        let st = safetensors::SafeTensors::deserialize(&bytes).expect("safetensors");
        let stored: usize = st
            .tensors()
            .iter()
            .map(|(_, t)| t.shape().iter().product::<usize>())
            .sum();
        assert_eq!(c.num_parameters(), stored as u64, "{}", dir.display());
    }
    // The released model: 20.4 · 10^9.
    let released = DitConfig::default().num_parameters();
    assert!(
        (20_400_000_000..20_500_000_000).contains(&released),
        "{released}"
    );
}

/// A size: mostly the one that fits (`right`, known only once the others are drawn), else 0 or a
/// small other value. Mostly fitting inputs make one wrong axis at a time likely.
fn size() -> impl Strategy<Value = (u8, usize)> {
    (
        prop_oneof![6 => Just(0u8), 1 => Just(1), 1 => Just(2)],
        0usize..6,
    )
}

fn pick((p, other): (u8, usize), right: usize) -> usize {
    match p {
        0 => right,
        1 => 0,
        _ => other,
    }
}

proptest! {
    #![proptest_config(fuzz_support::config(128))]

    /// Any combination of small shapes and mask values: a result of the right shape or an input
    /// error, never a panic.
    #[test]
    fn hostile_input_tensors_never_panic(
        [b, h, w, n, l, c_in, c_txt, t_len, mb, ml] in [size(), size(), size(), size(), size(),
            size(), size(), size(), size(), size()],
        masked in any::<bool>(),
        values in prop::collection::vec(
            prop_oneof![4 => Just(1i64), 2 => Just(0), 1 => Just(-1), 1 => Just(2),
                1 => Just(i64::from(i32::MAX))],
            1..4,
        ),
    ) {
        let dev = Default::default();
        let model = tiny();
        let c = model.config().clone();
        let b = pick(b, 1);
        let (h, w) = (pick(h, 2), pick(w, 3));
        let n = pick(n, h * w);
        let l = pick(l, 3);
        let (mb, ml) = (pick(mb, b), pick(ml, l));
        let shapes = [ImageShape::new(1, h, w)];
        let mask = masked.then(|| {
            let v: Vec<i64> = values.iter().copied().cycle().take(mb * ml).collect();
            Tensor::<B, 2, Int>::from_data(TensorData::new(v, [mb, ml]), &dev)
        });
        let inputs = DitInputs::new(
            Tensor::<B, 3>::zeros([b, n, pick(c_in, c.in_channels)], &dev),
            Tensor::<B, 3>::zeros([b, l, pick(c_txt, c.joint_attention_dim)], &dev),
            Tensor::<B, 1>::zeros([pick(t_len, b)], &dev),
            &shapes,
        )
        .encoder_mask(mask);
        match model.forward(inputs) {
            Ok(out) => prop_assert_eq!(out.dims(), [b, n, c.proj_out_dim()]),
            Err(e) => prop_assert!(matches!(e, DitError::Input(_)), "{e}"),
        }
    }
}
