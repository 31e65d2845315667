//! Everything a GPU machine without network needs for a suite, fetched beforehand: `cargo xtask gt
//! prefetch` lays out the GT files each case resolves to at the suite's pinned root (same relative
//! paths, plus `official_generated/case_map.json`), the cases' input images given as URLs, and
//! with `--clip` the CLIP model in the Hugging Face cache layout, with a manifest
//! ([`manifest::Manifest`]); then `consistency --gt-dir DIR --offline` resolves every case to the
//! same files with no network ([`Prefetched`] is what it reads back).
//!
//! Shared by two commands (`gt prefetch` writes, `consistency` reads), so neither imports the
//! other: [`case_query`] is the GT lookup of a case for both, [`InputFetcher`] their input images.

mod clip;
mod fetch;
mod manifest;
mod staging;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use cases::Case;
use gt_resolver::{GtQuery, GtRoot, Platform, Resolver};

pub use manifest::Prefetched;
use manifest::{CaseFileEntry, Manifest};

use crate::platform::gt_case_id;
use crate::util::{ImageFetcher, check_gt_download, warn_resolver_settings};

/// Set to 1 to accept a GT root on a branch instead of a pinned commit (as `gt resolve`).
const ALLOW_FLOATING_ENV: &str = "GT_RESOLVER_ALLOW_FLOATING_REVISION";

/// `cargo xtask gt prefetch`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The case file whose cases' GT (skipped cases too), URL input images and CLIP model are
    /// fetched.
    #[arg(long)]
    pub cases: PathBuf,
    /// The GT root to fetch from. Default: the case file's `gt_root`.
    #[arg(long)]
    pub gt_root: Option<String>,
    /// Platforms to resolve each case for (repeatable): several go into one folder. Default:
    /// SGLANG_DIFFUSION_CONSISTENCY_PLATFORM, else h100.
    #[arg(long = "platform", value_name = "P")]
    pub platforms: Vec<String>,
    /// Also the CLIP model (default openai/clip-vit-large-patch14, or the repo given), from the
    /// HF cache or the Hub, in the HF cache layout under OUT/hf-hub.
    #[arg(long, value_name = "REPO", num_args = 0..=1,
          default_missing_value = metrics::DEFAULT_CLIP_MODEL)]
    pub clip: Option<String>,
    /// The folder to fill. Written beside it and renamed into place when complete; an earlier
    /// prefetch of the same GT root there is kept and added to.
    #[arg(long)]
    pub out: PathBuf,
}

/// The GT lookup of a case: under its upstream alias (`CONSISTENCY_GT_CASE_ALIASES`), for its
/// num_gpus and output format, platform folder first.
pub fn case_query(case: &Case, platform: Platform) -> GtQuery {
    GtQuery::image(
        gt_case_id(&case.id),
        case.num_gpus,
        Some(&case.output_format),
        platform,
    )
}

/// Input images given as URLs: from a prefetched folder when it has them (checked against its
/// manifest), else through the GT files' verified cache ([`ImageFetcher`]; offline: only from it).
pub struct InputFetcher {
    prefetched: BTreeMap<String, PathBuf>,
    fetcher: ImageFetcher,
}

impl InputFetcher {
    pub fn new(offline: bool, prefetched: Option<&Prefetched>) -> Self {
        Self {
            prefetched: prefetched.map(|p| p.inputs.clone()).unwrap_or_default(),
            fetcher: ImageFetcher::new(offline),
        }
    }

    /// The local copy of `url`.
    pub fn fetch(&mut self, url: &str) -> anyhow::Result<PathBuf> {
        match self.prefetched.get(url) {
            Some(p) => Ok(p.clone()),
            None => self.fetcher.fetch(url),
        }
    }
}

