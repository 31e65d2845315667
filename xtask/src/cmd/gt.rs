//! `cargo xtask gt resolve`.

use std::process::ExitCode;

use anyhow::Context;
use gt_resolver::{GtQuery, GtRoot, Platform, Resolver};

#[derive(clap::Subcommand, Debug)]
pub enum Gt {
    /// Find a case's GT files: chosen source, files with URLs, every probe with its answer.
    Resolve(ResolveArgs),
}

#[derive(clap::Args, Debug)]
pub struct ResolveArgs {
    #[arg(long)]
    pub case: String,
    /// An http(s) base or a local folder holding official_generated/ and sglang_generated/.
    #[arg(long)]
    pub gt_root: String,
    #[arg(long, default_value_t = 1)]
    pub num_gpus: u32,
    #[arg(long)]
    pub video: bool,
    #[arg(long)]
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
    }
}

/// Exit 0 when GT was found, 1 when no source has it, 2 when the lookup could not run: bad
/// arguments, a local GT root that is missing or not a folder (an `Err` here, which `main` turns
/// into 2), or a source chosen only because every one of its probes was unknown (the GT host
/// could not be asked, e.g. it refuses connections).
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
    let root = GtRoot::parse(&a.gt_root, allow_floating).with_context(|| {
        format!(
            "--gt-root {} (set {ALLOW_FLOATING_ENV}=1 to allow a branch)",
            a.gt_root
        )
    })?;
    let resolver = Resolver::builder()
        .root(&root)
        .local_override(gt_resolver::gt_dir_from_env())
        .offline(a.offline)
        .build()?;
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
