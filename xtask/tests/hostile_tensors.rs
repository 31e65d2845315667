//! Hostile input tensors and counts (issue 29 items 5 and 7): `forward dit` / `forward
//! text-encoder` with empty axes, ids outside the vocabulary or mask values past the backend's
//! integer type, and `bench dit-step` / `forward` with counts that cannot run or never end, exit
//! 2 naming the cause once, never a panic (exit 101), an allocator abort or a NaN timing.

use std::path::{Path, PathBuf};
use std::process::Output;

use safetensors::Dtype;
use safetensors::tensor::TensorView;

use crate::common::{stderr, testdata, xtask};
use crate::hostile::assert_refused;

/// One tensor of an inputs file: name, dtype, shape, little-endian bytes.
type Entry = (&'static str, Dtype, Vec<usize>, Vec<u8>);

fn f32s(name: &'static str, shape: &[usize], value: f32) -> Entry {
    let n: usize = shape.iter().product();
    let bytes = (0..n).flat_map(|_| value.to_le_bytes()).collect();
    (name, Dtype::F32, shape.to_vec(), bytes)
}

fn i64s(name: &'static str, shape: &[usize], values: &[i64]) -> Entry {
    let bytes = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    (name, Dtype::I64, shape.to_vec(), bytes)
}

fn write(path: &Path, entries: &[Entry]) {
    let views: Vec<(&str, TensorView)> = entries
        .iter()
        .map(|(n, d, s, b)| (*n, TensorView::new(*d, s.clone(), b).expect("view")))
        .collect();
    safetensors::serialize_to_file(views, None, path).expect("write inputs");
}

/// `forward CMD` on `entries` with the tiny pipeline's `component`; the output must not appear.
fn forward(cmd: &str, component: &str, entries: &[Entry], extra: &[&str]) -> Output {
    let tmp = tempfile::tempdir().expect("temp dir");
    let inputs = tmp.path().join("inputs.safetensors");
    write(&inputs, entries);
    let out = tmp.path().join("out.safetensors");
    let o = xtask()
        .args(["forward", cmd, "--model"])
        .arg(testdata().join("tiny-qwen-image").join(component))
        .arg("--inputs")
        .arg(&inputs)
        .arg("--output")
        .arg(&out)
        .args(extra)
        .output()
        .expect("run xtask");
    assert!(
        !out.exists(),
        "{} was written: {}",
        out.display(),
        stderr(&o)
    );
    o
}

/// The tiny transformer's inputs with `l` text tokens and, when given, this mask.
fn dit_inputs(l: usize, mask: Option<&[i64]>) -> Vec<Entry> {
    let mut e = vec![
        f32s("hidden_states", &[1, 16, 64], 0.1),
        f32s("encoder_hidden_states", &[1, l, 32], 0.1),
        f32s("timestep", &[1], 0.5),
        i64s("img_shapes", &[1, 3], &[1, 4, 4]),
    ];
    if let Some(m) = mask {
        e.push(i64s("encoder_hidden_states_mask", &[1, m.len()], m));
    }
    e
}

#[test]
fn forward_dit_refuses_empty_text_and_a_mask_value_past_i32() {
    let o = forward("dit", "transformer", &dit_inputs(0, None), &[]);
    assert_refused(&o, &["encoder_hidden_states [1, 0, 32] has text length 0"]);
    let o = forward("dit", "transformer", &dit_inputs(0, Some(&[])), &[]);
    assert_refused(&o, &["text length 0"]);
    let o = forward(
        "dit",
        "transformer",
        &dit_inputs(3, Some(&[1, 1 << 62, 0])),
        &[],
    );
    assert_refused(
        &o,
        &[
            "inputs.safetensors",
            "encoder_hidden_states_mask value 4611686018427387904",
        ],
    );
    let o = forward("dit", "transformer", &dit_inputs(3, Some(&[1, 2, 0])), &[]);
    assert_refused(&o, &["encoder_hidden_states_mask value 2 at flat index 1"]);
    // The well-formed inputs run.
    let tmp = tempfile::tempdir().expect("temp dir");
    let inputs = tmp.path().join("inputs.safetensors");
    write(&inputs, &dit_inputs(3, Some(&[1, 1, 0])));
    let o = xtask()
        .args(["forward", "dit", "--model"])
        .arg(testdata().join("tiny-qwen-image/transformer"))
        .arg("--inputs")
        .arg(&inputs)
        .arg("--output")
        .arg(tmp.path().join("out.safetensors"))
        .output()
        .expect("run xtask");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}

fn tokens(ids: &[i64], mask: &[i64], shape: &[usize]) -> Vec<Entry> {
    vec![
        i64s("input_ids", shape, ids),
        i64s("attention_mask", shape, mask),
    ]
}

#[test]
fn forward_text_encoder_refuses_ids_outside_the_vocabulary_bad_masks_and_empty_inputs() {
    for (ids, mask, shape, says) in [
        (
            &[1, -1][..],
            &[1, 1][..],
            &[1, 2][..],
            "input_ids value -1 at flat index 1",
        ),
        (&[1 << 40], &[1], &[1, 1], "input_ids value 1099511627776"),
        (&[151_680], &[1], &[1, 1], "not a token id (0..151680"),
        (
            &[1, 2],
            &[1, 1 << 62],
            &[1, 2],
            "attention_mask value 4611686018427387904",
        ),
        (&[], &[], &[1, 0], "input_ids [1, 0] is empty"),
        (&[], &[], &[0, 3], "input_ids [0, 3] is empty"),
    ] {
        let o = forward(
            "text-encoder",
            "text_encoder",
            &tokens(ids, mask, shape),
            &[],
        );
        assert_refused(&o, &["inputs.safetensors", says]);
    }
}

/// `bench dit-step` on a small size, one step, with `extra` flags in place of the defaults.
fn bench(config: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        ("--height", "64"),
        ("--width", "64"),
        ("--txt-len", "4"),
        ("--steps", "1"),
        ("--warmup", "0"),
    ];
    for pair in extra.chunks(2) {
        args.retain(|(flag, _)| *flag != pair[0]);
        args.push((pair[0], pair[1]));
    }
    xtask()
        .args(["bench", "dit-step", "--config"])
        .arg(config)
        .args(args.iter().flat_map(|(f, v)| [f, v]))
        .output()
        .expect("run xtask")
}

