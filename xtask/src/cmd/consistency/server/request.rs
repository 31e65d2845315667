//! A case as one request of SGLang's image API: text to image as a JSON `POST
//! /v1/images/generations`, Edit / Edit-Plus / Layered as a multipart `POST /v1/images/edits`
//! with the input files uploaded. Every field the case resolves to is sent (docs/formats.md,
//! "Judging a server"), or with `--sglang-request` only what SGLang's tests send.

use std::path::Path;

use cases::Case;
use pipeline::PipelineKind;
use serde_json::{Value, json};
use text_encoder::VisionPositions;
use torch_rng::CudaPlatform;

use super::client::Body;

/// One input file to upload.
#[derive(Debug, Clone)]
pub(crate) struct Upload {
    /// The file name sent (the source's own name).
    pub name: String,
    pub bytes: Vec<u8>,
}

/// A request to send.
#[derive(Debug, Clone)]
pub(crate) struct ApiRequest {
    /// `/v1/images/generations` or `/v1/images/edits`.
    pub path: &'static str,
    /// The fields in the order sent.
    pub fields: Vec<(&'static str, Value)>,
    /// Edits: the input images (`image` parts, in order).
    pub uploads: Vec<Upload>,
}

/// Which fields go out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fields {
    /// Every field the case resolves to.
    Resolved,
    /// Only what SGLang's tests send (prompt, n, size, output_format, extras).
    Sglang,
}

/// The pipeline kind a case asks for: text to image without input images; with them Layered
/// when the case's local folder declares `QwenImageLayeredPipeline` or a repo id names a
/// Layered model (SGLang's registry rule), else Edit.
pub(crate) fn kind_of(case: &Case) -> PipelineKind {
    if case.images.is_empty() {
        return PipelineKind::TextToImage;
    }
    let index = Path::new(&case.model).join("model_index.json");
    let declared = std::fs::read(&index)
        .ok()
        .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        .and_then(|v| {
            v["_class_name"]
                .as_str()
                .and_then(PipelineKind::from_class_name)
        });
    match declared {
        Some(k) => k,
        None if case.preset == Some(cases::SglangPreset::Layered)
            || cases::SglangPreset::from_model_path(&case.model)
                == Some(cases::SglangPreset::Layered) =>
        {
            PipelineKind::Layered
        }
        None => PipelineKind::Edit,
    }
}

/// Whether the case file gives `field` itself (it is not among the fields filled from the
/// suite's defaults).
fn given(case: &Case, field: &str) -> bool {
    !case
        .defaulted
        .iter()
        .any(|d| d.split(" = ").next() == Some(field))
}

/// `case` as a request for the model the server serves as `model`. The case must have no
/// `latents` file (checked by the caller: it cannot be sent).
pub(crate) fn build(case: &Case, model: &str, uploads: Vec<Upload>, which: Fields) -> ApiRequest {
    let kind = kind_of(case);
    let mut f: Vec<(&'static str, Value)> = vec![
        ("model", json!(model)),
        ("prompt", json!(case.prompt)),
        ("n", json!(1)),
        ("response_format", json!("b64_json")),
    ];
    let send_format = which == Fields::Resolved || given(case, "output_format");
    if send_format {
        f.push(("output_format", json!(api_format(&case.output_format))));
    }
    if kind != PipelineKind::Layered {
        size_fields(case, &mut f);
    }
    match which {
        Fields::Resolved => resolved_fields(case, kind, &mut f),
        Fields::Sglang => {
            if kind == PipelineKind::Layered {
                f.push(("num_frames", json!(case.layered.layers)));
            }
            extras(case, &mut f);
        }
    }
    ApiRequest {
        path: if kind == PipelineKind::TextToImage {
            "/v1/images/generations"
        } else {
            "/v1/images/edits"
        },
        fields: f,
        uploads,
    }
}

/// `jpg` is sent as `jpeg` (OpenAI's and SGLang's name).
fn api_format(f: &str) -> &str {
    if f == "jpg" { "jpeg" } else { f }
}

