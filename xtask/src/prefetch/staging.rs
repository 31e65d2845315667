//! The prefetched folder appears whole or not at all: everything is written into a temp sibling
//! (`.<name>.prefetch.tmp`, the manifest last), which replaces `--out` by renames once complete. A
//! lock (`.<name>.prefetch.lock`) keeps two prefetches off one folder; a temp folder that a killed
//! prefetch left is removed by the next one, which starts over (the GT cache keeps what was
//! downloaded).

use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use super::manifest::{MANIFEST, Manifest};

/// A prefetch in progress: the lock held, the temp folder to fill.
pub struct Staging {
    /// The folder the user asked for.
    pub out: PathBuf,
    /// Where everything is written until [`Staging::finish`].
    pub tmp: PathBuf,
    /// Held until the process ends.
    _lock: File,
}

/// `.<name>.prefetch.<what>` next to `out`.
fn sibling(out: &Path, what: &str) -> anyhow::Result<PathBuf> {
    let name = out
        .file_name()
        .and_then(|n| n.to_str())
        .with_context(|| format!("--out {}: not a folder name", out.display()))?;
    Ok(out.with_file_name(format!(".{name}.prefetch.{what}")))
}

fn remove_dir(dir: &Path) -> anyhow::Result<()> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => bail!("cannot remove {}: {e}", dir.display()),
    }
}

impl Staging {
    /// Lock `out`, check that it is new, empty or an earlier prefetch (whose manifest is
    /// returned, to be merged), and start an empty temp folder beside it.
    pub fn begin(out: &Path) -> anyhow::Result<(Self, Option<Manifest>)> {
        let out = std::path::absolute(out).with_context(|| format!("--out {}", out.display()))?;
        let parent = out.parent().context("--out has no parent folder")?;
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
        let lock_path = sibling(&out, "lock")?;
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .with_context(|| format!("cannot open the lock {}", lock_path.display()))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => bail!(
                "another gt prefetch is writing {} (it holds {})",
                out.display(),
                lock_path.display()
            ),
            Err(std::fs::TryLockError::Error(e)) => {
                bail!("cannot lock {}: {e}", lock_path.display())
            }
        }
        // A swap cut short between its two renames (see `finish`) left the previous folder
        // aside: it is put back, else removed.
        let old = sibling(&out, "old")?;
        if old.is_dir() && !out.exists() {
            std::fs::rename(&old, &out)
                .with_context(|| format!("restoring {} from {}", out.display(), old.display()))?;
        }
        remove_dir(&old)?;
        let earlier = existing(&out)?;
        let tmp = sibling(&out, "tmp")?;
        remove_dir(&tmp)?;
        std::fs::create_dir(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        Ok((
            Self {
                out,
                tmp,
                _lock: lock,
            },
            earlier,
        ))
    }

    /// Write the manifest (last), then put the temp folder in place of `out`: the previous
    /// folder, if any, is renamed aside first and removed after.
    pub fn finish(self, manifest: &Manifest) -> anyhow::Result<PathBuf> {
        let bytes = serde_json::to_vec_pretty(manifest)?;
        crate::util::write_atomic(&self.tmp.join(MANIFEST), &bytes)?;
        sync_dir(&self.tmp);
        let old = sibling(&self.out, "old")?;
        let had = self.out.exists();
        if had {
            std::fs::rename(&self.out, &old)
                .with_context(|| format!("moving the previous {} aside", self.out.display()))?;
        }
        std::fs::rename(&self.tmp, &self.out).with_context(|| {
            format!("renaming {} to {}", self.tmp.display(), self.out.display())
        })?;
        if let Some(parent) = self.out.parent() {
            sync_dir(parent);
        }
        if had {
            remove_dir(&old)?;
        }
        Ok(self.out.clone())
    }
}

/// Flush a folder's entries to disk (best effort: not every file system allows it).
fn sync_dir(dir: &Path) {
    if let Ok(f) = File::open(dir) {
        let _ = f.sync_all();
    }
}

/// `out`'s earlier prefetch: none when it does not exist or is empty; its manifest when it is a
/// prefetched folder; refused otherwise (a prefetch replaces only what a prefetch wrote).
fn existing(out: &Path) -> anyhow::Result<Option<Manifest>> {
    let meta = match std::fs::symlink_metadata(out) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => bail!("cannot read --out {}: {e}", out.display()),
    };
    if !meta.is_dir() {
        bail!("--out {} exists and is not a folder", out.display());
    }
    if let Some(m) = Manifest::read(out)? {
        return Ok(Some(m));
    }
    let empty = std::fs::read_dir(out)
        .with_context(|| format!("cannot list {}", out.display()))?
        .next()
        .is_none();
    if !empty {
        bail!(
            "--out {} is a folder that gt prefetch did not write (no {MANIFEST}): give a new or \
             empty folder",
            out.display()
        );
    }
    Ok(None)
}
