//! What a resolver allows itself: retries, the largest download, the time one download may take;
//! each from the builder, else from the environment, else upstream-sized defaults. A value in the
//! environment that cannot be used is ignored with a warning (never silently): a typo must not
//! turn retries off or lift a cap.

use std::time::Duration;

/// Environment variable setting how many attempts a probe or download makes (1 to 10; default
/// 5, as upstream). Lowering it shortens the wait for an unreachable GT host.
pub const ATTEMPTS_ENV: &str = "GT_RESOLVER_ATTEMPTS";

/// Environment variable capping one download, in bytes (default [`DEFAULT_MAX_BYTES`]).
pub const MAX_BYTES_ENV: &str = "GT_RESOLVER_MAX_BYTES";

/// Environment variable bounding one download, retries included, in seconds (a decimal number;
/// default [`DEFAULT_DOWNLOAD_DEADLINE`]).
pub const DEADLINE_ENV: &str = "GT_RESOLVER_DOWNLOAD_DEADLINE";

/// The largest file downloaded: 64 MiB. Upstream's GT files (JPEG and PNG images, the PNG key
/// frames of a video, a few WAV clips) are a few MiB each; 64 MiB still holds an uncompressed
/// 4096×4096 RGBA PNG, and no more than that is ever held back from a server that sends without
/// end.
pub const DEFAULT_MAX_BYTES: u64 = 64 * 1024 * 1024;

/// The time one download may take, retries and their sleeps included: 5 minutes (64 MiB at
/// 220 KiB/s). A server that sends a byte every few seconds never trips a per-read timeout;
/// this deadline ends it.
pub const DEFAULT_DOWNLOAD_DEADLINE: Duration = Duration::from_secs(300);

/// The bounds of every download of one resolver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DownloadLimits {
    /// Most bytes of one file.
    pub(crate) max_bytes: u64,
    /// Longest time for one file, every attempt and sleep included.
    pub(crate) deadline: Duration,
}

/// The number of attempts [`ATTEMPTS_ENV`] sets, if it is set and usable; `warnings` gets a
/// line when it is set but unusable.
pub(crate) fn attempts_from_env(warnings: &mut Vec<String>) -> Option<u32> {
    env_value(ATTEMPTS_ENV, "a whole number from 1 to 10", warnings, |v| {
        v.parse::<u32>().ok().filter(|n| (1..=10).contains(n))
    })
}

/// The download limits a builder left unset, from the environment, else the defaults;
/// `warnings` gets one line per variable that was set but could not be used.
pub(crate) fn download_limits(
    max_bytes: Option<u64>,
    deadline: Option<Duration>,
    warnings: &mut Vec<String>,
) -> DownloadLimits {
    let max_bytes = max_bytes
        .or_else(|| {
            env_value(
                MAX_BYTES_ENV,
                "a whole number of bytes, at least 1",
                warnings,
                |v| v.parse::<u64>().ok().filter(|n| *n > 0),
            )
        })
        .unwrap_or(DEFAULT_MAX_BYTES);
    let deadline = deadline
        .or_else(|| {
            env_value(
                DEADLINE_ENV,
                "a positive number of seconds",
                warnings,
                |v| {
                    v.parse::<f64>()
                        .ok()
                        .and_then(|s| Duration::try_from_secs_f64(s).ok())
                        .filter(|d| !d.is_zero())
                },
            )
        })
        .unwrap_or(DEFAULT_DOWNLOAD_DEADLINE);
    DownloadLimits {
        max_bytes,
        deadline,
    }
}

/// `name`'s value through `parse`; set but unusable, a warning naming what was expected.
fn env_value<T>(
    name: &str,
    expected: &str,
    warnings: &mut Vec<String>,
    parse: impl Fn(&str) -> Option<T>,
) -> Option<T> {
    let raw = std::env::var_os(name)?;
    let text = raw.to_string_lossy();
    let parsed = parse(text.trim());
    if parsed.is_none() {
        warnings.push(format!(
            "{name}={:?} is not {expected}: ignored, the default is used",
            text.as_ref()
        ));
    }
    parsed
}
