//! The metrics of one compared frame, and their JSON form (`{"ssim": x, "psnr": x,
//! "mean_abs_diff": x, "clip": x|null}`, an infinite PSNR written as the string `"inf"`).

use serde::{Deserialize, Serialize};

use crate::pixel::PixelMetrics;

/// All four metrics of one output/ground-truth image pair, as `cargo xtask metrics --json` prints
/// them. `clip` is `None` when the CLIP model was not run (see [`crate::Verdict`]: a missing CLIP
/// score is reported as unchecked, never as passed).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ImageMetrics {
    /// Mean SSIM (skimage semantics).
    pub ssim: f64,
    /// PSNR in dB; infinite for identical images (JSON: `"inf"`).
    #[serde(with = "psnr_json")]
    pub psnr: f64,
    /// Mean absolute difference on the 0–255 scale.
    pub mean_abs_diff: f64,
    /// Cosine similarity of the CLIP image embeddings, if computed.
    pub clip: Option<f64>,
}

impl ImageMetrics {
    /// Pixel metrics plus an optional CLIP similarity.
    pub fn new(pixel: PixelMetrics, clip: Option<f64>) -> Self {
        Self {
            ssim: pixel.ssim,
            psnr: pixel.psnr,
            mean_abs_diff: pixel.mean_abs_diff,
            clip,
        }
    }
}

/// The metrics of one named frame of a case (`"image"`, or `"frame_0"`, `"frame_mid"`,
/// `"frame_last"` for videos), as the consistency report lists them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FrameMetrics {
    /// Frame label.
    pub frame: String,
    /// Its metrics.
    #[serde(flatten)]
    pub metrics: ImageMetrics,
}

/// PSNR as a JSON number, or the string `"inf"` when infinite (JSON has no infinity).
mod psnr_json {
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        if v.is_infinite() && *v > 0.0 {
            s.serialize_str("inf")
        } else {
            s.serialize_f64(*v)
        }
    }

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum NumberOrInf {
        Number(f64),
        Text(String),
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        match NumberOrInf::deserialize(d)? {
            NumberOrInf::Number(v) => Ok(v),
            NumberOrInf::Text(t) if t == "inf" => Ok(f64::INFINITY),
            NumberOrInf::Text(t) => Err(D::Error::custom(format!(
                "psnr must be a number or \"inf\", got {t:?}"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_shape_matches_the_cli_contract() {
        let m = ImageMetrics {
            ssim: 1.0,
            psnr: f64::INFINITY,
            mean_abs_diff: 0.0,
            clip: None,
        };
        let text = serde_json::to_string(&m).unwrap();
        assert_eq!(
            text,
            r#"{"ssim":1.0,"psnr":"inf","mean_abs_diff":0.0,"clip":null}"#
        );
        assert_eq!(serde_json::from_str::<ImageMetrics>(&text).unwrap(), m);
    }

    #[test]
    fn frame_metrics_round_trip_with_finite_psnr() {
        let f = FrameMetrics {
            frame: "frame_0".into(),
            metrics: ImageMetrics {
                ssim: 0.9,
                psnr: 31.5,
                mean_abs_diff: 2.25,
                clip: Some(0.97),
            },
        };
        let text = serde_json::to_string(&f).unwrap();
        assert_eq!(
            text,
            r#"{"frame":"frame_0","ssim":0.9,"psnr":31.5,"mean_abs_diff":2.25,"clip":0.97}"#
        );
        assert_eq!(serde_json::from_str::<FrameMetrics>(&text).unwrap(), f);
    }
}
