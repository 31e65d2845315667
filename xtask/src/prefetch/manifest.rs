//! `prefetch.json`, the manifest of a prefetched folder: what it holds (each file with its source
//! URL and sha256), for which case files, GT root and platforms, and how a run uses it; and what a
//! run reads back from it ([`Prefetched`]: the files checked, the input images by URL, the CLIP
//! model's folder).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

use crate::util::{MAX_TEXT_BYTES, read_regular_file};

/// The manifest's name in a prefetched folder.
pub const MANIFEST: &str = "prefetch.json";
/// Where the CLIP model is, in the Hugging Face cache layout (`HF_HUB_CACHE`).
pub const HF_HUB_DIR: &str = "hf-hub";
/// The format this code writes and reads.
const FORMAT: u32 = 1;

/// `prefetch.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    /// The manifest format (1).
    pub prefetch: u32,
    /// Always true in a folder `gt prefetch` finished (the folder appears only once complete).
    pub complete: bool,
    /// The project version that wrote it.
    pub version: String,
    /// The GT root everything under `official_generated/` and `sglang_generated/` came from.
    pub gt_root: String,
    /// Its pinned commit, when the root names one.
    pub revision: Option<String>,
    /// The platforms prefetched (each case resolved for each).
    pub platforms: Vec<String>,
    /// The case files prefetched, each with its sha256.
    pub case_files: Vec<CaseFileEntry>,
    /// How a machine without network uses this folder.
    pub usage: String,
    /// Per case file, case and platform: the GT chosen, relative to this folder.
    pub cases: Vec<CaseEntry>,
    /// The GT files and `official_generated/case_map.json`.
    pub files: Vec<FileEntry>,
    /// The cases' input images given as URLs.
    pub inputs: Vec<FileEntry>,
    /// The CLIP model (`--clip`), if prefetched.
    pub clip: Option<ClipEntry>,
}

/// A case file prefetched.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CaseFileEntry {
    pub path: String,
    pub sha256: String,
}

/// One case's GT on one platform.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CaseEntry {
    /// The case file's sha256.
    pub case_file: String,
    pub id: String,
    pub platform: String,
    /// `official`, `sglang`, `legacy` or `none`.
    pub source: String,
    /// Relative to the folder.
    pub files: Vec<String>,
}

/// One file of the folder.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct FileEntry {
    /// Relative to the folder (`/`-separated).
    pub path: String,
    /// Where it came from.
    pub url: String,
    pub sha256: String,
    pub bytes: u64,
}

/// The CLIP model in the Hugging Face cache layout under [`HF_HUB_DIR`].
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ClipEntry {
    /// The HF repo id.
    pub repo: String,
    /// The revision asked for (`main`), whose ref names `commit`.
    pub revision: String,
    pub commit: String,
    /// Its files, relative to the folder.
    pub files: Vec<FileEntry>,
}

impl ClipEntry {
    /// The snapshot folder of the model, relative to the prefetched folder.
    pub fn snapshot(&self) -> String {
        format!(
            "{HF_HUB_DIR}/models--{}/snapshots/{}",
            self.repo.replace('/', "--"),
            self.commit
        )
    }
}

impl Manifest {
    /// An empty manifest for `gt_root`.
    pub fn new(gt_root: String, revision: Option<String>) -> Self {
        Self {
            prefetch: FORMAT,
            complete: true,
            version: env!("CARGO_PKG_VERSION").to_string(),
            gt_root,
            revision,
            platforms: Vec::new(),
            case_files: Vec::new(),
            usage: String::new(),
            cases: Vec::new(),
            files: Vec::new(),
            inputs: Vec::new(),
            clip: None,
        }
    }

