//! Fuzzing the transformer's config parser (`DitConfig::from_file`) and `img_shapes` (through
//! `Rope::for_config` and `DitConfig::check_inputs`, as `forward dit` and the pipelines use them)
//! on stable Rust with proptest: the tiny model's config.json with hostile values, random edits
//! of it, and hostile image shapes. No panic or overflow; an accepted config or shape list is
//! inside the bounds the model sizes its tensors from.

use std::path::{Path, PathBuf};

use burn::backend::Flex;
use fuzz_support::{edits, hostile_json as hostile, mutate, scratch};
use proptest::prelude::*;
use qwen_image_dit::{DitConfig, ImageShape, MAX_IMAGE_TOKENS, MAX_INNER_DIM, Rope};
use serde_json::{Value, json};

const CI_CASES: u32 = 2000;

fn config() -> ProptestConfig {
    fuzz_support::config(CI_CASES)
}

/// The real config with some top-level keys replaced by hostile values (or removed).
fn config_document(base: Value) -> impl Strategy<Value = Value> {
    fuzz_support::edited_config(base, 1, hostile())
}

fn tiny_config() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/tiny-qwen-image/transformer/config.json")
}

fn base() -> Value {
    serde_json::from_str(&std::fs::read_to_string(tiny_config()).expect("config")).expect("json")
}

/// Parse; an accepted config has the bounds the model relies on, and a small input checks.
fn exercise(bytes: &[u8], file: &str) {
    let path = scratch().join(file);
    std::fs::write(&path, bytes).expect("write");
    let Ok(c) = DitConfig::from_file(&path) else {
        return;
    };
    assert!(c.inner_dim() <= MAX_INNER_DIM, "{c:?}");
    let _ = (c.out_channels(), c.proj_out_dim());
    let shapes = [ImageShape::new(1, 2, 3)];
    if let Ok(rope) = Rope::<Flex>::for_config(&c, &shapes, 4, &Default::default()) {
        let _ = c.check_inputs(
            [1, 6, c.in_channels],
            [1, 4, c.joint_attention_dim],
            None,
            [1],
            &rope,
        );
        let _ = c.check_inputs([2, 7, 1], [1, 3, 1], Some([1, 9]), [3], &rope);
    }
    let _ = c.check_additional_t_cond(Some(&[0, -1, i64::MAX]), 3);
    let _ = c.check_additional_t_cond(None, 1);
}

fn side() -> impl Strategy<Value = usize> {
    prop_oneof![
        4 => 1usize..40,
        1 => Just(0usize),
        1 => prop::sample::select(vec![4096, 4097, 8192, 8193, 1 << 20, 1 << 40, usize::MAX]),
        1 => any::<usize>(),
    ]
}

fn shapes() -> impl Strategy<Value = Vec<ImageShape>> {
    prop::collection::vec(
        (side(), side(), side()).prop_map(|(f, h, w)| ImageShape::new(f, h, w)),
        0..4,
    )
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn hostile_config_values_never_panic(doc in config_document(base())) {
        exercise(doc.to_string().as_bytes(), "hostile.json");
    }

    #[test]
    fn edited_config_files_never_panic(edits in edits()) {
        let bytes = std::fs::read(tiny_config()).expect("config");
        exercise(&mutate(&bytes, &edits), "edited.json");
    }

    #[test]
    fn hostile_img_shapes_never_panic(
        shapes in shapes(),
        txt_len in prop_oneof![0usize..64, Just(4096usize), any::<usize>()],
        layer3d in any::<bool>(),
    ) {
        // A config with narrow heads, so that a shape list at the bound stays cheap to build.
        let mut doc = base();
        doc["attention_head_dim"] = json!(8);
        doc["axes_dims_rope"] = json!([2, 2, 4]);
        doc["use_layer3d_rope"] = json!(layer3d);
        let path = scratch().join(format!("rope-{layer3d}.json"));
        if !path.is_file() {
            std::fs::write(&path, doc.to_string()).expect("write");
        }
        let c = DitConfig::from_file(&path).expect("narrow config");
        if let Ok(rope) = Rope::<Flex>::for_config(&c, &shapes, txt_len, &Default::default()) {
            let n = rope.num_img_tokens();
            prop_assert!(n <= MAX_IMAGE_TOKENS);
            prop_assert_eq!(n, shapes.iter().map(|s| s.num_tokens()).sum::<usize>());
            prop_assert_eq!(rope.txt_len(), txt_len);
        }
    }
}

/// The overflows of issue 20, kept as plain tests.
#[test]
fn known_overflowing_configs_are_refused() {
    for (key, value) in [
        ("num_attention_heads", json!(1u64 << 60)),
        ("patch_size", json!(1u64 << 33)),
    ] {
        let mut doc = base();
        doc[key] = value;
        let path = scratch().join(format!("known-{key}.json"));
        std::fs::write(&path, doc.to_string()).expect("write");
        let e = DitConfig::from_file(&path).expect_err(key).to_string();
        assert!(e.contains(key), "{e}");
    }
    let c = DitConfig::from_file(&tiny_config()).expect("tiny");
    let huge = [ImageShape::new(1, 1 << 40, 1 << 40)];
    assert!(Rope::<Flex>::for_config(&c, &huge, 4, &Default::default()).is_err());
}
