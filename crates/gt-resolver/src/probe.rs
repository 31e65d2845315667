//! The probe engine: answers "does this candidate exist?" for the tiers of a plan, probing a
//! wave's remote URLs in parallel, lazily and in order otherwise, and remembering every answer
//! (with the order it was asked in) for the resolution's log.

use std::collections::HashMap;
use std::path::Path;

use crate::cache::{Cache, CacheKey};
use crate::http::{Answer, Http, Outcome};
use crate::listing::Lister;
use crate::plan::Tier;
use crate::resolution::Probe;
use crate::source::{Location, Source, SourceKind};
use crate::sync::par_map;

/// Why an offline probe of a remote file that is not cached has no answer.
pub(crate) const NOT_ASKED_OFFLINE: &str = "offline: not asked, not in the GT cache";

/// Answers existence: from a commit's file list, the verified cache, the folder, or HTTP.
#[derive(Debug)]
pub(crate) struct Prober {
    http: Http,
    cache: Cache,
    /// Remote answers come from the cache only.
    offline: bool,
    /// Probe a wave's remote URLs at once (more than one request may be in flight).
    parallel: bool,
}

/// The names a tier yielded, and whether an `Unknown` answer was taken as present on the way.
pub(crate) struct Choice {
    /// The source's index in the resolver's sources.
    pub(crate) source: usize,
    pub(crate) names: Vec<String>,
    pub(crate) via_unknown: bool,
}

impl Prober {
    pub(crate) fn new(http: Http, cache: Cache, offline: bool, parallel: bool) -> Self {
        Prober {
            http,
            cache,
            offline,
            parallel,
        }
    }

    /// One probe of `loc` without the cache or a file list (see [`crate::Resolver::exists`]).
    pub(crate) fn exists(&self, loc: &Location) -> Outcome {
        match loc {
            Location::Local(p) => local_outcome(p),
            Location::Remote(u) if !self.offline => self.http.probe(u),
            Location::Remote(_) => Outcome {
                answer: Answer::Unknown,
                attempts: 0,
                reason: "offline".into(),
            },
        }
    }

    /// The probing of one resolution, answering from `lister` where it can.
    pub(crate) fn session<'a>(&'a self, lister: &'a Lister) -> Probing<'a> {
        Probing {
            prober: self,
            lister,
            memo: Memo::default(),
        }
    }

    /// One existence check of `name` under source `src`: from the commit's file list when there
    /// is one; local files directly; a remote file already in the verified cache (pinned, or any
    /// when offline) is a `Yes` without a request; else an HTTP probe.
    fn probe(&self, lister: &Lister, src: usize, source: &Source, name: &str) -> Outcome {
        if let Some(listed) = lister.listed(src, name) {
            return listed;
        }
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
                    // Nothing was asked: "no" would be a claim about the GT host.
                    return Outcome {
                        answer: Answer::Unknown,
                        attempts: 0,
                        reason: NOT_ASKED_OFFLINE.into(),
                    };
                }
                self.http.probe(&url)
            }
        }
    }
}

/// Every answer of one resolution, by URL, and the order they were asked in.
#[derive(Debug, Default)]
struct Memo {
    answers: HashMap<String, (SourceKind, Outcome)>,
    order: Vec<String>,
}

impl Memo {
    fn get(&self, url: &str) -> Option<&Outcome> {
        self.answers.get(url).map(|(_, o)| o)
    }

    fn insert(&mut self, url: String, source: SourceKind, outcome: Outcome) {
        self.order.push(url.clone());
        self.answers.insert(url, (source, outcome));
    }
}

/// The probes of one resolution: each URL asked at most once, every answer kept for the log.
pub(crate) struct Probing<'a> {
    prober: &'a Prober,
    lister: &'a Lister,
    memo: Memo,
}

