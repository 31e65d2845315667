//! What a request body holds: a JSON body read under the byte limit, the edits form (text
//! fields, `image`/`image[]` files) and the input images themselves — uploaded, fetched by URL
//! ([`crate::fetch`]) or inline `data:image/…;base64,` — checked for size and decoded as
//! diffusers' `load_image` reads them. The server never opens a path a client names.

use std::io::Cursor;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{FromRequest, Multipart, Request};
use axum::http::HeaderMap;
use axum::http::header::CONTENT_TYPE;
use base64::Engine as _;
use pipeline::InputImage;

use crate::error::ApiError;
use crate::fetch::Fetcher;
use crate::fields::Fields;

/// One input image's bytes and how messages name it (`image[0] (cat.png)`, a URL).
#[derive(Debug, Clone)]
pub struct Source {
    pub label: String,
    /// The request field it came from (`image` or `url`), for errors.
    pub param: &'static str,
    pub bytes: Arc<[u8]>,
}

/// The edits form: its text fields and its image files, in order.
#[derive(Debug, Default)]
pub struct Form {
    pub fields: Fields,
    pub images: Vec<Source>,
    /// File fields that are not input images (`mask`, unknown names).
    pub ignored: Vec<String>,
}

/// The content type without its parameters, lower-cased.
fn content_type(headers: &HeaderMap) -> String {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// A JSON body (`application/json`, else 415) of at most `limit` bytes (else 413), as fields.
pub async fn read_json(headers: &HeaderMap, body: Body, limit: usize) -> Result<Fields, ApiError> {
    let ct = content_type(headers);
    if ct != "application/json" && !ct.ends_with("+json") {
        return Err(ApiError::content_type(&ct, "application/json"));
    }
    let bytes = axum::body::to_bytes(body, limit).await.map_err(|e| {
        if is_length_limit(&e) {
            ApiError::too_large(limit)
        } else {
            ApiError::malformed(format!("could not read the body: {e}"))
        }
    })?;
    Fields::from_json(&bytes)
}

fn is_length_limit(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if err.to_string().contains("length limit exceeded") {
            return true;
        }
        cur = err.source();
    }
    false
}

/// The edits form (`multipart/form-data`, else 415) of at most `limit` bytes (else 413): text
/// fields, and the files of `image` / `image[]` in order.
pub async fn read_form(req: Request, limit: usize) -> Result<Form, ApiError> {
    let ct = content_type(req.headers());
    if ct != "multipart/form-data" {
        return Err(ApiError::content_type(&ct, "multipart/form-data"));
    }
    let mut multipart = Multipart::from_request(req, &())
        .await
        .map_err(|e| ApiError::malformed(format!("bad multipart body: {}", e.body_text())))?;
    let fail = |e: axum::extract::multipart::MultipartError| {
        if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::too_large(limit)
        } else {
            ApiError::malformed(format!("bad multipart body: {}", e.body_text()))
        }
    };
    let mut form = Form::default();
    while let Some(field) = multipart.next_field().await.map_err(fail)? {
        let name = field.name().unwrap_or("").to_string();
        let file = field.file_name().map(str::to_string);
        match (name.as_str(), file) {
            ("image" | "image[]", file) => {
                let bytes = field.bytes().await.map_err(fail)?;
                let label = match file {
                    Some(f) => format!("image[{}] ({f})", form.images.len()),
                    None => format!("image[{}]", form.images.len()),
                };
                form.images.push(Source {
                    label,
                    param: "image",
                    bytes: Arc::from(bytes.as_ref()),
                });
            }
            (_, Some(_)) => {
                field.bytes().await.map_err(fail)?;
                form.ignored.push(name);
            }
            (_, None) => {
                let text = field.text().await.map_err(fail)?;
                form.fields.push_text(&name, text);
            }
        }
    }
    Ok(form)
}

