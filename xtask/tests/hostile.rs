//! The CLI as a hostile user drives it: every bad input gives a clear error naming what is wrong,
//! exit 2 ("could not run"), and never a panic (exit 101), a silent success or a lost report.
//! Sizes and step counts are refused before any weight is read (`--model /nonexistent` proves
//! it: the size is named, not the missing model).

use std::path::{Path, PathBuf};
use std::process::Output;

use safetensors::Dtype;
use safetensors::tensor::TensorView;

use crate::common::{report, root, stderr, testdata, xtask};

/// Exit 2, no panic, and the message contains every needle.
pub(crate) fn assert_refused(o: &Output, needles: &[&str]) {
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

// ---- consistency: a case that cannot run is an error of the run, listed in the report ----

/// A case file next to testdata/cases (so relative paths resolve) from `[[case]]` bodies.
fn write_cases(dir: &Path, body: &str) -> PathBuf {
    let p = dir.join("cases.toml");
    let body = body
        .replace(
            "@MODEL@",
            &testdata().join("tiny-qwen-image").to_string_lossy(),
        )
        .replace(
            "@LATENTS@",
            &testdata().join("e2e/latents").to_string_lossy(),
        );
    std::fs::write(&p, body).expect("write cases");
    p
}

const GOOD_CASE: &str = r#"
[[case]]
id = "tiny_t2i_cfg"
model = "@MODEL@"
prompt = "Doraemon is eating dorayaki"
negative_prompt = " "
true_cfg_scale = 4.0
height = 64
width = 64
num_inference_steps = 6
latents = "@LATENTS@/tiny_t2i_cfg.safetensors"
"#;

fn bad_case(id: &str, line: &str) -> String {
    format!(
        "\n[[case]]\nid = \"{id}\"\nmodel = \"@MODEL@\"\nprompt = \"x\"\nheight = 64\nwidth = 64\n\
         num_inference_steps = 2\n{line}\n"
    )
    .replacen(
        "height = 64\n",
        if line.starts_with("height") {
            ""
        } else {
            "height = 64\n"
        },
        1,
    )
}

fn consistency(cases: &Path, out: &Path, extra: &[&str]) -> Output {
    xtask()
        .args(["consistency", "--cases"])
        .arg(cases)
        .arg("--gt-root")
        .arg(testdata().join("gt"))
        .arg("--clip-model")
        .arg(testdata().join("metrics/tiny-clip"))
        .arg("--out")
        .arg(out)
        .args(extra)
        .output()
        .expect("run xtask")
}

fn case_of<'a>(r: &'a serde_json::Value, id: &str) -> &'a serde_json::Value {
    r["cases"]
        .as_array()
        .expect("cases")
        .iter()
        .find(|c| c["id"] == id)
        .unwrap_or_else(|| panic!("no case {id} in {r}"))
}

#[test]
fn a_case_that_cannot_run_is_listed_and_the_others_still_run() {
    let dir = tempfile::tempdir().expect("temp dir");
    let body = [
        GOOD_CASE.to_string(),
        bad_case("huge", "height = 1099511627776"),
        bad_case("zero", "height = 0"),
        bad_case("steps", "num_inference_steps = 1000000000").replace(
            "num_inference_steps = 2\nnum_inference_steps",
            "num_inference_steps",
        ),
        bad_case("nan_cfg", "negative_prompt = \" \"\ntrue_cfg_scale = nan"),
        // Latents of the 48×80 case for a 64×64 output: the wrong shape.
        bad_case(
            "wrong_latents",
            "latents = \"@LATENTS@/tiny_t2i_nonsquare.safetensors\"",
        ),
    ]
    .concat();
    let cases = write_cases(dir.path(), &body);
    let out = dir.path().join("out");
    let o = consistency(&cases, &out, &[]);
    let err = stderr(&o);
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(o.status.code(), Some(2), "{err}");
    let r = report(&out);
    assert_eq!(r["complete"], true);
    assert_eq!(
        (r["passed"].as_u64(), r["errors"].as_u64()),
        (Some(1), Some(5)),
        "{r}"
    );
    assert_eq!(case_of(&r, "tiny_t2i_cfg")["passed"], true);
    for (id, says) in [
        ("huge", "height 1099511627776"),
        ("zero", "height 0"),
        ("steps", "num_inference_steps 1000000000"),
        ("nan_cfg", "true_cfg_scale is NaN"),
        ("wrong_latents", "tiny_t2i_nonsquare.safetensors"),
    ] {
        let c = case_of(&r, id);
        assert_eq!(c["passed"], false);
        let error = c["error"]
            .as_str()
            .unwrap_or_else(|| panic!("{id}: no error in {c}"));
        assert!(error.contains(says), "{id}: {error}");
        assert!(err.contains(&format!("[{id}] ERROR")), "{err}");
    }
    let html = std::fs::read_to_string(out.join("index.html")).expect("html");
    assert!(html.contains("could not run: case `huge`"), "html");
}

