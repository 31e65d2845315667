//! The probe engine: answers "does this candidate exist?" for the tiers of a plan, probing a
//! wave's remote URLs in parallel, lazily and in order otherwise, and remembering every answer
//! (with the order it was asked in) for the resolution's log.

use std::collections::HashMap;

use crate::cache::CacheKey;
use crate::http::Answer;
use crate::plan::Tier;
use crate::resolver::Resolver;
use crate::source::Location;
use crate::sync::par_map;

/// Every answer of one resolution, by URL: (answer, attempts).
pub(crate) type Memo = HashMap<String, (Answer, u32)>;

impl Resolver {
    /// Probes every not-yet-known URL of a wave at once (each request takes a permit).
    pub(crate) fn prefetch(&self, wave: &[Tier], memo: &mut Memo, order: &mut Vec<String>) {
        let mut todo: Vec<(String, Location, Option<String>)> = Vec::new();
        for tier in wave {
            let s = &self.sources[tier.source];
            // Local checks are instant: only remote round trips are worth overlapping, and
            // probing local files lazily keeps their log to what decided the outcome.
            if s.base.is_local() {
                continue;
            }
            for name in &tier.names {
                let loc = s.base.join(name);
                let url = loc.url();
                if !memo.contains_key(&url) && !todo.iter().any(|(u, _, _)| *u == url) {
                    todo.push((url, loc, s.revision.clone()));
                }
            }
        }
        // One thread per URL: the shared semaphore, not the thread count, bounds the requests.
        let results = par_map(&todo, todo.len(), |(_, loc, rev)| {
            self.probe(loc, rev.as_deref())
        });
        for ((url, _, _), r) in todo.into_iter().zip(results) {
            order.push(url.clone());
            memo.insert(url, r);
        }
    }

    /// The names a tier yields, probing lazily in order (and stopping early) when not prefetched.
    /// Image: the first `Yes`, else the first `Unknown`. Video: all names, unless one is `No`.
    pub(crate) fn decide(
        &self,
        tier: &Tier,
        memo: &mut Memo,
        order: &mut Vec<String>,
    ) -> Option<(Vec<String>, bool)> {
        let s = &self.sources[tier.source];
        let mut answer = |name: &str| -> Answer {
            let loc = s.base.join(name);
            let url = loc.url();
            if let Some((a, _)) = memo.get(&url) {
                return *a;
            }
            let r = self.probe(&loc, s.revision.as_deref());
            order.push(url.clone());
            memo.insert(url, r);
            r.0
        };
        if tier.all_required {
            let mut via_unknown = false;
            for n in &tier.names {
                match answer(n) {
                    Answer::No => return None,
                    Answer::Unknown => via_unknown = true,
                    Answer::Yes => {}
                }
            }
            Some((tier.names.clone(), via_unknown))
        } else {
            let mut first_unknown = None;
            for n in &tier.names {
                match answer(n) {
                    Answer::Yes => return Some((vec![n.clone()], false)),
                    Answer::Unknown if first_unknown.is_none() => first_unknown = Some(n.clone()),
                    _ => {}
                }
            }
            first_unknown.map(|n| (vec![n], true))
        }
    }

    /// One existence check. Local files are checked directly; a remote file already in the
    /// verified cache (pinned, or any when offline) is a `Yes` without a request.
    pub(crate) fn probe(&self, loc: &Location, revision: Option<&str>) -> (Answer, u32) {
        match loc {
            Location::Local(p) => (if p.is_file() { Answer::Yes } else { Answer::No }, 1),
            Location::Remote(url) => {
                let key = CacheKey::new(url.clone(), revision.map(str::to_string));
                if (revision.is_some() || self.offline) && self.cache.get(&key).is_some() {
                    return (Answer::Yes, 0);
                }
                if self.offline {
                    return (Answer::No, 0);
                }
                let _permit = self.permits.acquire();
                self.http.probe(url)
            }
        }
    }
}
