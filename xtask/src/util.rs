//! Helpers more than one command uses. Commands import from here, never from each other.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context;
use burn::tensor::backend::Backend;
use indicatif::{ProgressBar, ProgressStyle};
use pipeline::{Event, InputImage, Output, Pipeline, Request};

/// The repository root (xtask's parent).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Write `path` through a uniquely named temp file in the same folder, renamed into place once
/// `fill` has written all of it: a reader never sees half a file, a failure (or a crash) leaves
/// no temp file behind, and two writers of one path cannot mix their bytes. The folder must
/// exist ([`create_parent`]).
pub fn write_with(
    path: &Path,
    fill: impl FnOnce(&mut std::io::BufWriter<&mut std::fs::File>) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    write_via_temp(path, |tmp| {
        let mut w = std::io::BufWriter::new(tmp.as_file_mut());
        fill(&mut w)?;
        use std::io::Write;
        w.flush()?;
        Ok(())
    })
}

/// The temp-then-rename of [`write_with`], for writers that want the temp file itself (a path
/// to write to, as safetensors' `serialize_to_file` does).
fn write_via_temp(
    path: &Path,
    fill: impl FnOnce(&mut tempfile::NamedTempFile) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    check_output_path(path)?;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let prefix = format!(".{name}.");
    let mut builder = tempfile::Builder::new();
    builder.prefix(&prefix).suffix(".tmp");
    // The mode a plain `fs::write` gives (0666 less the umask), not a temp file's private 0600.
    #[cfg(unix)]
    builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666));
    let mut tmp = builder
        .tempfile_in(dir)
        .with_context(|| format!("creating a temp file in {}", dir.display()))?;
    fill(&mut tmp).with_context(|| format!("writing {}", path.display()))?;
    tmp.persist(path)
        .map_err(|e| e.error)
        .with_context(|| format!("renaming into {}", path.display()))?;
    Ok(())
}

/// An output path must be new or a regular file: the rename into place would replace a device
/// node, a FIFO or a socket with a regular file (and a folder cannot be replaced). A symlink is
/// judged by what it points to, and the rename replaces the link itself.
pub fn check_output_path(path: &Path) -> anyhow::Result<()> {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => anyhow::bail!("cannot write {}: {e}", path.display()),
    };
    if meta.is_file() {
        return Ok(());
    }
    let what = if meta.is_dir() {
        "a folder"
    } else {
        "not a regular file (a FIFO, socket or device)"
    };
    anyhow::bail!(
        "{} is {what}: only a new path or a regular file is written",
        path.display()
    )
}

/// Create `path`'s folder (and its parents) if it is missing.
pub fn create_parent(path: &Path) -> anyhow::Result<()> {
    match path.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(dir) => {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))
        }
        None => Ok(()),
    }
}

/// The bytes of a regular file of at most `max` bytes. Anything else is refused by name, before a
/// byte is read: a folder, a FIFO (which would block), a device such as `/dev/zero` (endless), a
/// missing file, a file over `max`.
pub fn read_regular_file(path: &Path, max: u64) -> anyhow::Result<Vec<u8>> {
    // Refused by name here; read (and checked again while read) by the workspace's one reader.
    regular_file_len(path, max)?;
    config_file::read_regular(path, max)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))
}

/// [`read_regular_file`] as text (UTF-8).
pub fn read_regular_text(path: &Path, max: u64) -> anyhow::Result<String> {
    String::from_utf8(read_regular_file(path, max)?)
        .map_err(|_| anyhow::anyhow!("{} is not UTF-8 text", path.display()))
}

/// The length of `path` when it is a regular file of at most `max` bytes, refused as
/// [`read_regular_file`] refuses it: for a reader that opens the file itself.
pub fn regular_file_len(path: &Path, max: u64) -> anyhow::Result<u64> {
    let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => anyhow::anyhow!("{} does not exist", path.display()),
        _ => anyhow::anyhow!("cannot read {}: {e}", path.display()),
    })?;
    if !meta.is_file() {
        let what = if meta.is_dir() {
            "a folder"
        } else {
            "not a regular file (a FIFO, socket or device)"
        };
        anyhow::bail!("{} is {what}: only regular files are read", path.display());
    }
    if meta.len() > max {
        anyhow::bail!(
            "{} is {} bytes, over the {max}-byte limit",
            path.display(),
            meta.len()
        );
    }
    Ok(meta.len())
}

/// Write a file through a temp name and a rename ([`write_with`]), creating its folder.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    create_parent(path)?;
    write_with(path, |w| {
        use std::io::Write;
        Ok(w.write_all(bytes)?)
    })
}