#[test]
fn impossible_thresholds_exit_2_and_misspelt_keys_warn() {
    let dir = tempfile::tempdir().expect("temp dir");
    // Values: caught before any case runs.
    let cases = write_cases(dir.path(), GOOD_CASE);
    for (json, key) in [
        (
            r#"{"default_ssim_threshold_image": 1.5}"#,
            "default_ssim_threshold_image",
        ),
        (
            r#"{"cases": {"tiny_t2i_cfg": {"mean_abs_diff_threshold": -1}}}"#,
            "mean_abs_diff_threshold",
        ),
        (
            r#"{"default_psnr_threshold_image": -3}"#,
            "default_psnr_threshold_image",
        ),
    ] {
        let t = dir.path().join("t.json");
        std::fs::write(&t, json).expect("write");
        let out = dir.path().join("out");
        let o = consistency(&cases, &out, &["--thresholds", t.to_str().expect("utf-8")]);
        assert_refused(&o, &["t.json", key]);
        assert!(!out.join("report.json").exists(), "nothing ran: no report");
    }
    // A misspelt key is a warning, and its default threshold stays in force.
    let t = dir.path().join("typo.json");
    std::fs::write(&t, r#"{"cases": {"tiny_t2i_cfg": {"psnr_treshold": 99}}}"#).expect("write");
    let out = dir.path().join("typo-out");
    let o = consistency(&cases, &out, &["--thresholds", t.to_str().expect("utf-8")]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(
        err.contains("unknown key `cases.tiny_t2i_cfg.psnr_treshold`")
            && err.contains("did you mean `cases.tiny_t2i_cfg.psnr_threshold`"),
        "{err}"
    );
}

#[test]
fn a_missing_clip_model_is_in_the_verdict() {
    let dir = tempfile::tempdir().expect("temp dir");
    let cases = write_cases(dir.path(), GOOD_CASE);
    let out = dir.path().join("out");
    let o = xtask()
        .args(["consistency", "--cases"])
        .arg(&cases)
        .arg("--gt-root")
        .arg(testdata().join("gt"))
        .args(["--clip-model", "/nonexistent/clip-folder", "--out"])
        .arg(&out)
        .output()
        .expect("run xtask");
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    let c = case_of(&report(&out), "tiny_t2i_cfg").clone();
    assert_eq!(c["passed"], false);
    let failures = c["failures"].to_string();
    assert!(
        failures.contains("/nonexistent/clip-folder") && failures.contains("not a pass"),
        "{failures}"
    );
}

#[test]
fn a_killed_rerun_leaves_a_true_partial_report() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("out");
    std::fs::create_dir_all(&out).expect("mkdir");
    // A previous run's report, which must not stand next to this run's images.
    let stale = r#"{"passed": 4, "failed": 0, "cases": []}"#;
    std::fs::write(out.join("report.json"), stale).expect("write");
    std::fs::write(out.join("index.html"), "<h1>4 passed</h1>").expect("write");
    // The good case first, then slow ones (many steps) to be killed in.
    let mut body = GOOD_CASE.to_string();
    for i in 0..3 {
        body.push_str(
            &bad_case(&format!("slow_{i}"), "seed = 1")
                .replace("num_inference_steps = 2", "num_inference_steps = 400"),
        );
    }
    let cases = write_cases(dir.path(), &body);
    let mut child = xtask()
        .args(["consistency", "--cases"])
        .arg(&cases)
        .arg("--gt-root")
        .arg(testdata().join("gt"))
        .args(["--no-clip", "--out"])
        .arg(&out)
        .stderr(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("spawn xtask");
    let started = std::time::Instant::now();
    let first_output = out.join("cases/tiny_t2i_cfg/output.png");
    let mut seen_partial = false;
    while started.elapsed() < std::time::Duration::from_secs(120) {
        // Once this run has written an image, the stale report must be gone.
        if first_output.exists() {
            let text = std::fs::read_to_string(out.join("report.json")).expect("report");
            assert_ne!(
                text, stale,
                "the previous run's report outlived this run's images"
            );
        }
        if let Ok(text) = std::fs::read_to_string(out.join("report.json"))
            && let Ok(r) = serde_json::from_str::<serde_json::Value>(&text)
            && r["cases"].as_array().is_some_and(|c| c.len() == 1)
        {
            seen_partial = true;
            break;
        }
        if child.try_wait().expect("wait").is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    child.kill().expect("kill -9");
    child.wait().expect("reap");
    assert!(seen_partial, "never saw the report after the first case");
    let r = report(&out);
    assert_eq!(r["complete"], false, "{r}");
    assert_eq!(case_of(&r, "tiny_t2i_cfg")["passed"], true, "{r}");
    let html = std::fs::read_to_string(out.join("index.html")).expect("html");
    assert!(html.contains("partial report"), "html not marked partial");
}
