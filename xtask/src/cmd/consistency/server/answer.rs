//! A server's answer as the case's output: the bytes kept as they came (`cases/<id>/output.<ext>`,
//! Layered's further layers as `layer_<k>.<ext>`) and judged as PIL decodes them
//! (`Image.open(...).convert("RGB")`: a JPEG through libjpeg-turbo, an RGBA layer without its
//! alpha), with the server's stage times.

use std::path::Path;

use anyhow::Context;
use cases::Case;
use image::RgbImage;
use serde_json::Value;

use super::client::{Answer, snippet};
use super::request::image_ext;
use crate::cmd::consistency::report::Timings;
use crate::cmd::consistency::target::{Misbehaved, Produced};
use crate::util::write_atomic;

/// `answer` for `case`, its files written under `out_dir`; `asked` is the `output_format` the
/// request sent (none: the server's default is taken as it comes); `layered`: every image is a
/// layer. An answer that is no image, or not the format asked, is the engine's failure
/// ([`Misbehaved`]).
pub(crate) fn produced(
    case: &Case,
    answer: &Answer,
    asked: Option<&str>,
    layered: bool,
    inputs_rel: Vec<String>,
    out_dir: &Path,
) -> anyhow::Result<Produced> {
    let first = answer.images.first().map(Vec::as_slice).unwrap_or_default();
    let ext = image_ext(first).ok_or_else(|| {
        Misbehaved(format!(
            "the answer's image is not PNG, JPEG or WebP: {}",
            snippet(first)
        ))
    })?;
    if let Some(asked) = asked
        && asked != ext
    {
        return Err(Misbehaved(format!("asked for {asked}, the server answered {ext}")).into());
    }
    let origin = format!("the answer to case {}", case.id);
    let image = decode(first, &origin).map_err(|e| Misbehaved(format!("{e:#}")))?;
    let output_rel = format!("cases/{}/output.{ext}", case.id);
    write_atomic(&out_dir.join(&output_rel), first)?;
    let mut layers_rel = Vec::new();
    if layered || answer.images.len() > 1 {
        for (k, bytes) in answer.images.iter().enumerate() {
            let rel = format!(
                "cases/{}/layer_{k}.{}",
                case.id,
                image_ext(bytes).unwrap_or("bin")
            );
            write_atomic(&out_dir.join(&rel), bytes)?;
            layers_rel.push(rel);
        }
    }
    let revised = answer.body["data"][0]["revised_prompt"].as_str();
    Ok(Produced {
        height: image.height() as usize,
        width: image.width() as usize,
        image,
        caption: revised
            .filter(|r| *r != case.prompt && case.prompt.trim().is_empty())
            .map(str::to_string),
        timings: timings(answer),
        output_rel,
        inputs_rel,
        layers_rel,
        raw_answer: true,
    })
}

/// Image bytes as PIL's `Image.open(...).convert("RGB")` gives them.
fn decode(bytes: &[u8], origin: &str) -> anyhow::Result<RgbImage> {
    let img = image_io::decode_from(bytes, origin)?.convert(image_io::Mode::Rgb)?;
    let (w, h) = img.size();
    RgbImage::from_raw(w, h, img.into_bytes()).context("decoded image of the wrong size")
}

/// The request's wall time, and the server's stage times where its `timings` has ours.
pub(crate) fn timings(answer: &Answer) -> Timings {
    let t = &answer.body["timings"];
    let s = |k: &str| t[k].as_f64().unwrap_or(0.0);
    Timings {
        request: answer.wall.as_secs_f64(),
        text_encoder: s("text_encoding_s"),
        image_encoder: s("image_encoding_s"),
        denoise: s("denoising_s"),
        decode: s("decoding_s"),
        ..Timings::default()
    }
}

/// The answer's `timings`, when it has any.
pub(crate) fn server_timings(answer: &Answer) -> Option<&Value> {
    Some(&answer.body["timings"]).filter(|t| t.is_object())
}
