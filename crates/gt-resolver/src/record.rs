//! Recorded resolutions: against a pinned tree the answer never changes, so a definitive
//! resolution is stored in the cache and a warm run makes no request at all.

use crate::cache::{CacheKey, sha256_hex};
use crate::naming::{GtKind, GtQuery};
use crate::resolution::Resolution;
use crate::resolver::Resolver;
use crate::source::Source;

impl Resolver {
    /// Resolutions are recorded only when every source is pinned (or local) and at least one is
    /// remote: an unpinned base can change between runs, which is how upstream's floating `main`
    /// let unrelated uploads flip PR results.
    pub(crate) fn record_key(&self, q: &GtQuery) -> Option<CacheKey> {
        if !self.sources.iter().all(Source::is_pinned)
            || self.sources.iter().all(|s| s.base.is_local())
        {
            return None;
        }
        let format = match &q.kind {
            GtKind::Image { format } => format!("image:{}", format.as_deref().unwrap_or("")),
            GtKind::Video => "video".into(),
        };
        let mut ident = format!(
            "resolution-v2|{}|{}|{format}|{}|forced={}",
            q.case,
            q.num_gpus,
            q.platform,
            self.forced_ours.contains(&q.case)
        );
        for s in &self.sources {
            ident.push_str(&format!("|{}={}", s.kind, s.base.url()));
        }
        let revision = self.sources.iter().find_map(|s| s.revision.clone());
        Some(CacheKey::new(
            format!("resolution:{}", sha256_hex(ident.as_bytes())),
            revision,
        ))
    }

    pub(crate) fn load_record(&self, key: &CacheKey) -> Option<Resolution> {
        let path = self.cache.get(key)?;
        let bytes = std::fs::read(path).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Stores a definitive resolution. Best effort: a cache that cannot be written only costs the
    /// next run some probes.
    pub(crate) fn store_record(&self, key: &CacheKey, resolution: &Resolution) {
        if let Ok(bytes) = serde_json::to_vec(resolution) {
            let _ = self.cache.put_bytes(key, &bytes);
        }
    }
}
