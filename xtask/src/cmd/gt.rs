//! `cargo xtask gt resolve` (and `gt prefetch`, whose work is in `crate::prefetch`).

use std::process::ExitCode;

use gt_resolver::{GtQuery, GtRoot, Platform, Resolver};

use crate::util::{check_gt_download, warn_resolver_settings};

#[derive(clap::Subcommand, Debug)]
pub enum Gt {
    /// Find a case's GT files: chosen source, files with URLs, every probe with its answer.
    Resolve(ResolveArgs),
    /// Fetch a suite's GT (every platform asked), URL input images and optionally the CLIP model
    /// into one folder with a manifest, for `consistency --gt-dir DIR --offline`.
    Prefetch(crate::prefetch::Args),
}

#[derive(clap::Args, Debug)]
pub struct ResolveArgs {
    #[arg(long)]
    pub case: String,
    /// An http(s) base or a local folder holding official_generated/ and sglang_generated/.
    #[arg(long)]
    pub gt_root: String,
    /// Part of the GT file name (`<case>_<n>gpu.<ext>`), at least 1 (as a case file's `num_gpus`).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub num_gpus: u32,
    #[arg(long)]
    pub video: bool,
    /// The image format the case writes, tried first (a case file's `output_format`).
    #[arg(long, value_parser = ["png", "jpg", "jpeg", "webp"], conflicts_with = "video")]
    pub output_format: Option<String>,
    #[arg(long, env = "SGLANG_DIFFUSION_CONSISTENCY_PLATFORM")]
    pub platform: Option<String>,
    #[arg(long)]
    pub offline: bool,
    #[arg(long)]
    pub json: bool,
}

/// Set to 1 to accept a GT root on a branch (e.g. `…/ci-data/main/…`) instead of a pinned commit.
const ALLOW_FLOATING_ENV: &str = "GT_RESOLVER_ALLOW_FLOATING_REVISION";

pub fn run(g: Gt) -> anyhow::Result<ExitCode> {
    match g {
        Gt::Resolve(a) => resolve(a),
        Gt::Prefetch(a) => crate::prefetch::run(a),
    }
}

/// Exit 0 when GT was found, 1 when no source has it, 2 when the lookup could not run: bad
/// arguments, a local GT root that is missing or not a folder (an `Err` here, which `main` turns
/// into 2), a source chosen only because every one of its probes was unknown (the GT host
/// could not be asked, e.g. it refuses connections), or `--offline` with candidates that are not
/// in the cache and so were not asked at all.
fn resolve(a: ResolveArgs) -> anyhow::Result<ExitCode> {
    let platform = match a.platform.as_deref() {
        Some(p) if !p.trim().is_empty() => Platform::parse(p)?,
        _ => Platform::default(),
    };
    let query = if a.video {
        GtQuery::video(&a.case, a.num_gpus, platform)
    } else {
        GtQuery::image(&a.case, a.num_gpus, a.output_format.as_deref(), platform)
    };
    let allow_floating = std::env::var(ALLOW_FLOATING_ENV).is_ok_and(|v| v == "1");
    let root = GtRoot::parse(&a.gt_root, allow_floating).map_err(|e| {
        // Only a branch is what the switch allows; any other bad root is just bad.
        let hint = match e {
            gt_resolver::Error::FloatingRevision { .. } => {
                format!(" (set {ALLOW_FLOATING_ENV}=1 to allow a branch)")
            }
            _ => String::new(),
        };
        anyhow::Error::new(e).context(format!("--gt-root {}{hint}", a.gt_root))
    })?;
    let resolver = Resolver::builder()
        .root(&root)
        .local_override(gt_resolver::gt_dir_from_env())
        .offline(a.offline)
        .verify(check_gt_download)
        .build()?;
    warn_resolver_settings(&resolver);
    let resolution = resolver.resolve(&query)?;

    if a.json {
        println!("{}", resolution.to_json());
        // The JSON shape is a contract; the decisions behind it go to stderr.
        for n in &resolution.notes {
            eprintln!("note: {n}");
        }
    } else {
        match resolution.source {
            Some(src) => println!("{}: GT from {src}", query.case),
            None => println!("{}: no GT found", query.case),
        }
        for f in &resolution.files {
            println!("  file  {}  {}", f.name, f.url);
        }
        println!("probes ({}):", resolution.probes.len());
        for p in &resolution.probes {
            println!(
                "  {:<7} x{}  {}  ({})",
                p.answer.as_str(),
                p.attempts,
                p.url,
                p.reason
            );
        }
        for n in &resolution.notes {
            println!("note: {n}");
        }
    }
    if resolution.is_unasked() {
        // Offline with nothing cached: no answer at all, which is not "no GT".
        let e = resolution.into_answered().err();
        eprintln!("error: {}", e.map(|e| e.to_string()).unwrap_or_default());
        return Ok(ExitCode::from(2));
    }
    if resolution.is_unconfirmed() {
        eprintln!(
            "error: {}: every probe of the {} source was unknown ({}): the GT host could not be \
             asked, so nothing confirms that these files exist",
            query.case,
            resolution.source.map_or("chosen", |s| s.as_str()),
            resolution.unknown_reasons()
        );
        return Ok(ExitCode::from(2));
    }
    match resolution.into_found(&query) {
        Ok(_) => Ok(ExitCode::SUCCESS),
        Err(e) => {
            eprintln!("{e}");
            Ok(ExitCode::from(1))
        }
    }
}
