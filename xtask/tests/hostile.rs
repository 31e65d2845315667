//! The CLI as a hostile user drives it: every bad input gives a clear error naming what is wrong,
//! exit 2 ("could not run"), and never a panic (exit 101), a silent success or a lost report.
//! Sizes and step counts are refused before any weight is read (`--model /nonexistent` proves
//! it: the size is named, not the missing model).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use safetensors::Dtype;
use safetensors::tensor::TensorView;

fn xtask() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_xtask"));
    c.env(
        "GT_RESOLVER_CACHE_DIR",
        std::env::temp_dir().join("qwen-xtask-hostile-cache"),
    );
    c.env_remove("SGLANG_CONSISTENCY_GT_DIR");
    c.env_remove("SGLANG_DIFFUSION_CONSISTENCY_PLATFORM");
    c
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn testdata() -> PathBuf {
    root().join("testdata")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Exit 2, no panic, and the message contains every needle.
fn assert_refused(o: &Output, needles: &[&str]) {
    let err = stderr(o);
    assert!(!err.contains("panicked"), "panic: {err}");
    assert_eq!(o.status.code(), Some(2), "{err}");
    for n in needles {
        assert!(err.contains(n), "`{n}` missing from: {err}");
    }
    assert_says_its_cause_once(&err);
}

/// No `error:` line says the same thing twice in a row (`eof: eof`), the way an error that both
/// displays its source and returns it from `source()` does under anyhow's `{:#}`.
fn assert_says_its_cause_once(err: &str) {
    for line in err.lines().filter(|l| l.starts_with("error:")) {
        let parts: Vec<&str> = line.split(": ").map(str::trim).collect();
        for w in parts.windows(2) {
            assert!(w[0] != w[1], "repeated cause `{}` in: {line}", w[0]);
        }
        let last = parts.last().copied().unwrap_or_default();
        if last.len() > 8 {
            assert_eq!(line.matches(last).count(), 1, "repeated cause in: {line}");
        }
    }
}

fn generate(extra: &[&str]) -> Output {
    xtask()
        .args([
            "generate",
            "--model",
            "/nonexistent/model",
            "--prompt",
            "x",
            "--out",
        ])
        .arg(std::env::temp_dir().join("qwen-hostile-never-written.png"))
        .args(extra)
        .output()
        .expect("run xtask")
}

#[test]
fn generate_refuses_impossible_sizes_before_loading_weights() {
    for (args, needles) in [
        (
            &["--height", "1099511627776"][..],
            &["height 1099511627776", "16384"][..],
        ),
        (&["--width", "1099511627776"], &["width 1099511627776"]),
        (&["--height", "100000"], &["height 100000"]),
        (&["--height", "0"], &["height 0"]),
        (&["--width", "8"], &["width 8", "16"]),
        (
            &["--height", "16384", "--width", "16384"],
            &["16384 × 16384", "8192 × 8192"],
        ),
        (&["--steps", "1000000000"], &["steps 1000000000", "1000"]),
        (&["--steps", "0"], &["steps must be at least 1"]),
        (&["--true-cfg-scale", "nan"], &["true_cfg_scale is NaN"]),
        (&["--guidance-scale", "inf"], &["guidance_scale is inf"]),
        (
            &["--max-sequence-length", "5000"],
            &["max_sequence_length 5000"],
        ),
    ] {
        let o = generate(args);
        assert_refused(&o, needles);
        assert!(
            !stderr(&o).contains("/nonexistent/model"),
            "{args:?}: {}",
            stderr(&o)
        );
    }
}

#[test]
fn a_negative_number_is_an_invalid_value_of_its_option() {
    let o = generate(&["--seed", "-1"]);
    assert_refused(&o, &["invalid value '-1' for '--seed"]);
    let o = generate(&["--steps", "-5"]);
    assert_refused(&o, &["invalid value '-5' for '--steps"]);
    let o = xtask()
        .args([
            "randn",
            "--generator",
            "cpu",
            "--seed",
            "-1",
            "--shape",
            "2",
        ])
        .arg("--output")
        .arg(std::env::temp_dir().join("qwen-hostile-randn.safetensors"))
        .output()
        .expect("run xtask");
    assert_refused(&o, &["invalid value '-1' for '--seed"]);
}

#[test]
fn a_truncated_image_says_its_cause_once() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let good = testdata().join("vision/inputs/gray_100x160.png");
    let bytes = std::fs::read(&good).expect("png");
    let cut = tmp.path().join("cut.png");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).expect("write");
    let o = xtask()
        .arg("metrics")
        .arg(&cut)
        .arg(&good)
        .arg("--json")
        .output()
        .expect("run xtask");
    assert_refused(&o, &["cut.png"]);
}