/// Write safetensors through a temp name and a rename ([`write_with`]); the folder must exist.
pub fn write_safetensors<'a, V: safetensors::View + 'a>(
    path: &Path,
    tensors: impl IntoIterator<Item = (&'a str, V)>,
    metadata: Option<std::collections::HashMap<String, String>>,
) -> anyhow::Result<()> {
    // Straight into the temp file: no second copy of the tensors in memory.
    write_via_temp(path, |tmp| {
        safetensors::serialize_to_file(tensors, metadata, tmp.path()).map_err(|e| match e {
            // Its message repeats the I/O error it returns as `source()` (a full disk said twice).
            safetensors::SafeTensorError::IoError(io) => anyhow::Error::new(io),
            other => anyhow::anyhow!("{other}"),
        })
    })
}

/// `text` with control characters other than newlines and tabs escaped (`\u{0}`): a NUL or an
/// escape sequence read from a user's file is never echoed raw to the terminal.
pub fn printable(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '\n' | '\t' => c.to_string(),
            c if c.is_control() => c.escape_default().to_string(),
            c => c.to_string(),
        })
        .collect()
}

/// Save an image by extension (png, jpg/jpeg, webp), through a temp file renamed into place,
/// encoded as `cargo xtask serve` encodes its answers (`image_io::encode_rgb`: JPEG as PIL's
/// `save(quality=75)` writes it, as upstream saves official JPEG GT and SGLang its jpg output), so
/// that a file and an API answer with the same parameters are the same bytes.
pub fn save_image(img: &image::RgbImage, path: &Path) -> anyhow::Result<()> {
    let format = image_io::format_of_path(path).with_context(|| {
        format!(
            "{}: unknown image extension (use .png, .jpg or .webp)",
            path.display()
        )
    })?;
    let bytes = image_io::encode_rgb(img, format, image_io::DEFAULT_JPEG_QUALITY)
        .map_err(|e| anyhow::anyhow!("encoding {}: {e}", path.display()))?;
    write_atomic(path, &bytes)
}

/// Save an RGBA image (a Layered layer) as PNG, through a temp file renamed into place (the
/// encoder of `cargo xtask serve`'s Layered answers).
pub fn save_rgba_png(img: &image::RgbaImage, path: &Path) -> anyhow::Result<()> {
    let bytes = image_io::encode_rgba(
        img,
        image_io::OutputFormat::Png,
        image_io::DEFAULT_JPEG_QUALITY,
    )
    .map_err(|e| anyhow::anyhow!("encoding {}: {e}", path.display()))?;
    write_atomic(path, &bytes)
}

/// Ctrl-C sets `flag` (a pipeline's cancel flag): the loop stops after the current step and
/// nothing is written. A second Ctrl-C exits at once. Install once per process.
pub fn install_ctrlc(flag: Arc<AtomicBool>) {
    let _ = ctrlc::set_handler(move || {
        if flag.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
        eprintln!("\ninterrupted: stopping after the current step (Ctrl-C again to quit now)");
    });
}

