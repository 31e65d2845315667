//! Filling the temp folder: every case resolved on every platform at the GT root, the files chosen
//! (and `official_generated/case_map.json`) fetched through the verified GT cache and copied to
//! the same relative paths, the input images given as URLs copied under `inputs/`.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, bail};
use cases::{Case, ImageSource};
use gt_resolver::{Answer, GtRoot, Platform, Resolver};

use super::manifest::{CaseEntry, FileEntry, safe_relative, sha256_file};
use super::{InputFetcher, case_query};

/// The files of the folder by relative path, and each case's pick.
#[derive(Default)]
pub struct Gathered {
    pub files: BTreeMap<String, FileEntry>,
    pub inputs: BTreeMap<String, FileEntry>,
    pub cases: Vec<CaseEntry>,
    /// Cases (not skipped) with no GT anywhere.
    pub missing: Vec<String>,
}

/// `url` relative to `root` when under it (`root/a/b` → `a/b`).
pub fn relative<'a>(url: &'a str, root: &str) -> Option<&'a str> {
    url.strip_prefix(root.trim_end_matches('/'))?
        .strip_prefix('/')
}

/// Copy the local file `src` to `tmp/rel`, hashing it.
fn copy_in(src: &Path, tmp: &Path, rel: &str, url: &str) -> anyhow::Result<FileEntry> {
    let dst = tmp.join(safe_relative(rel)?);
    crate::util::create_parent(&dst)?;
    std::fs::copy(src, &dst)
        .with_context(|| format!("copying {} to {}", src.display(), dst.display()))?;
    let (sha256, bytes) = sha256_file(&dst)?;
    Ok(FileEntry {
        path: rel.to_string(),
        url: url.to_string(),
        sha256,
        bytes,
    })
}

impl Gathered {
    /// Resolve `cases` (skipped ones too: `--resolve-only` lists them) on `platform` and copy
    /// the chosen files. A GT host that could not be asked, or a file that could not be fetched,
    /// is an error: the folder would not hold what the root holds.
    pub fn gt(
        &mut self,
        resolver: &Resolver,
        root: &GtRoot,
        (case_file, cases): (&str, &[Case]),
        platform: Platform,
        tmp: &Path,
    ) -> anyhow::Result<()> {
        let root_url = root.base.url();
        let queries: Vec<_> = cases.iter().map(|c| case_query(c, platform)).collect();
        for ((case, query), resolution) in cases
            .iter()
            .zip(&queries)
            .zip(resolver.resolve_many(&queries))
        {
            let what = || format!("{} on {platform}", case.id);
            let resolution = resolution
                .and_then(gt_resolver::Resolution::into_answered)
                .with_context(what)?;
            if resolution.is_unconfirmed() {
                bail!(
                    "{}: every probe was unknown ({}): the GT host could not be asked",
                    what(),
                    resolution.unknown_reasons()
                );
            }
            for n in &resolution.notes {
                eprintln!("note: {}: {n}", what());
            }
            let mut rels = Vec::new();
            for file in &resolution.files {
                let rel = relative(&file.url, &root_url)
                    .with_context(|| format!("{}: {} is not under {root_url}", what(), file.url))?
                    .to_string();
                if !self.files.contains_key(&rel) {
                    let path = resolver.fetch(file).with_context(what)?;
                    self.files
                        .insert(rel.clone(), copy_in(&path, tmp, &rel, &file.url)?);
                }
                rels.push(rel);
            }
            if rels.is_empty() && case.skip.is_none() {
                self.missing
                    .push(format!("{} ({platform}): {}", case.id, query.case));
            }
            self.cases.push(CaseEntry {
                case_file: case_file.to_string(),
                id: case.id.clone(),
                platform: platform.to_string(),
                source: resolution.source.map_or("none", |s| s.as_str()).to_string(),
                files: rels,
            });
        }
        Ok(())
    }

    /// `official_generated/case_map.json`, when the root has one (it decides which official GT
    /// counts): copied as it is.
    pub fn case_map(
        &mut self,
        resolver: &Resolver,
        root: &GtRoot,
        tmp: &Path,
    ) -> anyhow::Result<()> {
        let rel = "official_generated/case_map.json";
        let url = root.base.join(rel).url();
        let local = match &root.base {
            gt_resolver::Location::Local(dir) => Some(dir.join("official_generated/case_map.json")),
            gt_resolver::Location::Remote(_) => None,
        };
        let path = match local {
            Some(p) if p.is_file() => p,
            Some(_) => return Ok(()),
            None => {
                let probe = resolver.exists(&url)?;
                match probe.answer {
                    Answer::Yes => resolver.fetch_url(&url)?,
                    Answer::No => return Ok(()),
                    Answer::Unknown => {
                        bail!("{url}: the GT host could not be asked ({})", probe.reason)
                    }
                }
            }
        };
        self.files
            .insert(rel.into(), copy_in(&path, tmp, rel, &url)?);
        Ok(())
    }

    /// The input images given as URLs of the cases that run (skipped ones are never read),
    /// each under `inputs/<sha256>.<ext>`.
    pub fn inputs(&mut self, cases: &[Case], tmp: &Path) -> anyhow::Result<()> {
        let mut fetcher = InputFetcher::new(false, None);
        for case in cases.iter().filter(|c| c.skip.is_none()) {
            for src in &case.images {
                let ImageSource::Url(url) = src else { continue };
                if self.inputs.contains_key(url) {
                    continue;
                }
                let path = fetcher
                    .fetch(url)
                    .with_context(|| format!("case {}: input image", case.id))?;
                let (sha, _) = sha256_file(&path)?;
                let rel = format!("inputs/{sha}.{}", extension(url));
                self.inputs
                    .insert(url.clone(), copy_in(&path, tmp, &rel, url)?);
            }
        }
        Ok(())
    }
}

/// The image extension of a URL's file name (`img`, when it has none worth keeping).
fn extension(url: &str) -> String {
    let name = url.split(['?', '#']).next().unwrap_or(url);
    let ext = name
        .rsplit('/')
        .next()
        .and_then(|n| n.rsplit_once('.'))
        .map(|(_, e)| e);
    match ext.map(str::to_ascii_lowercase) {
        Some(e) if ["png", "jpg", "jpeg", "webp"].contains(&e.as_str()) => e,
        _ => "img".into(),
    }
}
