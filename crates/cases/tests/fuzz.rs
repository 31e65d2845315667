//! Fuzzing the case file parser (the `cases` crate) on stable Rust with proptest: random
//! documents built from the schema's keys with hostile values (huge and negative integers,
//! NaN/∞, paths that escape, odd unicode), random edits of the real `testdata/cases/tiny.toml`,
//! and arbitrary text. Whatever comes in: no panic, and a case that [`Case::validate`] accepts is
//! within the bounds the pipeline sizes its tensors from.

use std::path::{Path, PathBuf};

use cases::Case;
use fuzz_support::{edits, mutate};
use pipeline::{MAX_PIXELS, MAX_STEPS};
use proptest::prelude::*;

const CI_CASES: u32 = 2000;

fn config() -> ProptestConfig {
    fuzz_support::config(CI_CASES)
}

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata")
}

/// Where the fuzzed file claims to be: relative `model` / `latents` paths resolve from here.
fn case_path() -> PathBuf {
    testdata().join("cases/fuzz.toml")
}

/// A TOML value, mostly of the kinds the schema uses, with hostile numbers.
fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<i64>().prop_map(|v| v.to_string()),
        prop_oneof![
            Just(0u64),
            Just(1),
            Just(15),
            Just(16),
            Just(1 << 40),
            Just(u32::MAX as u64 + 1),
            Just(i64::MAX as u64),
            1u64..5000,
        ]
        .prop_map(|v| v.to_string()),
        prop_oneof![
            Just("nan".to_string()),
            Just("inf".to_string()),
            Just("-inf".to_string()),
            Just("1e9".to_string()),
            Just("-0.0".to_string()),
            any::<f32>().prop_map(|v| format!("{v:?}")),
        ],
        any::<bool>().prop_map(|v| v.to_string()),
        "[ -~]{0,12}".prop_map(|s| format!("{s:?}")),
        "\\PC{0,6}".prop_map(|s| format!("{s:?}")),
        prop_oneof![
            Just("\"../tiny-qwen-image\"".to_string()),
            Just("\"../tiny-qwen-image-edit-plus\"".to_string()),
            Just("\"Qwen/Qwen-Image\"".to_string()),
            Just("\"../e2e/latents/tiny_t2i_cfg.safetensors\"".to_string()),
            Just("\"/\"".to_string()),
            Just("\"\"".to_string()),
            Just("\"cuda\"".to_string()),
            Just("\"jpg\"".to_string()),
            Just("\"sglang\"".to_string()),
        ],
        prop::collection::vec(any::<i32>(), 0..3).prop_map(|v| format!("{v:?}")),
    ]
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "prompt",
            "negative_prompt",
            "true_cfg_scale",
            "guidance_scale",
            "height",
            "width",
            "num_inference_steps",
            "seed",
            "generator",
            "latents",
            "num_gpus",
            "output_format",
            "skip",
            "image",
            "layers",
            "resolution",
        ])
        .prop_map(str::to_string),
        "[a-z_]{1,10}",
    ]
}

/// One `[[case]]` table: usually a valid id, model and prompt, then random keys.
fn case_table() -> impl Strategy<Value = String> {
    (
        prop_oneof![
            3 => "[a-z0-9_]{1,8}".prop_map(|s| format!("{s:?}")),
            1 => value(),
        ],
        prop_oneof![
            3 => Just("\"../tiny-qwen-image\"".to_string()),
            1 => value(),
        ],
        prop_oneof![3 => Just("\"a cat\"".to_string()), 1 => value()],
        prop::collection::vec((key(), value()), 0..8),
    )
        .prop_map(|(id, model, prompt, rest)| {
            let mut t = format!("[[case]]\nid = {id}\nmodel = {model}\nprompt = {prompt}\n");
            for (k, v) in rest {
                t.push_str(&format!("{k} = {v}\n"));
            }
            t
        })
}

fn document() -> impl Strategy<Value = String> {
    (
        prop::collection::vec(
            (
                prop::sample::select(vec!["defaults", "gt_root", "thresholds", "colour"]),
                value(),
            ),
            0..2,
        ),
        prop::collection::vec(case_table(), 0..4),
    )
        .prop_map(|(suite, cases)| {
            let mut t: String = suite.iter().map(|(k, v)| format!("{k} = {v}\n")).collect();
            t.push_str(&cases.join("\n"));
            t
        })
}

/// Everything a runner does with a parsed case before loading a model: none of it may panic,
/// and an accepted case is inside the bounds.
fn exercise(text: &str) {
    let Ok(cases) = cases::parse(text, &case_path()) else {
        return;
    };
    for c in &cases {
        check_case(c);
    }
}

fn check_case(c: &Case) {
    let _ = c.initial_latents();
    let request = c.request();
    let _ = request.guidance();
    let request_ok = request.validate().is_ok();
    if c.validate().is_ok() {
        assert!(request_ok, "case {} valid but its request is not", c.id);
        assert!((1..=MAX_STEPS).contains(&c.num_inference_steps), "{c:?}");
        if let (Some(h), Some(w)) = (c.height, c.width) {
            assert!(h.checked_mul(w).is_some_and(|a| a <= MAX_PIXELS), "{c:?}");
        }
        assert!(c.true_cfg_scale.is_none_or(f32::is_finite), "{c:?}");
        assert!(c.num_gpus >= 1, "{c:?}");
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn structured_case_files_never_panic(text in document()) {
        exercise(&text);
    }

    #[test]
    fn edited_tiny_toml_never_panics(edits in edits()) {
        let base = std::fs::read(testdata().join("cases/tiny.toml")).expect("tiny.toml");
        let text = String::from_utf8_lossy(&mutate(&base, &edits)).into_owned();
        exercise(&text);
    }

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,200}") {
        exercise(&text);
    }
}

/// Regressions found by the fuzzer, kept as plain tests.
#[test]
fn known_hostile_case_files() {
    for text in [
        // The sizes that overflowed `2 * h * w` in the latents (issue 20).
        "[[case]]\nid = \"a\"\nmodel = \"../tiny-qwen-image\"\nprompt = \"x\"\nheight = 1099511627776\nwidth = 1099511627776\n",
        "[[case]]\nid = \"a\"\nmodel = \"../tiny-qwen-image\"\nprompt = \"x\"\nnum_inference_steps = 1000000000\n",
        "[[case]]\nid = \"a\"\nmodel = \"../tiny-qwen-image\"\nprompt = \"x\"\ntrue_cfg_scale = nan\n",
        "[[case]]\nid = \"a\"\nmodel = \"../tiny-qwen-image\"\nprompt = \"x\"\nheight = 0\n",
    ] {
        let cases = cases::parse(text, &case_path()).expect("parses; values are checked per case");
        let e = cases[0].validate().expect_err(text).to_string();
        assert!(e.contains("case `a`"), "{e}");
        check_case(&cases[0]);
    }
}
