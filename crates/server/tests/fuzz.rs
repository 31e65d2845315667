//! Fuzzing the request parsers with proptest: JSON bodies (random edits of a real body, objects
//! of known fields with hostile values, arbitrary bytes) and multipart text fields, read for
//! every pipeline kind. Whatever comes in: no panic, an error is OpenAI-shaped with a status of
//! 4xx, and an accepted request is within the bounds the pipeline sizes its tensors from.

use cases::SglangPreset;
use fuzz_support::{edits, hostile_json, mutate};
use pipeline::{MAX_PIXELS, MAX_STEPS, PipelineKind};
use proptest::prelude::*;
use serde_json::{Map, Value, json};
use server::{Context, Fields, Loaded, MAX_N, Plan, ServedModel};
use torch_rng::CudaPlatform;

const CI_CASES: u32 = 1500;

/// Every field the parser reads, and a few it does not.
const KEYS: &[&str] = &[
    "prompt",
    "model",
    "n",
    "size",
    "width",
    "height",
    "num_inference_steps",
    "guidance_scale",
    "true_cfg_scale",
    "seed",
    "generator_device",
    "negative_prompt",
    "output_format",
    "response_format",
    "output_quality",
    "output_compression",
    "max_sequence_length",
    "num_frames",
    "layers",
    "resolution",
    "cfg_normalize",
    "use_en_prompt",
    "vision_positions",
    "background",
    "quality",
    "unknown_field",
];

const KINDS: &[PipelineKind] = &[
    PipelineKind::TextToImage,
    PipelineKind::Edit,
    PipelineKind::EditPlus,
    PipelineKind::Layered,
];

/// Read `fields` as a request to each kind of model (with one input image where one is taken)
/// and check what comes out.
fn check(fields: &Fields) {
    let model = ServedModel::new("Qwen/Qwen-Image", None);
    for &kind in KINDS {
        let preset = SglangPreset::from_class_name(kind.class_name()).unwrap();
        let ctx = Context {
            model: &model,
            loaded: Loaded { kind, preset },
            cuda: CudaPlatform::H100,
        };
        let images = usize::from(kind.takes_images());
        let mut f = fields.clone();
        match Plan::read(&mut f, &ctx, images) {
            Ok(plan) => {
                assert!((1..=MAX_N).contains(&plan.requests.len()));
                assert_eq!(plan.requests.len(), plan.seeds.len());
                for r in &plan.requests {
                    assert!((1..=MAX_STEPS).contains(&r.num_inference_steps));
                    let area = r.height.unwrap_or(1).checked_mul(r.width.unwrap_or(1));
                    assert!(area.is_some_and(|a| a <= MAX_PIXELS));
                    assert!(r.validate().is_ok(), "{r:?}");
                }
            }
            Err(e) => {
                assert!((400..500).contains(&e.status.as_u16()), "{e}");
                let body = e.body();
                assert!(body["error"]["message"].is_string());
            }
        }
    }
}

fn hostile_object() -> impl Strategy<Value = Value> {
    prop::collection::vec((prop::sample::select(KEYS), hostile_json()), 0..10).prop_map(|kv| {
        let mut m = Map::new();
        m.insert("prompt".into(), json!("a cat"));
        for (k, v) in kv {
            m.insert(k.to_string(), v);
        }
        Value::Object(m)
    })
}

/// A form value: a number, a word, or anything printable.
fn form_value() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<i64>().prop_map(|v| v.to_string()),
        any::<f64>().prop_map(|v| v.to_string()),
        prop::sample::select(vec![
            "",
            " ",
            "0",
            "1",
            "-1",
            "64x64",
            "7x7",
            "x",
            "1e400",
            "NaN",
            "true",
            "png",
            "url",
            "cpu",
            "cuda",
            "sequential",
            "640",
            "[1,2]",
        ])
        .prop_map(str::to_string),
        "\\PC{0,12}",
    ]
}

proptest! {
    #![proptest_config(fuzz_support::config(CI_CASES))]

    #[test]
    fn edited_json_bodies(e in edits()) {
        let base = json!({"prompt": "a cat", "size": "64x48", "n": 2, "seed": 7,
            "num_inference_steps": 4, "output_format": "png", "num_frames": 2}).to_string();
        if let Ok(f) = Fields::from_json(&mutate(base.as_bytes(), &e)) {
            check(&f);
        }
    }

    #[test]
    fn hostile_values_of_known_fields(body in hostile_object()) {
        let f = Fields::from_json(body.to_string().as_bytes()).unwrap();
        check(&f);
    }

    #[test]
    fn arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        if let Ok(f) = Fields::from_json(&bytes) {
            check(&f);
        }
    }

    #[test]
    fn multipart_text_fields(
        kv in prop::collection::vec((prop::sample::select(KEYS), form_value()), 0..12)
    ) {
        let mut f = Fields::default();
        f.push_text("prompt", "a cat".into());
        for (k, v) in kv {
            f.push_text(k, v);
        }
        check(&f);
    }
}
