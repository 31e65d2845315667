//! What a case's GT files are called: platform folders, extensions, candidate order.

use std::fmt;

use crate::error::Error;

/// Environment variable that picks the platform folder, as upstream.
pub const PLATFORM_ENV: &str = "SGLANG_DIFFUSION_CONSISTENCY_PLATFORM";

/// GPU family whose GT subfolder (`h100/`, `b200/`, `5090/`) is tried before the bare names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Platform {
    /// Hopper; also what upstream picks for any GPU it does not recognise.
    #[default]
    H100,
    /// Blackwell data-centre parts.
    B200,
    /// Consumer Blackwell (sm120).
    Rtx5090,
}

impl Platform {
    /// The folder name used in GT trees and threshold files.
    pub fn as_str(self) -> &'static str {
        match self {
            Platform::H100 => "h100",
            Platform::B200 => "b200",
            Platform::Rtx5090 => "5090",
        }
    }

    /// Parses a platform name with upstream's aliases (case-insensitive, `_` and `-` ignored):
    /// sm90/hopper/h100 → h100, sm100/blackwell/b200 → b200, sm120/rtx5090/5090 → 5090.
    pub fn parse(value: &str) -> Result<Self, Error> {
        let norm: String = value
            .trim()
            .to_ascii_lowercase()
            .chars()
            .filter(|c| *c != '_' && *c != '-')
            .collect();
        match norm.as_str() {
            "sm90" | "hopper" | "h100" => Ok(Platform::H100),
            "sm100" | "blackwell" | "b200" => Ok(Platform::B200),
            "sm120" | "rtx5090" | "5090" => Ok(Platform::Rtx5090),
            _ => Err(Error::UnknownPlatform {
                value: value.to_string(),
            }),
        }
    }

    /// [`PLATFORM_ENV`] if set and non-empty, else h100. Upstream falls back to GPU detection;
    /// this crate knows nothing about GPUs, so the caller passes the platform when it matters.
    pub fn from_env() -> Result<Self, Error> {
        match std::env::var(PLATFORM_ENV) {
            Ok(v) if !v.trim().is_empty() => Platform::parse(&v),
            _ => Ok(Platform::default()),
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Image or video GT.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum GtKind {
    /// One image; `format` is the case's `output_format` (png, jpg/jpeg, webp), if any.
    Image {
        /// Requested output format; decides which extension is tried first.
        format: Option<String>,
    },
    /// Three key frames (first, middle, last), always PNG.
    Video,
}

/// What to look up: one case on one platform.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GtQuery {
    /// Case id, `[A-Za-z0-9_.-]+`.
    pub case: String,
    /// Number of GPUs; part of the file name (`<case>_<n>gpu`).
    pub num_gpus: u32,
    /// Image or video.
    pub kind: GtKind,
    /// Platform folder tried first.
    pub platform: Platform,
}

impl GtQuery {
    /// An image query with the given output format.
    pub fn image(
        case: impl Into<String>,
        num_gpus: u32,
        format: Option<&str>,
        platform: Platform,
    ) -> Self {
        GtQuery {
            case: case.into(),
            num_gpus,
            kind: GtKind::Image {
                format: format.map(str::to_string),
            },
            platform,
        }
    }

    /// A video query (three key frames).
    pub fn video(case: impl Into<String>, num_gpus: u32, platform: Platform) -> Self {
        GtQuery {
            case: case.into(),
            num_gpus,
            kind: GtKind::Video,
            platform,
        }
    }

    /// Rejects case ids that could escape the GT folder or break a URL.
    pub fn validate(&self) -> Result<(), Error> {
        let ok = !self.case.is_empty()
            && self.case != "."
            && self.case != ".."
            && self
                .case
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
        if ok {
            Ok(())
        } else {
            Err(Error::InvalidCase {
                case: self.case.clone(),
            })
        }
    }

    /// The candidate sets, in lookup order: the platform folder first, then the bare names.
    pub fn candidate_sets(&self) -> Vec<CandidateSet> {
        let bare = self.bare_names();
        let prefixed = bare
            .iter()
            .map(|n| format!("{}/{n}", self.platform.as_str()))
            .collect();
        let all_required = matches!(self.kind, GtKind::Video);
        vec![
            CandidateSet {
                platform: Some(self.platform),
                names: prefixed,
                all_required,
            },
            CandidateSet {
                platform: None,
                names: bare,
                all_required,
            },
        ]
    }

    fn bare_names(&self) -> Vec<String> {
        let stem = format!("{}_{}gpu", self.case, self.num_gpus);
        match &self.kind {
            GtKind::Image { format } => image_extensions(format.as_deref())
                .iter()
                .map(|ext| format!("{stem}.{ext}"))
                .collect(),
            GtKind::Video => ["frame_0", "frame_mid", "frame_last"]
                .iter()
                .map(|f| format!("{stem}_{f}.png"))
                .collect(),
        }
    }

    /// The names GT is published under (no platform folder; the preferred extension only), as in
    /// upstream's "missing GT" instructions.
    pub fn publish_names(&self) -> Vec<String> {
        let bare = self.bare_names();
        match self.kind {
            GtKind::Image { .. } => bare.into_iter().take(1).collect(),
            GtKind::Video => bare,
        }
    }
}

/// One group of candidate names at one folder level.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CandidateSet {
    /// The platform folder the names live in, or `None` for bare names.
    pub platform: Option<Platform>,
    /// Relative names (`h100/x_1gpu.png` or `x_1gpu.png`), in preference order.
    pub names: Vec<String>,
    /// Video: every name must exist at the same base. Image: the first that exists wins.
    pub all_required: bool,
}

/// The file extension for an `output_format`, as upstream's `output_format_to_ext`: none → jpg,
/// jpeg → jpg, png/webp/jpg → themselves, anything else → png.
pub fn preferred_extension(format: Option<&str>) -> &'static str {
    match format.map(|f| f.trim().to_ascii_lowercase()).as_deref() {
        None | Some("") | Some("jpg") | Some("jpeg") => "jpg",
        Some("webp") => "webp",
        _ => "png",
    }
}

/// Extensions in lookup order: the preferred one, then the rest of png, jpg, webp.
pub fn image_extensions(format: Option<&str>) -> Vec<&'static str> {
    let first = preferred_extension(format);
    std::iter::once(first)
        .chain(["png", "jpg", "webp"].into_iter().filter(|e| *e != first))
        .collect()
}
