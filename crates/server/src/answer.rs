//! The answer to a generation: OpenAI's `ImageResponse` with SGLang's `id` (`{"id", "created",
//! "data": [{"b64_json" | "url", "revised_prompt"}]}`), plus what a client needs to reproduce
//! it (`seed`, per image too, and `generator`) and where the time went (`timings`).

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use serde_json::{Value, json};

use crate::error::ApiError;
use crate::params::{Plan, ResponseFormat};
use crate::store::UrlStore;
use crate::worker::Done;
use image_io::{encode_rgb, encode_rgba};

/// Encode the images and build the JSON (blocking: the encoders run here). URL answers keep
/// their images in `store`.
pub fn build(
    id: &str,
    plan: &Plan,
    done: &Done,
    store: &UrlStore,
    elapsed: Duration,
) -> Result<Value, ApiError> {
    let mut data = Vec::new();
    for (out, seed) in done.outputs.iter().zip(&plan.seeds) {
        let encoded: Vec<Vec<u8>> = if out.layers.is_empty() {
            vec![encode_rgb(&out.image, plan.format, plan.quality).map_err(ApiError::internal)?]
        } else {
            out.layers
                .iter()
                .map(|l| encode_rgba(l, plan.format, plan.quality))
                .collect::<Result<_, _>>()
                .map_err(ApiError::internal)?
        };
        let revised = out.caption.as_deref().unwrap_or(&plan.prompt);
        for bytes in encoded {
            let mut item = json!({"revised_prompt": revised, "seed": seed});
            match plan.response {
                ResponseFormat::B64Json => {
                    item["b64_json"] =
                        json!(base64::engine::general_purpose::STANDARD.encode(&bytes));
                }
                ResponseFormat::Url => {
                    let index = data.len();
                    store.put(id, index, plan.format.mime(), Arc::new(bytes));
                    item["url"] = json!(content_url(id, index));
                }
            }
            data.push(item);
        }
    }
    let (w, h) = done
        .outputs
        .first()
        .map_or((0, 0), |o| (o.image.width(), o.image.height()));
    let warnings: Vec<&String> = done.outputs.iter().flat_map(|o| &o.warnings).collect();
    let mut body = json!({
        "id": id,
        "created": unix_now(),
        "data": data,
        "seed": plan.seeds.first(),
        "generator": plan.generator,
        "size": format!("{w}x{h}"),
        "output_format": plan.format.ext(),
        "inference_time_s": done.run.as_secs_f64(),
        "timings": timings(done, elapsed),
    });
    if !warnings.is_empty() {
        body["warnings"] = json!(warnings);
    }
    if plan.response == ResponseFormat::Url {
        body["expires_in"] = json!(store.ttl().as_secs());
    }
    Ok(body)
}

/// Where image `index` of request `id` is served (`?index=` for all but the first).
pub fn content_url(id: &str, index: usize) -> String {
    match index {
        0 => format!("/v1/images/{id}/content"),
        i => format!("/v1/images/{id}/content?index={i}"),
    }
}

/// Seconds per stage, summed over the outputs.
fn timings(done: &Done, elapsed: Duration) -> Value {
    let sum = |f: fn(&pipeline::StageTimings) -> Duration| -> f64 {
        done.outputs
            .iter()
            .map(|o| f(&o.timings).as_secs_f64())
            .sum()
    };
    json!({
        "queue_wait_s": done.queue_wait.as_secs_f64(),
        "text_encoding_s": sum(|t| t.text_encoder),
        "image_encoding_s": sum(|t| t.image_encoder),
        "denoising_s": sum(|t| t.denoise),
        "decoding_s": sum(|t| t.decode),
        "generation_s": done.run.as_secs_f64(),
        "total_s": elapsed.as_secs_f64(),
    })
}

/// Unix time in seconds.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