/// Run a request with a progress bar over the denoising steps.
pub fn generate_with_progress<B: Backend>(
    pipe: &Pipeline<B>,
    req: &Request,
    label: &str,
) -> anyhow::Result<Output<B>> {
    let bar = ProgressBar::hidden();
    bar.set_style(
        ProgressStyle::with_template("{prefix:>20} [{bar:30}] {pos}/{len} steps {elapsed} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_prefix(label.to_string());
    let out = pipe.generate(req, &mut |e| match e {
        Event::Warning(w) => bar.println(format!("warning: {w}")),
        Event::Start { steps } => {
            bar.set_length(steps as u64);
            bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
        }
        Event::Step { index, .. } => bar.set_position(index as u64 + 1),
        Event::Decode => bar.set_message("decoding"),
    });
    bar.finish_and_clear();
    Ok(out?)
}

/// The largest image file read (an input image, a GT file): metrics' 256 MiB.
pub const MAX_IMAGE_BYTES: u64 = metrics::MAX_IMAGE_BYTES;

/// The largest text or JSON input read (a prompts file, `tokenize --file`, a key file): 16 MiB.
pub const MAX_TEXT_BYTES: u64 = 16 * 1024 * 1024;

/// The image kind a file name promises (`png`, `jpg`/`jpeg`, `webp`), from its extension.
fn image_kind_of(name: &str) -> Option<&'static str> {
    let name = name.split(['?', '#']).next().unwrap_or(name);
    let ext = name.rsplit_once('.')?.1.to_ascii_lowercase();
    match ext.as_str() {
        "png" => Some("png"),
        "jpg" | "jpeg" => Some("jpg"),
        "webp" => Some("webp"),
        _ => None,
    }
}

/// The check gt-resolver runs on a downloaded image before it enters the cache, and on every
/// cached copy it serves: the file decodes as PIL would open it, and, when `expect` names a
/// kind, it is that kind (an HTML error page or a PNG cut short is refused).
fn check_image_file(path: &Path, expect: Option<&str>) -> Result<(), String> {
    let bytes = read_regular_file(path, MAX_IMAGE_BYTES).map_err(|e| format!("{e:#}"))?;
    let found = image_io::format_of_bytes(&bytes).map(image_io::OutputFormat::ext);
    match (expect, found) {
        (_, None) => return Err(format!("not an image ({})", what_bytes_are(&bytes))),
        (Some(want), Some(got)) if want != got => {
            return Err(format!("a {got} image where a {want} one was expected"));
        }
        _ => {}
    }
    image_io::decode(&bytes).map(|_| ()).map_err(|e| match e {
        image_io::Error::Decode { error, .. } => format!("does not decode: {error}"),
        image_io::Error::Jpeg { error, .. } => format!("does not decode: {error}"),
        other => other.to_string(),
    })
}

/// A few words on what a body that is not an image looks like (an HTML page, empty, text).
fn what_bytes_are(bytes: &[u8]) -> String {
    let head = String::from_utf8_lossy(&bytes[..bytes.len().min(64)]).to_ascii_lowercase();
    if bytes.is_empty() {
        "empty".into()
    } else if head.trim_start().starts_with("<!doctype html") || head.contains("<html") {
        "an HTML page".into()
    } else {
        format!("{} bytes of something else", bytes.len())
    }
}

/// gt-resolver's check of a GT download: an image name (png, jpg, webp) must decode as that
/// kind; `case_map.json` must be JSON; anything else (a WAV clip) is taken as it is.
pub fn check_gt_download(url: &str, path: &Path) -> Result<(), String> {
    if let Some(kind) = image_kind_of(url) {
        return check_image_file(path, Some(kind));
    }
    if url.ends_with(".json") {
        let bytes = read_regular_file(path, MAX_IMAGE_BYTES).map_err(|e| format!("{e:#}"))?;
        return serde_json::from_slice::<serde_json::Value>(&bytes)
            .map(|_| ())
            .map_err(|e| format!("not JSON ({}): {e}", what_bytes_are(&bytes)));
    }
    Ok(())
}

/// gt-resolver's check of an input image download: it decodes as an image (any kind PIL opens
/// by content, whatever the URL's extension says).
pub fn check_input_download(_url: &str, path: &Path) -> Result<(), String> {
    check_image_file(path, None)
}

/// A resolver's ignored environment settings (`GT_RESOLVER_ATTEMPTS=abc`), as warnings.
pub fn warn_resolver_settings(resolver: &gt_resolver::Resolver) {
    for w in resolver.warnings() {
        eprintln!("warning: {}", printable(w));
    }
}

/// Fetches the http(s) URLs of input images through gt-resolver's verified cache (the GT files'
/// cache, `GT_RESOLVER_CACHE_DIR`; served from it alone when offline), built on first use.
pub struct ImageFetcher {
    offline: bool,
    resolver: Option<gt_resolver::Resolver>,
}

impl ImageFetcher {
    pub fn new(offline: bool) -> Self {
        Self {
            offline,
            resolver: None,
        }
    }

    /// The local copy of `url`.
    pub fn fetch(&mut self, url: &str) -> anyhow::Result<PathBuf> {
        if self.resolver.is_none() {
            let resolver = gt_resolver::Resolver::builder()
                .offline(self.offline)
                .progress(true)
                .verify(check_input_download)
                .build_for_downloads()?;
            warn_resolver_settings(&resolver);
            self.resolver = Some(resolver);
        }
        match &self.resolver {
            Some(r) => Ok(r.fetch_url(url)?),
            None => anyhow::bail!("no downloader for {url}"),
        }
    }
}

/// Input images of an edit, each a file or an http(s) URL (see [`ImageFetcher`]), read as
/// diffusers' `load_image` reads them. Errors name the file or URL.
pub fn load_input_images(sources: &[String], offline: bool) -> anyhow::Result<Vec<InputImage>> {
    let mut fetcher = ImageFetcher::new(offline);
    sources
        .iter()
        .map(|src| {
            // A regular file under the cap: never a FIFO that blocks or a device without end.
            let bytes = if gt_resolver::is_http_url(src) {
                let path = fetcher.fetch(src)?;
                read_regular_file(&path, MAX_IMAGE_BYTES)
                    .with_context(|| format!("input image {src}"))?
            } else {
                read_regular_file(Path::new(src), MAX_IMAGE_BYTES)?
            };
            Ok(InputImage::decode(&bytes, src.as_str())?)
        })
        .collect()
}

/// The most timed or warm-up runs a command may ask for (`bench dit-step --steps/--warmup`,
/// `forward --repeat/--warmup`): a thousand runs give a stable median; 2^40 never end.
pub const MAX_RUNS: usize = 1000;

/// A run count between `min` and [`MAX_RUNS`], named as its flag in the error.
pub fn check_run_count(flag: &str, n: usize, min: usize) -> anyhow::Result<()> {
    if n < min {
        anyhow::bail!("{flag} must be at least {min}");
    }
    if n > MAX_RUNS {
        anyhow::bail!("{flag} {n} is above the maximum {MAX_RUNS}");
    }
    Ok(())
}

/// Median of the runs, in ms, written as `{"median_ms", "runs_ms"}` when asked.
pub fn report_timings(runs_ms: &[f64], path: Option<&Path>) -> anyhow::Result<f64> {
    let mut sorted = runs_ms.to_vec();
    sorted.sort_by(f64::total_cmp);
    let median = match sorted.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    };
    if let Some(p) = path {
        let doc = serde_json::json!({"median_ms": median, "runs_ms": runs_ms});
        write_atomic(p, doc.to_string().as_bytes())?;
    }
    Ok(median)
}
