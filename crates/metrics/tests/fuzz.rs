//! Fuzzing the threshold file parser (`Thresholds::parse`, upstream's consistency_threshold JSON)
//! on stable Rust with proptest: documents built from the real keys with hostile values, random
//! edits of the sample `h100.json`, and arbitrary JSON. No panic; a file that parses gives
//! thresholds inside their metric's range, and checking any metrics against them never panics.

use std::path::{Path, PathBuf};

use fuzz_support::{edits, mutate};
use metrics::{FrameMetrics, ImageMetrics, Media, Metric, Thresholds};
use proptest::prelude::*;
use serde_json::{Map, Value, json};

const CI_CASES: u32 = 2000;

fn config() -> ProptestConfig {
    fuzz_support::config(CI_CASES)
}

fn sample() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/metrics/thresholds/h100.json")
}

fn number() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<f64>()
            .prop_filter("JSON numbers are finite", |v| v.is_finite())
            .prop_map(|v| json!(v)),
        prop::sample::select(vec![
            -1.0, 0.0, 0.5, 1.0, 1.5, 16.0, 255.0, 256.0, -3.0, 1e308
        ])
        .prop_map(|v| json!(v)),
        any::<i64>().prop_map(|v| json!(v)),
        any::<u64>().prop_map(|v| json!(v)),
    ]
}

/// Any JSON value, a few levels deep.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        number(),
        "\\PC{0,8}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z_]{0,8}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn threshold_key() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(Metric::ALL.to_vec()).prop_map(|m| format!("{}_threshold", m.name())),
        Just("audio_rms_db_diff_threshold".to_string()),
        Just("_comment".to_string()),
        "[a-z_]{1,20}",
    ]
}

/// A threshold file shaped like upstream's, with hostile values.
fn document() -> impl Strategy<Value = Value> {
    let value = prop_oneof![4 => number(), 1 => json_value()];
    let entry = prop::collection::vec((threshold_key(), value.clone()), 0..5)
        .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<String, Value>>()));
    let entry = prop_oneof![5 => entry, 1 => json_value()];
    let top_key = prop_oneof![
        (
            prop::sample::select(Metric::ALL.to_vec()),
            prop::sample::select(vec!["image", "video", "audio"])
        )
            .prop_map(|(m, kind)| format!("default_{}_threshold_{kind}", m.name())),
        "[a-z_]{1,24}",
    ];
    (
        prop::collection::btree_map("[a-z0-9_]{1,10}", entry, 0..4),
        prop::collection::vec((top_key, value), 0..5),
        any::<bool>(),
    )
        .prop_map(|(cases, top, cases_as_object)| {
            let mut m: Map<String, Value> = top.into_iter().collect();
            if cases_as_object {
                m.insert("cases".into(), Value::Object(cases.into_iter().collect()));
            }
            Value::Object(m)
        })
}

fn metrics_value() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<f64>(),
        Just(f64::NAN),
        Just(f64::INFINITY),
        -1.0f64..300.0,
    ]
}

/// Parse; when it parses, every threshold is in range and checking never panics.
fn exercise(text: &str, clip: Option<f64>, ssim: f64, psnr: f64, mad: f64) {
    let Ok(t) = Thresholds::parse(text, Path::new("fuzz.json")) else {
        return;
    };
    let _ = t.warnings();
    for id in ["qwen_image_t2i", "a", "unknown"] {
        for media in [Media::Image, Media::Video] {
            let c = t.for_case(id, media);
            for metric in Metric::ALL {
                let (lo, hi) = metric.range();
                let v = c.get(metric);
                assert!(
                    (lo..=hi).contains(&v),
                    "{metric} threshold {v} out of range: {text}"
                );
            }
            let frames = [FrameMetrics {
                frame: "image".into(),
                metrics: ImageMetrics {
                    clip,
                    ssim,
                    psnr,
                    mean_abs_diff: mad,
                },
            }];
            let verdict = c.check(&frames);
            let _ = verdict.status();
            for f in &verdict.failures {
                let _ = f.to_string();
            }
        }
    }
    let again = t.clone().overlaid_with(t);
    let _ = again.for_case("a", Media::Image);
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn structured_threshold_files_never_panic(
        doc in document(),
        clip in prop::option::of(metrics_value()),
        ssim in metrics_value(),
        psnr in metrics_value(),
        mad in metrics_value(),
    ) {
        exercise(&doc.to_string(), clip, ssim, psnr, mad);
    }

    #[test]
    fn arbitrary_json_never_panics(doc in json_value()) {
        exercise(&doc.to_string(), Some(0.9), 0.9, 30.0, 2.0);
    }

    #[test]
    fn edited_sample_file_never_panics(edits in edits()) {
        let base = std::fs::read(sample()).expect("h100.json");
        let text = String::from_utf8_lossy(&mutate(&base, &edits)).into_owned();
        exercise(&text, Some(0.9), 0.9, 30.0, 2.0);
    }
}
