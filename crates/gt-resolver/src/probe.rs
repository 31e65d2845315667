//! The probe engine: answers "does this candidate exist?" for the tiers of a plan, probing a
//! wave's remote URLs in parallel, lazily and in order otherwise, and remembering every answer
//! (with the order it was asked in) for the resolution's log.

use std::collections::HashMap;

use crate::cache::CacheKey;
use crate::http::{Answer, Outcome};
use crate::plan::Tier;
use crate::resolution::Probe;
use crate::resolver::Resolver;
use crate::source::Location;
use crate::sync::par_map;

/// Every answer of one resolution, by URL, and the order they were asked in.
#[derive(Debug, Default)]
pub(crate) struct Memo {
    answers: HashMap<String, (usize, Outcome)>,
    order: Vec<String>,
}

impl Memo {
    /// The answer already known for `url`.
    pub(crate) fn get(&self, url: &str) -> Option<&Outcome> {
        self.answers.get(url).map(|(_, o)| o)
    }

    fn insert(&mut self, url: String, source: usize, outcome: Outcome) {
        self.order.push(url.clone());
        self.answers.insert(url, (source, outcome));
    }

    /// The probe log, in the order the answers were asked for.
    pub(crate) fn probes(&self, resolver: &Resolver) -> Vec<Probe> {
        self.order
            .iter()
            .filter_map(|url| {
                self.answers.get(url).map(|(src, o)| Probe {
                    url: url.clone(),
                    answer: o.answer,
                    attempts: o.attempts,
                    reason: o.reason.clone(),
                    source: resolver.sources.get(*src).map(|s| s.kind),
                })
            })
            .collect()
    }
}

impl Resolver {
    /// Probes every not-yet-known URL of a wave at once (each request takes a permit).
    pub(crate) fn prefetch(&self, wave: &[Tier], memo: &mut Memo) {
        let mut todo: Vec<(String, usize, &str)> = Vec::new();
        for tier in wave {
            let s = &self.sources[tier.source];
            // Local checks are instant: only remote round trips are worth overlapping, and
            // probing local files lazily keeps their log to what decided the outcome.
            if s.base.is_local() {
                continue;
            }
            for name in &tier.names {
                let url = s.base.join(name).url();
                if memo.get(&url).is_none() && !todo.iter().any(|(u, _, _)| *u == url) {
                    todo.push((url, tier.source, name));
                }
            }
        }
        // One thread per URL: the shared semaphore, not the thread count, bounds the requests.
        let results = par_map(&todo, todo.len(), |(_, src, name)| self.probe(*src, name));
        for ((url, src, _), r) in todo.into_iter().zip(results) {
            memo.insert(url, src, r);
        }
    }

    /// The names a tier yields, probing lazily in order (and stopping early) when not prefetched,
    /// and whether an `Unknown` answer was taken as present on the way.
    /// Image: the first `Yes`, else the first `Unknown`. Video: all names, unless one is `No`.
    pub(crate) fn decide(&self, tier: &Tier, memo: &mut Memo) -> Option<(Vec<String>, bool)> {
        let s = &self.sources[tier.source];
        let mut answer = |name: &str| -> Answer {
            let url = s.base.join(name).url();
            if let Some(o) = memo.get(&url) {
                return o.answer;
            }
            let r = self.probe(tier.source, name);
            let a = r.answer;
            memo.insert(url, tier.source, r);
            a
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

    /// One existence check of `name` under source `src`: from the commit's file list when there
    /// is one; local files directly; a remote file already in the verified cache (pinned, or any
    /// when offline) is a `Yes` without a request; else an HTTP probe.
    pub(crate) fn probe(&self, src: usize, name: &str) -> Outcome {
        if let Some(listed) = self.listed(src, name) {
            return listed;
        }
        let source = &self.sources[src];
        match source.base.join(name) {
            Location::Local(p) => local_outcome(&p),
            Location::Remote(url) => {
                let key = CacheKey::new(url.clone(), source.revision.clone());
                if (source.revision.is_some() || self.offline) && self.cache.get(&key).is_some() {
                    return Outcome {
                        answer: Answer::Yes,
                        attempts: 0,
                        reason: "in the verified cache".into(),
                    };
                }
                if self.offline {
                    return Outcome {
                        answer: Answer::No,
                        attempts: 0,
                        reason: "offline and not in the cache".into(),
                    };
                }
                let _permit = self.permits.acquire();
                self.http.probe(&url)
            }
        }
    }
}

/// A local file exists or not: one look, no retry.
pub(crate) fn local_outcome(p: &std::path::Path) -> Outcome {
    let (answer, reason) = if p.is_file() {
        (Answer::Yes, "file exists")
    } else {
        (Answer::No, "no such file")
    };
    Outcome {
        answer,
        attempts: 1,
        reason: reason.into(),
    }
}
