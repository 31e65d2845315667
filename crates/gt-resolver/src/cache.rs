//! A content-addressed disk cache shared across runs.
//!
//! Layout under the cache folder:
//! * `objects/<aa>/<sha256>`: file contents, named by their sha256;
//! * `refs/<sha256 of key>`: two lines, the content sha256 and the key (URL + revision);
//! * `tmp/*.part`: downloads in progress.
//!
//! A download is written to `tmp/`, hashed as it streams, then renamed into `objects/`; the ref is
//! written last (also via a temp file). A process killed mid-download leaves at most a `.part`
//! file, which no lookup ever reads. Every lookup re-hashes the object, so a corrupted or
//! truncated object is detected, removed and reported as a miss.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};

use crate::error::Error;

/// Environment variable that overrides the cache folder.
pub const CACHE_ENV: &str = "GT_RESOLVER_CACHE_DIR";

/// `.part` files older than this are leftovers of killed runs and are swept on open.
const STALE_PART: Duration = Duration::from_secs(24 * 3600);

static PART_COUNTER: AtomicU64 = AtomicU64::new(0);

/// What a cache entry is about: a URL at a revision (`None` for an unpinned URL).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CacheKey {
    /// The URL (or a synthetic `scheme:` key for records the resolver keeps).
    pub url: String,
    /// The pinned revision the URL belongs to.
    pub revision: Option<String>,
}

impl CacheKey {
    /// A key for `url` at `revision`.
    pub fn new(url: impl Into<String>, revision: Option<String>) -> Self {
        CacheKey {
            url: url.into(),
            revision,
        }
    }

    fn ident(&self) -> String {
        format!(
            "{} @ {}",
            self.url,
            self.revision.as_deref().unwrap_or("unpinned")
        )
    }
}

/// The result of a cache lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// A verified object.
    Hit(PathBuf),
    /// No entry.
    Miss,
    /// There was an entry, but its object failed verification (removed; treat as a miss).
    Corrupt(PathBuf),
}

/// The on-disk cache.
#[derive(Debug, Clone)]
pub struct Cache {
    root: PathBuf,
}

impl Cache {
    /// `$GT_RESOLVER_CACHE_DIR`, else `<user cache dir>/gt-resolver`.
    pub fn default_dir() -> Result<PathBuf, Error> {
        match std::env::var_os(CACHE_ENV) {
            Some(v) if !v.is_empty() => Ok(PathBuf::from(v)),
            _ => dirs::cache_dir()
                .map(|d| d.join("gt-resolver"))
                .ok_or(Error::NoCacheDir { env: CACHE_ENV }),
        }
    }

    /// Opens (creating if needed) a cache at `root` and sweeps stale `.part` files.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, Error> {
        let root = root.into();
        for sub in ["objects", "refs", "tmp"] {
            let d = root.join(sub);
            fs::create_dir_all(&d).map_err(|e| Error::io(&d, e))?;
        }
        let cache = Cache { root };
        cache.sweep_parts();
        Ok(cache)
    }

    /// The cache folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn ref_path(&self, key: &CacheKey) -> PathBuf {
        self.root
            .join("refs")
            .join(sha256_hex(key.ident().as_bytes()))
    }

    fn object_path(&self, sha: &str) -> PathBuf {
        self.root.join("objects").join(&sha[..2]).join(sha)
    }

    /// Looks `key` up and verifies the object's sha256.
    pub fn lookup(&self, key: &CacheKey) -> Lookup {
        let rp = self.ref_path(key);
        let Ok(text) = fs::read_to_string(&rp) else {
            return Lookup::Miss;
        };
        let mut lines = text.lines();
        let (Some(sha), Some(ident)) = (lines.next(), lines.next()) else {
            let _ = fs::remove_file(&rp);
            return Lookup::Corrupt(rp);
        };
        if ident != key.ident() {
            // A hash collision on the ref name is not realistic; a hand-edited ref is.
            return Lookup::Miss;
        }
        if sha.len() != 64 || !sha.bytes().all(|b| b.is_ascii_hexdigit()) {
            let _ = fs::remove_file(&rp);
            return Lookup::Corrupt(rp);
        }
        let op = self.object_path(sha);
        match hash_file(&op) {
            Ok(actual) if actual == sha => Lookup::Hit(op),
            Ok(_) => {
                let _ = fs::remove_file(&op);
                let _ = fs::remove_file(&rp);
                Lookup::Corrupt(op)
            }
            Err(_) => {
                let _ = fs::remove_file(&rp);
                Lookup::Miss
            }
        }
    }

    /// The verified object for `key`, if any.
    pub fn get(&self, key: &CacheKey) -> Option<PathBuf> {
        match self.lookup(key) {
            Lookup::Hit(p) => Some(p),
            _ => None,
        }
    }

    /// Drops `key`'s entry and its `object`: a verified copy that the caller's check refuses.
    pub(crate) fn forget(&self, key: &CacheKey, object: &Path) {
        let _ = fs::remove_file(object);
        let _ = fs::remove_file(self.ref_path(key));
    }

    /// Stores `bytes` under `key` and returns the object path.
    pub fn put_bytes(&self, key: &CacheKey, bytes: &[u8]) -> Result<PathBuf, Error> {
        let mut part = self.begin()?;
        part.write_all(bytes)
            .map_err(|e| Error::io(&part.path, e))?;
        self.commit(part, key)
    }

    /// Starts a new entry: a `.part` file that hashes what is written to it.
    pub(crate) fn begin(&self) -> Result<Part, Error> {
        let n = PART_COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = self
            .root
            .join("tmp")
            .join(format!("{}-{n}.part", std::process::id()));
        let file = File::create(&path).map_err(|e| Error::io(&path, e))?;
        Ok(Part {
            file,
            path,
            hasher: Sha256::new(),
            committed: false,
        })
    }

    /// Moves a finished `.part` into `objects/` and points `key` at it.
    pub(crate) fn commit(&self, mut part: Part, key: &CacheKey) -> Result<PathBuf, Error> {
        part.file.sync_all().map_err(|e| Error::io(&part.path, e))?;
        let sha = hex::encode(part.hasher.clone().finalize());
        let op = self.object_path(&sha);
        if let Some(dir) = op.parent() {
            fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        fs::rename(&part.path, &op).map_err(|e| Error::io(&op, e))?;
        part.committed = true;

        let rp = self.ref_path(key);
        let tmp = rp.with_extension(format!("{}.tmp", std::process::id()));
        fs::write(&tmp, format!("{sha}\n{}\n", key.ident())).map_err(|e| Error::io(&tmp, e))?;
        fs::rename(&tmp, &rp).map_err(|e| Error::io(&rp, e))?;
        Ok(op)
    }

    fn sweep_parts(&self) {
        let Ok(entries) = fs::read_dir(self.root.join("tmp")) else {
            return;
        };
        let now = SystemTime::now();
        for e in entries.flatten() {
            let old = e
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| now.duration_since(t).ok())
                .is_some_and(|age| age > STALE_PART);
            if old {
                let _ = fs::remove_file(e.path());
            }
        }
    }
}

/// A cache entry being written. Dropped without commit, it deletes its file.
pub(crate) struct Part {
    file: File,
    pub(crate) path: PathBuf,
    hasher: Sha256,
    committed: bool,
}

impl Write for Part {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl Drop for Part {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_file(&self.path);
        }
    }
}

pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn hash_file(path: &Path) -> io::Result<String> {
    let mut f = File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}