impl Probing<'_> {
    /// The first tier of `wave` that yields names (its remote URLs probed at once first, when
    /// the prober is parallel).
    pub(crate) fn choose(&mut self, wave: &[Tier<'_>]) -> Option<Choice> {
        if self.prober.parallel {
            self.prefetch(wave);
        }
        wave.iter().find_map(|tier| {
            let (names, via_unknown) = self.decide(tier)?;
            Some(Choice {
                source: tier.index,
                names,
                via_unknown,
            })
        })
    }

    /// The probe log, in the order the answers were asked for.
    pub(crate) fn probes(&self) -> Vec<Probe> {
        let memo = &self.memo;
        memo.order
            .iter()
            .filter_map(|url| {
                memo.answers.get(url).map(|(kind, o)| Probe {
                    url: url.clone(),
                    answer: o.answer,
                    attempts: o.attempts,
                    reason: o.reason.clone(),
                    source: Some(*kind),
                })
            })
            .collect()
    }

    /// One note per file of `names` under `source` that was taken on trust (only transient
    /// failures), so that a later failure is not a mystery.
    pub(crate) fn trust_notes(&self, source: &Source, names: &[String]) -> Vec<String> {
        names
            .iter()
            .filter_map(|name| {
                let url = source.base.join(name).url();
                let o = self.memo.get(&url)?;
                (o.answer == Answer::Unknown).then(|| {
                    format!(
                        "{url}: only transient failures ({}) after {} attempt(s); treated as present",
                        o.reason, o.attempts
                    )
                })
            })
            .collect()
    }

    /// Probes every not-yet-known URL of a wave at once (each request takes a permit).
    fn prefetch(&mut self, wave: &[Tier<'_>]) {
        let mut todo: Vec<(String, &Tier<'_>, &str)> = Vec::new();
        for tier in wave {
            // Local checks are instant: only remote round trips are worth overlapping, and
            // probing local files lazily keeps their log to what decided the outcome.
            if tier.source.base.is_local() {
                continue;
            }
            for name in &tier.names {
                let url = tier.source.base.join(name).url();
                if self.memo.get(&url).is_none() && !todo.iter().any(|(u, _, _)| *u == url) {
                    todo.push((url, tier, name));
                }
            }
        }
        // One thread per URL: the shared semaphore, not the thread count, bounds the requests.
        let results = par_map(&todo, todo.len(), |(_, tier, name)| {
            self.prober
                .probe(self.lister, tier.index, tier.source, name)
        });
        for ((url, tier, _), r) in todo.into_iter().zip(results) {
            self.memo.insert(url, tier.source.kind, r);
        }
    }

    /// The names a tier yields, probing lazily in order (and stopping early) when not prefetched,
    /// and whether an `Unknown` answer was taken as present on the way.
    /// Image: the first `Yes`, else the first `Unknown`. Video: all names, unless one is `No`.
    fn decide(&mut self, tier: &Tier<'_>) -> Option<(Vec<String>, bool)> {
        // Offline, an unknown was never asked: there is no doubt to give the benefit of.
        let trust_unknown = !self.prober.offline;
        let mut answer = |name: &str| -> Answer {
            let url = tier.source.base.join(name).url();
            if let Some(o) = self.memo.get(&url) {
                return o.answer;
            }
            let r = self
                .prober
                .probe(self.lister, tier.index, tier.source, name);
            let a = r.answer;
            self.memo.insert(url, tier.source.kind, r);
            a
        };
        if tier.all_required {
            let mut via_unknown = false;
            for n in &tier.names {
                match answer(n) {
                    Answer::No => return None,
                    Answer::Unknown if !trust_unknown => return None,
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
                    Answer::Unknown if trust_unknown && first_unknown.is_none() => {
                        first_unknown = Some(n.clone())
                    }
                    _ => {}
                }
            }
            first_unknown.map(|n| (vec![n], true))
        }
    }
}

/// A local file exists or not: one look, no retry.
fn local_outcome(p: &Path) -> Outcome {
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
