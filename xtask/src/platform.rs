//! Which GPU family a run stands for, as upstream's `get_consistency_platform` decides it, and the
//! CUDA generator layout that goes with it.
//!
//! Upstream (`test_utils.py` in sgl-project/sglang): `SGLANG_DIFFUSION_CONSISTENCY_PLATFORM` with
//! its aliases (sm90/hopper → h100, sm100/blackwell → b200, sm120/rtx5090 → 5090) when set; else the
//! CUDA device: compute capability 12.x → 5090, 10.x → b200, anything else → h100. The platform
//! picks the GT subfolder, the threshold overlay and, here, the launch layout of torch's CUDA
//! generator (its large draws depend on the SM count). On the CPU there is no device to ask: the
//! platform is none unless given, and h100's files and layout apply (upstream's fallback).

use std::fmt;

use anyhow::Context;
use gt_resolver::{PLATFORM_ENV, Platform};
use torch_rng::CudaPlatform;

/// The platform of a run and how it was decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunPlatform {
    /// `None`: no platform given and no GPU to ask (a CPU run).
    pub platform: Option<Platform>,
    /// Where it came from, for reports (`SGLANG_DIFFUSION_CONSISTENCY_PLATFORM=sm90`,
    /// `--platform b200`, `CUDA device 0: compute capability 9.0`, `none: CPU run`).
    pub why: String,
}

impl RunPlatform {
    /// The platform whose GT folder and threshold overlay apply: the one decided, else h100
    /// (upstream's answer for any device it does not recognise).
    pub fn effective(&self) -> Platform {
        self.platform.unwrap_or_default()
    }

    /// The CUDA generator layout: the platform's preset (h100 = h200, b200, 5090); h100 when none.
    pub fn cuda_layout(&self) -> CudaPlatform {
        cuda_layout(self.effective())
    }

    /// Decides the platform: `given` (the `--platform` flag, or upstream's environment variable,
    /// which clap reads into it) first, then the CUDA device when generating on one, else none.
    pub fn decide(given: Option<&str>, device: &str) -> anyhow::Result<Self> {
        if let Some(value) = given.map(str::trim).filter(|v| !v.is_empty()) {
            let platform = Platform::parse(value)?;
            let from_env = std::env::var(PLATFORM_ENV).is_ok_and(|v| v.trim() == value);
            let why = if from_env {
                format!("{PLATFORM_ENV}={value}")
            } else {
                format!("--platform {value}")
            };
            return Ok(Self {
                platform: Some(platform),
                why,
            });
        }
        match device.trim().to_ascii_lowercase().as_str() {
            "cpu" => Ok(Self {
                platform: None,
                why: "none given and no CUDA device to ask (a CPU run): upstream's fallback h100 \
                      applies to the GT folder, thresholds and CUDA noise layout"
                    .into(),
            }),
            cuda if cuda == "cuda" || cuda.starts_with("cuda:") => {
                let index = cuda.strip_prefix("cuda:").unwrap_or("0");
                Ok(detect_cuda(index))
            }
            // Other GPU backends (wgpu) have no CUDA compute capability to ask.
            other => Ok(Self {
                platform: None,
                why: format!(
                    "none given and device {other} is not a CUDA device: upstream's fallback h100 \
                     applies"
                ),
            }),
        }
    }
}

impl fmt::Display for RunPlatform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.platform {
            Some(p) => write!(f, "{p} ({})", self.why),
            None => write!(f, "none ({})", self.why),
        }
    }
}

/// Upstream's mapping from a compute capability (`major.minor`, as `nvidia-smi` prints it):
/// 12.x (RTX 50) → 5090, 10.x (B200/GB200) → b200, anything else → h100.
pub fn platform_for_compute_capability(cap: &str) -> Option<Platform> {
    let major: u32 = cap.trim().split('.').next()?.trim().parse().ok()?;
    Some(match major {
        12 => Platform::Rtx5090,
        10 => Platform::B200,
        _ => Platform::H100,
    })
}