#[test]
fn error_messages_do_not_repeat_their_source() {
    // The root of `cause: cause` messages: a thiserror variant whose message shows a field that
    // is also its `source()` (`#[from]`, `#[source]`, or a field named `source`). anyhow's `{:#}`
    // prints the message and then each source, so such a cause is printed twice.
    let mut offenders = Vec::new();
    for dir in ["crates", "xtask/src"] {
        visit(&root().join(dir), &mut |path, text| {
            for (i, chunk) in text.split("#[error(").enumerate().skip(1) {
                let (message, rest) = chunk.split_once(")]").unwrap_or((chunk, ""));
                if message.starts_with("transparent") {
                    continue;
                }
                // The variant's fields: up to the next variant's attribute or the enum's end.
                let body = rest.split("#[error(").next().unwrap_or("");
                let body = &body[..body.find("\n}").unwrap_or(body.len())];
                let shown_source = message.contains("{source}")
                    || (body.contains("#[from]") || body.contains("#[source]"))
                        && source_field_shown(message, body);
                if shown_source {
                    offenders.push(format!("{} (variant {i}): {message}", path.display()));
                }
            }
        });
    }
    assert!(offenders.is_empty(), "{offenders:#?}");
}

/// Whether `message` shows the field marked `#[from]` / `#[source]` in `body`.
fn source_field_shown(message: &str, body: &str) -> bool {
    let body = body.trim_start();
    // Tuple variant: `Name(#[from] T)` is field 0.
    if let Some(open) = body.find('(')
        && body[..open]
            .chars()
            .all(|c| c.is_alphanumeric() || c == '_' || c.is_whitespace())
    {
        return message.contains("{0}");
    }
    // Struct variant: the field after the attribute.
    for attr in ["#[from]", "#[source]"] {
        if let Some(at) = body.find(attr) {
            let field = body[at + attr.len()..]
                .trim_start()
                .split(':')
                .next()
                .unwrap_or("")
                .trim();
            if message.contains(&format!("{{{field}}}")) {
                return true;
            }
        }
    }
    false
}

fn visit(dir: &Path, f: &mut dyn FnMut(&Path, &str)) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            visit(&p, f);
        } else if p.extension().is_some_and(|x| x == "rs")
            && let Ok(text) = std::fs::read_to_string(&p)
        {
            f(&p, &text);
        }
    }
}

// ---- forward: an output with NaN/Inf is an error naming the tensor, and nothing is written ----

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

/// `src`'s tensors named in `keep` (all when empty), with `poison` ones filled with `value`.
fn rewrite(src: &Path, dst: &Path, keep: &[&str], poison: &dyn Fn(&str) -> bool, value: f32) {
    let raw: Raw = read_all(src)
        .into_iter()
        .filter(|(n, ..)| keep.is_empty() || keep.contains(&n.as_str()))
        .map(|(n, d, s, b)| {
            let b = match d {
                Dtype::F32 if poison(&n) => b
                    .chunks_exact(4)
                    .flat_map(|_| value.to_le_bytes())
                    .collect(),
                Dtype::BF16 if poison(&n) => b
                    .chunks_exact(2)
                    .flat_map(|_| half::bf16::from_f32(value).to_le_bytes())
                    .collect(),
                _ => b,
            };
            (n, d, s, b)
        })
        .collect();
    write_all(dst, &raw);
}