    /// The manifest of the prefetched folder `dir`, or `None` when it has none.
    pub fn read(dir: &Path) -> anyhow::Result<Option<Self>> {
        let path = dir.join(MANIFEST);
        if std::fs::symlink_metadata(&path).is_err() {
            return Ok(None);
        }
        let bytes = read_regular_file(&path, MAX_TEXT_BYTES)?;
        let m: Self = serde_json::from_slice(&bytes)
            .with_context(|| format!("{} is not a prefetch manifest", path.display()))?;
        if m.prefetch != FORMAT || !m.complete {
            bail!(
                "{} is not a complete prefetch (format {}, complete {}): run gt prefetch again",
                path.display(),
                m.prefetch,
                m.complete
            );
        }
        for f in m.files.iter().chain(&m.inputs) {
            safe_relative(&f.path).with_context(|| format!("{}", path.display()))?;
        }
        Ok(Some(m))
    }
}

/// `rel` as a path under a folder: `/`-separated plain names (`[A-Za-z0-9_.-]`, not `.` or
/// `..`), so that no entry of a manifest or GT name reaches outside the folder.
pub fn safe_relative(rel: &str) -> anyhow::Result<PathBuf> {
    let mut path = PathBuf::new();
    for part in rel.split('/') {
        if !cases::valid_id(part) || part == "." || part == ".." {
            bail!("{rel:?} is not a plain relative path");
        }
        path.push(part);
    }
    Ok(path)
}

/// The sha256 of `path`'s bytes, hex.
pub fn sha256_file(path: &Path) -> anyhow::Result<(String, u64)> {
    use sha2::{Digest, Sha256};
    let mut file =
        std::fs::File::open(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut hasher = Sha256::new();
    let n = std::io::copy(&mut file, &mut hasher)
        .with_context(|| format!("cannot read {}", path.display()))?;
    Ok((hex::encode(hasher.finalize()), n))
}

/// Check that `dir/entry.path` is a regular file with the entry's sha256.
pub fn verify(dir: &Path, entry: &FileEntry) -> anyhow::Result<PathBuf> {
    let path = dir.join(safe_relative(&entry.path)?);
    let meta = std::fs::symlink_metadata(&path)
        .with_context(|| format!("{} (listed in {MANIFEST}) is missing", path.display()))?;
    if !meta.is_file() {
        bail!("{} is not a regular file", path.display());
    }
    let (sha, _) = sha256_file(&path)?;
    if sha != entry.sha256 {
        bail!(
            "{} has sha256 {sha}, {MANIFEST} says {} (copied from {}): prefetch again",
            path.display(),
            entry.sha256,
            entry.url
        );
    }
    Ok(path)
}

/// What a run takes from a prefetched `--gt-dir`: its files checked against the manifest, the
/// input images by URL, the CLIP model's snapshot folder.
#[derive(Debug, Clone, Default)]
pub struct Prefetched {
    /// Input image URL → its checked copy in the folder.
    pub inputs: BTreeMap<String, PathBuf>,
    /// The CLIP repo id and its snapshot folder.
    pub clip: Option<(String, PathBuf)>,
}

impl Prefetched {
    /// `dir`'s manifest, every GT file and input checked against its sha256; `None` when `dir`
    /// is not a prefetched folder (a GT folder made by hand).
    pub fn open(dir: &Path) -> anyhow::Result<Option<Self>> {
        let Some(m) = Manifest::read(dir)? else {
            return Ok(None);
        };
        for f in &m.files {
            verify(dir, f)?;
        }
        let mut inputs = BTreeMap::new();
        for f in &m.inputs {
            inputs.insert(f.url.clone(), verify(dir, f)?);
        }
        let clip = m
            .clip
            .as_ref()
            .map(|c| (c.repo.clone(), dir.join(c.snapshot())))
            .filter(|(_, snap)| snap.is_dir());
        Ok(Some(Self { inputs, clip }))
    }

    /// The CLIP model to load for `wanted` (a folder or repo id): the prefetched snapshot folder
    /// when `wanted` is its repo, else `wanted` as it is.
    pub fn clip_model(&self, wanted: &str) -> Option<PathBuf> {
        self.clip
            .as_ref()
            .filter(|(repo, _)| repo == wanted)
            .map(|(_, snap)| snap.clone())
    }
}
