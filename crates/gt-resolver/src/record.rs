//! Recorded resolutions: against a pinned tree the answer never changes, so a definitive
//! resolution is stored in the cache and a warm run makes no request at all.

use crate::cache::{Cache, CacheKey, sha256_hex};
use crate::naming::{GtKind, GtQuery};
use crate::resolution::Resolution;
use crate::source::Source;

/// Stores and serves definitive resolutions for one set of sources.
#[derive(Debug)]
pub(crate) struct RecordStore {
    cache: Cache,
    /// What identifies the sources in a record's key (`|kind=url` per source) and the revision
    /// records are filed under; `None` when resolutions are not recorded.
    scope: Option<(String, Option<String>)>,
}

impl RecordStore {
    /// Resolutions are recorded only when every source is pinned (or local) and at least one is
    /// remote: an unpinned base can change between runs, which is how upstream's floating `main`
    /// let unrelated uploads flip PR results.
    pub(crate) fn new(cache: Cache, sources: &[Source]) -> Self {
        let recorded =
            sources.iter().all(Source::is_pinned) && !sources.iter().all(|s| s.base.is_local());
        let scope = recorded.then(|| {
            let ident: String = sources
                .iter()
                .map(|s| format!("|{}={}", s.kind, s.base.url()))
                .collect();
            (ident, sources.iter().find_map(|s| s.revision.clone()))
        });
        RecordStore { cache, scope }
    }

    /// The key of `q`'s record (`forced`: the case is forced to our GT), if it may have one.
    pub(crate) fn key(&self, q: &GtQuery, forced: bool) -> Option<CacheKey> {
        let (sources, revision) = self.scope.as_ref()?;
        let format = match &q.kind {
            GtKind::Image { format } => format!("image:{}", format.as_deref().unwrap_or("")),
            GtKind::Video => "video".into(),
        };
        let ident = format!(
            "resolution-v2|{}|{}|{format}|{}|forced={forced}{sources}",
            q.case, q.num_gpus, q.platform,
        );
        Some(CacheKey::new(
            format!("resolution:{}", sha256_hex(ident.as_bytes())),
            revision.clone(),
        ))
    }

    /// The recorded resolution, noted as served from the cache.
    pub(crate) fn load(&self, key: &CacheKey) -> Option<Resolution> {
        let path = self.cache.get(key)?;
        let bytes = std::fs::read(path).ok()?;
        let mut r: Resolution = serde_json::from_slice(&bytes).ok()?;
        r.notes.push(
            "resolution served from the on-disk cache (pinned revision; no network request); \
             probes are those recorded when it was first resolved"
                .into(),
        );
        Some(r)
    }

    /// Stores a definitive resolution. Best effort: a cache that cannot be written only costs the
    /// next run some probes.
    pub(crate) fn store(&self, key: &CacheKey, resolution: &Resolution) {
        if let Ok(bytes) = serde_json::to_vec(resolution) {
            let _ = self.cache.put_bytes(key, &bytes);
        }
    }
}