fn tiny_config() -> PathBuf {
    testdata().join("tiny-qwen-image/transformer/config.json")
}

/// The tiny config with `num_layers` (and, for `released`, the released sizes) changed.
fn config_with_layers(dir: &Path, layers: u64, released: bool) -> PathBuf {
    let mut doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(tiny_config()).expect("config"))
            .expect("json");
    if released {
        for key in [
            "attention_head_dim",
            "axes_dims_rope",
            "joint_attention_dim",
            "num_attention_heads",
        ] {
            doc.as_object_mut().expect("object").remove(key);
        }
    }
    doc["num_layers"] = serde_json::json!(layers);
    let path = dir.join(format!("config-{layers}-{released}.json"));
    std::fs::write(&path, doc.to_string()).expect("write");
    path
}

#[test]
fn bench_dit_step_refuses_counts_that_cannot_run_before_making_a_model() {
    let tiny = tiny_config();
    for (args, says) in [
        (&["--txt-len", "0"][..], "text length 0"),
        (&["--steps", "0"], "--steps must be at least 1"),
        (
            &["--steps", "1099511627776"],
            "--steps 1099511627776 is above the maximum 1000",
        ),
        (
            &["--warmup", "1099511627776"],
            "--warmup 1099511627776 is above the maximum",
        ),
        (&["--height", "8"], "--height 8"),
        (&["--width", "1099511627776"], "--width 1099511627776"),
        (&["--txt-len", "5000"], "text length 5000"),
    ] {
        assert_refused(&bench(&tiny, args), &[says]);
    }
    let dir = tempfile::tempdir().expect("temp dir");
    // A billion layers: refused by the config's bound, not after 42 s in the allocator.
    let o = bench(&config_with_layers(dir.path(), 1_000_000_000, false), &[]);
    assert_refused(&o, &["`num_layers` 1000000000 exceeds the maximum 1024"]);
    // Within the bound, but the released width's weights would not fit in memory.
    let o = bench(&config_with_layers(dir.path(), 1024, true), &[]);
    assert_refused(&o, &["1024 layers", "GiB of memory"]);
}

#[test]
fn forward_refuses_repeat_and_warmup_that_never_end() {
    for flag in ["--repeat", "--warmup"] {
        let o = forward(
            "dit",
            "transformer",
            &dit_inputs(3, None),
            &[flag, "1099511627776"],
        );
        assert_refused(
            &o,
            &[&format!("{flag} 1099511627776 is above the maximum 1000")],
        );
    }
}