/// `size` = `WxH` when both sides are given; one side alone as `width` / `height`; none (an
/// Edit's size follows its input image) sends nothing.
fn size_fields(case: &Case, f: &mut Vec<(&'static str, Value)>) {
    match (case.width, case.height) {
        (Some(w), Some(h)) => f.push(("size", json!(format!("{w}x{h}")))),
        (w, h) => {
            if let Some(w) = w {
                f.push(("width", json!(w)));
            }
            if let Some(h) = h {
                f.push(("height", json!(h)));
            }
        }
    }
}

/// Steps, seed, generator, CFG and the kind's own options, as the case resolves them.
fn resolved_fields(case: &Case, kind: PipelineKind, f: &mut Vec<(&'static str, Value)>) {
    let request = case.request_on(CudaPlatform::H100);
    f.push(("num_inference_steps", json!(case.num_inference_steps)));
    f.push(("seed", json!(case.seed.unwrap_or(0))));
    f.push(("generator_device", json!(case.generator.as_str())));
    if let Some(n) = &case.negative_prompt {
        f.push(("negative_prompt", json!(n)));
    }
    // The scale the pipeline would use, or 1.0 (no true CFG) when CFG is off, so that a server
    // that fills a negative prompt by default does not turn CFG on.
    let scale = request
        .guidance()
        .ok()
        .and_then(|g| g.scale())
        .unwrap_or(1.0);
    f.push(("true_cfg_scale", json!(scale)));
    if let Some(g) = case.guidance_scale {
        f.push(("guidance_scale", json!(g)));
    }
    match kind {
        PipelineKind::Layered => {
            let l = case.layered;
            f.push(("num_frames", json!(l.layers)));
            f.push(("resolution", json!(l.resolution.pixels())));
            f.push(("cfg_normalize", json!(l.cfg_normalize)));
            f.push(("use_en_prompt", json!(l.use_en_prompt)));
        }
        PipelineKind::TextToImage => {}
        _ => {
            let p = match request.vision_positions {
                VisionPositions::Mrope => "mrope",
                VisionPositions::Sequential => "sequential",
            };
            f.push(("vision_positions", json!(p)));
        }
    }
}

/// `--sglang-request`'s `extras`: the sampling fields the case file gives itself (SGLang's tests
/// send a case's extras; everything else is left to the server's defaults).
fn extras(case: &Case, f: &mut Vec<(&'static str, Value)>) {
    if given(case, "num_inference_steps") {
        f.push(("num_inference_steps", json!(case.num_inference_steps)));
    }
    if let (true, Some(s)) = (given(case, "seed"), case.seed) {
        f.push(("seed", json!(s)));
    }
    if given(case, "generator") {
        f.push(("generator_device", json!(case.generator.as_str())));
    }
    if let (true, Some(n)) = (given(case, "negative_prompt"), &case.negative_prompt) {
        f.push(("negative_prompt", json!(n)));
    }
    if let Some(t) = case.true_cfg_scale {
        f.push(("true_cfg_scale", json!(t)));
    }
    if let (true, Some(g)) = (given(case, "guidance_scale"), case.guidance_scale) {
        f.push(("guidance_scale", json!(g)));
    }
}

impl ApiRequest {
    /// The fields as the report shows them (uploads by file name).
    pub fn summary(&self) -> Value {
        let mut o = serde_json::Map::new();
        o.insert("endpoint".into(), json!(self.path));
        for (k, v) in &self.fields {
            o.insert((*k).into(), v.clone());
        }
        if !self.uploads.is_empty() {
            let names: Vec<&str> = self.uploads.iter().map(|u| u.name.as_str()).collect();
            o.insert("image".into(), json!(names));
        }
        Value::Object(o)
    }

    /// The same request with `num_inference_steps` set to `steps` (the warm-up).
    pub fn with_steps(&self, steps: usize) -> Self {
        let mut r = self.clone();
        r.fields.retain(|(k, _)| *k != "num_inference_steps");
        r.fields.push(("num_inference_steps", json!(steps)));
        r
    }

    /// The body: JSON for generations, multipart form data for edits.
    pub fn body(&self) -> Body {
        if self.path.ends_with("generations") {
            let o: serde_json::Map<String, Value> = self
                .fields
                .iter()
                .map(|(k, v)| ((*k).to_string(), v.clone()))
                .collect();
            return Body {
                content_type: "application/json".into(),
                bytes: serde_json::to_vec(&o).unwrap_or_default(),
            };
        }
        multipart(&self.fields, &self.uploads)
    }
}

/// `multipart/form-data`: one text part per field, one `image` file part per upload.
fn multipart(fields: &[(&'static str, Value)], uploads: &[Upload]) -> Body {
    let boundary = boundary_for(uploads);
    let mut b = Vec::new();
    for (k, v) in fields {
        let text = match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        b.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n")
                .as_bytes(),
        );
        b.extend_from_slice(text.as_bytes());
        b.extend_from_slice(b"\r\n");
    }
    for u in uploads {
        let name = u.name.replace(['"', '\r', '\n'], "_");
        b.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"{name}\"\r\nContent-Type: {}\r\n\r\n",
                mime(&u.bytes)
            )
            .as_bytes(),
        );
        b.extend_from_slice(&u.bytes);
        b.extend_from_slice(b"\r\n");
    }
    b.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    Body {
        content_type: format!("multipart/form-data; boundary={boundary}"),
        bytes: b,
    }
}

/// A boundary that occurs in no upload.
fn boundary_for(uploads: &[Upload]) -> String {
    let mut n: u64 = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    loop {
        let b = format!("qwen-image-rs-{n:016x}");
        if !uploads
            .iter()
            .any(|u| u.bytes.windows(b.len()).any(|w| w == b.as_bytes()))
        {
            return b;
        }
        n = n.wrapping_mul(6364136223846793005).wrapping_add(1);
    }
}

/// The MIME type of image bytes, from their signature.
pub(crate) fn mime(bytes: &[u8]) -> &'static str {
    match image_ext(bytes) {
        Some("png") => "image/png",
        Some("jpg") => "image/jpeg",
        Some("webp") => "image/webp",
        _ => "application/octet-stream",
    }
}

/// `png`, `jpg` or `webp` from the bytes' signature.
pub(crate) fn image_ext(bytes: &[u8]) -> Option<&'static str> {
    image_io::format_of_bytes(bytes).map(image_io::OutputFormat::ext)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny(file: &str) -> Vec<Case> {
        cases::load(
            &Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../testdata/cases")
                .join(file),
        )
        .unwrap()
    }

    #[test]
    fn text_to_image_carries_every_resolved_field() {
        let c = tiny("tiny.toml")
            .into_iter()
            .find(|c| c.id == "tiny_t2i_seed")
            .unwrap();
        let r = build(&c, "tiny-qwen-image", vec![], Fields::Resolved);
        assert_eq!(r.path, "/v1/images/generations");
        let s = r.summary();
        assert_eq!(s["size"], "48x64");
        assert_eq!(s["seed"], 42);
        assert_eq!(s["true_cfg_scale"], 4.0);
        assert_eq!(s["negative_prompt"], " ");
        assert_eq!(s["num_inference_steps"], 6);
        assert_eq!(s["generator_device"], "cpu");
        assert_eq!(s["output_format"], "png");
        // The SGLang subset: only the fields the case file gives (the tiny file gives them all
        // but the generator).
        let g = build(&c, "m", vec![], Fields::Sglang).summary();
        assert!(g.get("generator_device").is_none(), "{g}");
        assert_eq!(g["seed"], 42);
    }

    #[test]
    fn cfg_off_is_sent_as_scale_one_and_layered_sends_its_options() {
        let c = tiny("tiny_edit.toml")
            .into_iter()
            .find(|c| c.id == "tiny_edit_nocfg")
            .unwrap();
        let up = Upload {
            name: "in.jpg".into(),
            bytes: vec![0xFF, 0xD8, 0xFF, 0],
        };
        let r = build(&c, "e", vec![up], Fields::Resolved);
        assert_eq!(r.path, "/v1/images/edits");
        let s = r.summary();
        assert_eq!(s["true_cfg_scale"], 1.0);
        assert_eq!(s["vision_positions"], "mrope");
        assert!(s.get("negative_prompt").is_none());
        let body = r.body();
        let text = String::from_utf8_lossy(&body.bytes);
        assert!(text.contains("name=\"image\"; filename=\"in.jpg\"\r\nContent-Type: image/jpeg"));
        assert!(
            text.contains("name=\"true_cfg_scale\"\r\n\r\n1.0\r\n"),
            "{text}"
        );
        let l = tiny("tiny_layered.toml")
            .into_iter()
            .find(|c| c.id == "tiny_layered_caption")
            .unwrap();
        let s = build(&l, "l", vec![], Fields::Resolved).summary();
        assert_eq!(
            (s["num_frames"].as_u64(), s["resolution"].as_u64()),
            (Some(1), Some(640))
        );
        assert_eq!(
            (s["cfg_normalize"].as_bool(), s["use_en_prompt"].as_bool()),
            (Some(true), Some(true))
        );
        assert!(s.get("size").is_none() && s.get("vision_positions").is_none());
    }
}