/// The images of `url` / `url[]` (blocking: call it off the async threads): http(s) through
/// `fetcher`, or inline `data:image/…;base64,…`. Anything else, and any fetch failure, is a 400
/// naming the URL.
pub fn fetch_urls(fetcher: &Fetcher, urls: &[String]) -> Result<Vec<Source>, ApiError> {
    urls.iter()
        .enumerate()
        .map(|(i, url)| {
            let shown = shorten(url);
            let fail = |why: String| ApiError::field("url", format!("url[{i}] {shown}: {why}"));
            let bytes: Arc<[u8]> = match url.strip_prefix("data:") {
                Some(data) => Arc::from(decode_data_url(data).map_err(fail)?),
                None => Arc::from(fetcher.fetch(url).map_err(fail)?.as_slice()),
            };
            Ok(Source {
                label: shown,
                param: "url",
                bytes,
            })
        })
        .collect()
}

/// A URL as messages show it (a data URL is not repeated whole).
fn shorten(url: &str) -> String {
    if url.starts_with("data:") || url.len() > 200 {
        let cut: String = url.chars().take(40).collect();
        format!("{cut}…")
    } else {
        url.to_string()
    }
}

/// `image/png;base64,AAAA…` → bytes.
fn decode_data_url(data: &str) -> Result<Vec<u8>, String> {
    let (meta, payload) = data
        .split_once(',')
        .ok_or("a data URL needs a comma before its payload")?;
    if !meta.starts_with("image/") || !meta.ends_with(";base64") {
        return Err("only data:image/…;base64, URLs are read".into());
    }
    base64::engine::general_purpose::STANDARD
        .decode(payload.trim())
        .map_err(|e| format!("bad base64: {e}"))
}

/// Decode the input images (blocking), each at most `max_pixels` pixels: 422 naming the image
/// when one cannot be decoded or is too large.
pub fn decode_images(sources: &[Source], max_pixels: u64) -> Result<Vec<InputImage>, ApiError> {
    sources
        .iter()
        .map(|s| {
            let fail = |why: String| ApiError::image(s.param, format!("{}: {why}", s.label));
            let (w, h) = image::ImageReader::new(Cursor::new(&s.bytes[..]))
                .with_guessed_format()
                .map_err(|e| fail(e.to_string()))?
                .into_dimensions()
                .map_err(|e| fail(format!("not a PNG, JPEG or WebP image ({e})")))?;
            if u64::from(w) * u64::from(h) > max_pixels {
                return Err(fail(format!(
                    "{w}×{h} is more than the {max_pixels} pixels an input may have"
                )));
            }
            InputImage::decode(&s.bytes, s.label.clone()).map_err(|e| fail(e.to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_urls_and_bad_images() {
        let mut png = Vec::new();
        image::RgbImage::new(2, 2)
            .write_to(&mut Cursor::new(&mut png), image::ImageFormat::Png)
            .unwrap();
        let b64 = base64::engine::general_purpose::STANDARD.encode(&png);
        let f = Fetcher::new(false, 1 << 20);
        let got = fetch_urls(&f, &[format!("data:image/png;base64,{b64}")]).unwrap();
        assert_eq!(&got[0].bytes[..], &png[..]);
        let e = fetch_urls(&f, &["data:text/plain;base64,AA==".into()]).unwrap_err();
        assert_eq!(e.param.as_deref(), Some("url"));
        let text = Source {
            label: "image[0] (notes.txt)".into(),
            param: "image",
            bytes: Arc::from(&b"hello"[..]),
        };
        let e = decode_images(&[text], 1 << 20).unwrap_err();
        assert_eq!(e.status.as_u16(), 422);
        assert!(e.message.contains("notes.txt"), "{}", e.message);
        let big = Source {
            label: "x".into(),
            param: "image",
            bytes: got[0].bytes.clone(),
        };
        assert!(
            decode_images(&[big], 3)
                .unwrap_err()
                .message
                .contains("2×2")
        );
    }
}