/// Fetch, verify and lay out; exit 0 when every case that runs has GT, 1 when some has none
/// anywhere (the folder says so too), 2 when the prefetch could not be made (nothing replaced).
pub fn run(a: Args) -> anyhow::Result<ExitCode> {
    let suite = cases::load_suite(&a.cases)?;
    let given = a
        .gt_root
        .clone()
        .or_else(|| suite.gt_root.clone())
        .with_context(|| {
            format!(
                "{} has no gt_root: give --gt-root URL|DIR",
                a.cases.display()
            )
        })?;
    let allow_floating = std::env::var(ALLOW_FLOATING_ENV).is_ok_and(|v| v == "1");
    let root =
        GtRoot::parse(&given, allow_floating).with_context(|| format!("--gt-root {given}"))?;
    let mut platforms = a
        .platforms
        .iter()
        .map(|p| Platform::parse(p).with_context(|| format!("--platform {p}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    if platforms.is_empty() {
        platforms.push(Platform::from_env()?);
    }
    let (case_sha, _) = manifest::sha256_file(&a.cases)?;
    let (staging, earlier) = staging::Staging::begin(&a.out)?;
    let mut m = merge_base(earlier, &root, &staging.out)?;
    for p in &m.platforms {
        if let Ok(p) = Platform::parse(p) {
            platforms.push(p);
        }
    }
    platforms.sort_by_key(|p| p.as_str());
    platforms.dedup();

    let resolver = Resolver::builder()
        .root(&root)
        .progress(true)
        .verify(check_gt_download)
        .build()?;
    warn_resolver_settings(&resolver);
    let tmp = staging.tmp.clone();
    // Both tree folders, so that `--gt-dir` reads the folder as a GT root (official, ours, then
    // legacy), whichever of them the cases' GT is in.
    for tree in ["official_generated", "sglang_generated"] {
        std::fs::create_dir_all(tmp.join(tree))?;
    }
    let mut g = fetch::Gathered::default();
    g.case_map(&resolver, &root, &tmp)?;
    for &p in &platforms {
        g.gt(&resolver, &root, (&case_sha, &suite.cases), p, &tmp)?;
    }
    g.inputs(&suite.cases, &tmp)?;
    let clip = a
        .clip
        .as_deref()
        .map(|repo| clip::prefetch(repo, &tmp))
        .transpose()?;
    // What this prefetch fetched replaces what the earlier one had at the same place; the rest
    // of the earlier one is carried over.
    carry_over(&staging.out, &tmp, &m, &g, clip.is_some())?;
    m.platforms = platforms.iter().map(|p| p.to_string()).collect();
    m.case_files.retain(|c| c.sha256 != case_sha);
    m.case_files.push(CaseFileEntry {
        path: a.cases.display().to_string(),
        sha256: case_sha.clone(),
    });
    m.cases.retain(|c| c.case_file != case_sha);
    m.cases.extend(g.cases);
    merge_entries(&mut m.files, g.files);
    merge_entries(&mut m.inputs, g.inputs);
    if clip.is_some() {
        m.clip = clip;
    }
    m.usage = usage(&staging.out, m.clip.is_some());
    let out = staging.finish(&m)?;
    eprintln!(
        "prefetched {} GT file(s), {} input image(s){} for {} platform(s) into {}",
        m.files.len(),
        m.inputs.len(),
        if m.clip.is_some() {
            " and the CLIP model"
        } else {
            ""
        },
        m.platforms.len(),
        out.display()
    );
    eprintln!("{}", m.usage);
    if g.missing.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    eprintln!("no GT anywhere for: {}", g.missing.join(", "));
    Ok(ExitCode::from(1))
}

/// The manifest to add to: the earlier prefetch's when it is of the same GT root, else a new one
/// (an earlier prefetch of another root is refused: its files would mix with this one's).
fn merge_base(earlier: Option<Manifest>, root: &GtRoot, out: &Path) -> anyhow::Result<Manifest> {
    let url = root.base.url();
    match earlier {
        Some(m) if m.gt_root == url && m.revision == root.revision => Ok(m),
        Some(m) => anyhow::bail!(
            "--out {} holds a prefetch of another GT root ({}{}): give another folder",
            out.display(),
            m.gt_root,
            m.revision.map(|r| format!(" at {r}")).unwrap_or_default()
        ),
        None => Ok(Manifest::new(url, root.revision.clone())),
    }
}

/// The earlier prefetch's files that this one did not fetch again (its CLIP model unless one was
/// fetched now), linked (else copied) into the temp folder and checked against their sha256.
fn carry_over(
    out: &Path,
    tmp: &Path,
    m: &Manifest,
    g: &fetch::Gathered,
    new_clip: bool,
) -> anyhow::Result<()> {
    let fresh = |rel: &str| g.files.contains_key(rel) || g.inputs.values().any(|f| f.path == rel);
    let old_clip = m.clip.as_ref().filter(|_| !new_clip);
    let clip_files = old_clip.iter().flat_map(|c| &c.files);
    for f in m.files.iter().chain(&m.inputs).chain(clip_files) {
        if fresh(&f.path) || tmp.join(manifest::safe_relative(&f.path)?).exists() {
            continue;
        }
        let src = manifest::verify(out, f)?;
        let dst = tmp.join(manifest::safe_relative(&f.path)?);
        crate::util::create_parent(&dst)?;
        if std::fs::hard_link(&src, &dst).is_err() {
            std::fs::copy(&src, &dst)
                .with_context(|| format!("copying {} to {}", src.display(), dst.display()))?;
        }
    }
    if let Some(c) = old_clip {
        let refs = Path::new(manifest::HF_HUB_DIR)
            .join(format!("models--{}", c.repo.replace('/', "--")))
            .join("refs")
            .join(&c.revision);
        if !tmp.join(&refs).exists() {
            crate::util::create_parent(&tmp.join(&refs))?;
            std::fs::write(tmp.join(&refs), &c.commit)?;
        }
    }
    Ok(())
}

/// `into` with `new`'s entries added, replacing those at the same path.
fn merge_entries(into: &mut Vec<manifest::FileEntry>, new: BTreeMap<String, manifest::FileEntry>) {
    let new: Vec<_> = new.into_values().collect();
    into.retain(|f| !new.iter().any(|n| n.path == f.path || n.url == f.url));
    into.extend(new);
    into.sort_by(|a, b| a.path.cmp(&b.path));
}

/// How a machine without network uses the folder.
fn usage(out: &Path, clip: bool) -> String {
    let dir = out.display();
    let hub = manifest::HF_HUB_DIR;
    let clip = if clip {
        format!(" (the CLIP model comes from {dir}/{hub}; other tools: HF_HUB_CACHE={dir}/{hub})")
    } else {
        String::new()
    };
    format!("cargo xtask consistency --cases <case file> --gt-dir {dir} --offline{clip}")
}