/// A copy of a model folder whose every float weight is `value`.
fn poisoned_model(src: &Path, dst: &Path, value: f32) {
    std::fs::create_dir_all(dst).expect("mkdir");
    for e in std::fs::read_dir(src).expect("model folder").flatten() {
        let p = e.path();
        let to = dst.join(e.file_name());
        if p.extension().is_some_and(|x| x == "safetensors") {
            rewrite(&p, &to, &[], &|_| true, value);
        } else if p.is_file() {
            std::fs::copy(&p, &to).expect("copy");
        }
    }
}

fn forward(cmd: &str, model: &Path, inputs: &Path, output: &Path) -> Output {
    xtask()
        .args(["forward", cmd, "--model"])
        .arg(model)
        .arg("--inputs")
        .arg(inputs)
        .arg("--output")
        .arg(output)
        .output()
        .expect("run xtask")
}

fn assert_nan_refused(o: &Output, tensor: &str, output: &Path) {
    assert_refused(o, &[&format!("output `{tensor}`"), "NaN", "not written"]);
    assert!(!output.exists(), "{} was written", output.display());
}

#[test]
fn forward_dit_with_a_nan_timestep_or_nan_weights_writes_nothing() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let model = testdata().join("tiny-qwen-image/transformer");
    let golden = testdata().join("dit/b1_nomask.safetensors");
    let keep = [
        "hidden_states",
        "encoder_hidden_states",
        "timestep",
        "img_shapes",
    ];
    let inputs = tmp.path().join("nan_t.safetensors");
    rewrite(&golden, &inputs, &keep, &|n| n == "timestep", f32::NAN);
    let out = tmp.path().join("out.safetensors");
    assert_nan_refused(&forward("dit", &model, &inputs, &out), "sample", &out);

    let clean = tmp.path().join("inputs.safetensors");
    rewrite(&golden, &clean, &keep, &|_| false, 0.0);
    let bad = tmp.path().join("nan-transformer");
    poisoned_model(&model, &bad, f32::NAN);
    assert_nan_refused(&forward("dit", &bad, &clean, &out), "sample", &out);
    let bad = tmp.path().join("inf-transformer");
    poisoned_model(&model, &bad, f32::INFINITY);
    assert_nan_refused(&forward("dit", &bad, &clean, &out), "sample", &out);
}

#[test]
fn forward_vae_with_nan_inputs_or_weights_writes_nothing() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let vae = testdata().join("tiny-qwen-image/vae");
    let out = tmp.path().join("out.safetensors");

    let latents = tmp.path().join("latents.safetensors");
    rewrite(
        &testdata().join("vae/decode_6x10.safetensors"),
        &latents,
        &["latents"],
        &|_| true,
        f32::NAN,
    );
    assert_nan_refused(&forward("vae-decode", &vae, &latents, &out), "sample", &out);

    let image = tmp.path().join("image.safetensors");
    rewrite(
        &testdata().join("vae-encoder/encode_rgb_40x56.safetensors"),
        &image,
        &["image"],
        &|_| false,
        0.0,
    );
    let bad = tmp.path().join("nan-vae");
    poisoned_model(&vae, &bad, f32::NAN);
    assert_nan_refused(&forward("vae-encode", &bad, &image, &out), "latents", &out);
}

#[test]
fn forward_text_encoder_and_vision_with_nan_weights_write_nothing() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let out = tmp.path().join("out.safetensors");

    let ids = tmp.path().join("ids.safetensors");
    rewrite(
        &testdata().join("text-encoder/hidden_states.safetensors"),
        &ids,
        &["input_ids", "attention_mask"],
        &|_| false,
        0.0,
    );
    let bad = tmp.path().join("nan-text-encoder");
    poisoned_model(
        &testdata().join("tiny-qwen-image/text_encoder"),
        &bad,
        f32::NAN,
    );
    assert_nan_refused(
        &forward("text-encoder", &bad, &ids, &out),
        "last_hidden_state",
        &out,
    );

    let pixels = tmp.path().join("pixels.safetensors");
    rewrite(
        &testdata().join("vision/processor.safetensors"),
        &pixels,
        &["pixel_values", "image_grid_thw"],
        &|n| n == "pixel_values",
        f32::NAN,
    );
    assert_nan_refused(
        &forward(
            "vision",
            &testdata().join("vision/text_encoder"),
            &pixels,
            &out,
        ),
        "image_embeds",
        &out,
    );
}