/// Asks `nvidia-smi` for the compute capability of CUDA device `index`.
fn detect_cuda(index: &str) -> RunPlatform {
    let asked = std::process::Command::new("nvidia-smi")
        .args([
            "--query-gpu=compute_cap,name",
            "--format=csv,noheader",
            "-i",
            index,
        ])
        .output()
        .context("running nvidia-smi")
        .and_then(|o| {
            anyhow::ensure!(
                o.status.success(),
                "nvidia-smi: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            );
            Ok(String::from_utf8_lossy(&o.stdout).trim().to_string())
        });
    let fallback = |why: String| RunPlatform {
        platform: Some(Platform::H100),
        why: format!("h100, upstream's fallback: {why}"),
    };
    match asked {
        Ok(line) => {
            let (cap, name) = line.split_once(',').unwrap_or((&line, ""));
            match platform_for_compute_capability(cap) {
                Some(p) => RunPlatform {
                    platform: Some(p),
                    why: format!(
                        "CUDA device {index} ({}): compute capability {}",
                        name.trim(),
                        cap.trim()
                    ),
                },
                None => fallback(format!("unreadable compute capability `{line}`")),
            }
        }
        Err(e) => fallback(format!("the CUDA device could not be asked ({e:#})")),
    }
}

/// The CUDA generator layout of a platform's reference GPU.
pub fn cuda_layout(p: Platform) -> CudaPlatform {
    match p {
        Platform::H100 => CudaPlatform::H100,
        Platform::B200 => CudaPlatform::B200,
        Platform::Rtx5090 => CudaPlatform::RTX_5090,
    }
}

/// `--platform` of `generate`: a torch-rng preset (h100, h200, b200, 5090) or one of upstream's
/// platform names and aliases (sm90, hopper, blackwell, sm120, …).
pub fn parse_cuda_layout(s: &str) -> Result<CudaPlatform, String> {
    s.parse::<CudaPlatform>()
        .ok()
        .or_else(|| Platform::parse(s).ok().map(cuda_layout))
        .ok_or_else(|| {
            format!(
                "unknown platform `{s}` (h100, h200, b200, 5090, or sm90, hopper, sm100, \
                 blackwell, sm120, rtx5090)"
            )
        })
}

/// Upstream's `CONSISTENCY_GT_CASE_ALIASES`: cases whose GT is published under another case's
/// name (`get_consistency_gt_case_id`).
pub const GT_CASE_ALIASES: &[(&str, &str)] = &[("fsdp-inference", "zimage_image_t2i_2_gpus")];

/// The case id GT is looked up under.
pub fn gt_case_id(id: &str) -> &str {
    GT_CASE_ALIASES
        .iter()
        .find(|(from, _)| *from == id)
        .map_or(id, |(_, to)| to)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compute_capabilities_map_as_upstream() {
        for (cap, want) in [
            ("9.0", Platform::H100),
            ("8.0", Platform::H100),
            ("10.0", Platform::B200),
            ("10.3", Platform::B200),
            ("12.0", Platform::Rtx5090),
        ] {
            assert_eq!(platform_for_compute_capability(cap), Some(want), "{cap}");
        }
        assert_eq!(platform_for_compute_capability("n/a"), None);
    }

    #[test]
    fn a_cpu_run_has_no_platform_unless_given() {
        let p = RunPlatform::decide(None, "cpu").unwrap();
        assert_eq!(p.platform, None);
        assert_eq!(p.effective(), Platform::H100);
        assert_eq!(p.cuda_layout(), CudaPlatform::H100);
        let p = RunPlatform::decide(Some("Blackwell"), "cpu").unwrap();
        assert_eq!(p.platform, Some(Platform::B200));
        assert_eq!(p.cuda_layout(), CudaPlatform::B200);
        assert!(RunPlatform::decide(Some("tpu"), "cpu").is_err());
    }

    #[test]
    fn generate_platforms_take_presets_and_aliases() {
        assert_eq!(parse_cuda_layout("h200"), Ok(CudaPlatform::H200));
        assert_eq!(parse_cuda_layout("sm120"), Ok(CudaPlatform::RTX_5090));
        assert_eq!(parse_cuda_layout("hopper"), Ok(CudaPlatform::H100));
        assert!(parse_cuda_layout("a100").is_err());
    }

    #[test]
    fn case_aliases_as_upstream() {
        assert_eq!(gt_case_id("fsdp-inference"), "zimage_image_t2i_2_gpus");
        assert_eq!(gt_case_id("qwen_image_t2i"), "qwen_image_t2i");
    }
}
