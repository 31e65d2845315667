//! The images of `response_format="url"` answers, served by `GET /v1/images/{id}/content` for
//! `--url-ttl` seconds: in memory (the server writes no file), oldest dropped first past a
//! byte budget.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Bytes kept for URL answers at most.
pub const STORE_BYTES: usize = 512 << 20;

struct Stored {
    id: String,
    index: usize,
    at: Instant,
    mime: &'static str,
    bytes: Arc<Vec<u8>>,
}

/// Images by (request id, index).
pub struct UrlStore {
    ttl: Duration,
    max_bytes: usize,
    items: Mutex<VecDeque<Stored>>,
}

impl UrlStore {
    pub fn new(ttl: Duration, max_bytes: usize) -> Self {
        Self {
            ttl,
            max_bytes,
            items: Mutex::new(VecDeque::new()),
        }
    }

    /// How long an image stays.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Keep image `index` of request `id`.
    pub fn put(&self, id: &str, index: usize, mime: &'static str, bytes: Arc<Vec<u8>>) {
        let mut items = self.items.lock().unwrap_or_else(|e| e.into_inner());
        items.push_back(Stored {
            id: id.to_string(),
            index,
            at: Instant::now(),
            mime,
            bytes,
        });
        let mut total: usize = items.iter().map(|s| s.bytes.len()).sum();
        while total > self.max_bytes && items.len() > 1 {
            if let Some(old) = items.pop_front() {
                total -= old.bytes.len();
            }
        }
    }

    /// Image `index` of request `id`, while it has not expired.
    pub fn get(&self, id: &str, index: usize) -> Option<(&'static str, Arc<Vec<u8>>)> {
        let mut items = self.items.lock().unwrap_or_else(|e| e.into_inner());
        let ttl = self.ttl;
        items.retain(|s| s.at.elapsed() < ttl);
        items
            .iter()
            .find(|s| s.id == id && s.index == index)
            .map(|s| (s.mime, s.bytes.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_expire_and_old_ones_go_first() {
        let s = UrlStore::new(Duration::from_secs(60), 10);
        s.put("a", 0, "image/png", Arc::new(vec![0; 6]));
        s.put("b", 0, "image/png", Arc::new(vec![0; 6]));
        assert!(s.get("a", 0).is_none());
        assert_eq!(s.get("b", 0).unwrap().1.len(), 6);
        assert!(s.get("b", 1).is_none());
        let gone = UrlStore::new(Duration::ZERO, 10);
        gone.put("a", 0, "image/png", Arc::new(vec![1]));
        assert!(gone.get("a", 0).is_none());
    }
}
