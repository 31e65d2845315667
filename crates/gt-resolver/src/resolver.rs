//! The resolver: sources × candidates → the GT files to use, with a log of every probe.

//!
//! The work is split by job: [`crate::plan`] decides what to try in which order,
//! [`crate::probe`] answers existence, [`crate::download`] fills the cache, [`crate::record`]
//! remembers definitive resolutions; this module holds the configuration and drives them.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use crate::Error;
use crate::cache::{Cache, CacheKey, Lookup};
use crate::http::{Answer, Backoff, Http, Outcome};
use crate::listing::{GITHUB_API_ENV, GITHUB_TOKEN_ENV, GithubApi, SourceTree, Tree, plan_trees};
use crate::naming::GtQuery;
use crate::plan::CaseMap;
use crate::probe::{Memo, local_outcome};
use crate::resolution::{GtFile, Probe, Resolution};
use crate::source::{GtRoot, Location, Source, SourceKind};
use crate::sync::{Semaphore, par_map};

/// Environment variable naming a local GT folder that replaces remote lookup, as upstream.
pub const GT_DIR_ENV: &str = "SGLANG_CONSISTENCY_GT_DIR";

/// Environment variable setting how many attempts a probe or download makes (1 to 10; default
/// 5, as upstream). Lowering it shortens the wait for an unreachable GT host.
pub const ATTEMPTS_ENV: &str = "GT_RESOLVER_ATTEMPTS";

/// Cases that always use our GT, whatever official_generated holds. Upstream quarantines these
/// because their official references need regeneration or parity triage
/// (`OFFICIAL_CONSISTENCY_GT_SKIP_CASES`).
pub const DEFAULT_FORCED_OURS: &[&str] = &[
    "ltx_2_3_hq_pipeline",
    "ltx_2_two_stage_t2v",
    "qwen_image_edit_2509_ti2i",
];

/// Configures a [`Resolver`]. Start from [`Resolver::builder`].
#[derive(Debug, Clone)]
pub struct ResolverBuilder {
    sources: Vec<Source>,
    /// Local GT roots given with [`ResolverBuilder::root`]: they must be folders.
    local_roots: Vec<PathBuf>,
    local_override: Option<PathBuf>,
    forced_ours: Vec<String>,
    backoff: Option<Backoff>,
    timeout: Duration,
    max_in_flight: usize,
    cache_dir: Option<PathBuf>,
    offline: bool,
    progress: bool,
    tree_listing: bool,
    github_api: Option<String>,
    github_token: Option<String>,
}

impl Default for ResolverBuilder {
    fn default() -> Self {
        ResolverBuilder {
            sources: Vec::new(),
            local_roots: Vec::new(),
            local_override: None,
            forced_ours: DEFAULT_FORCED_OURS.iter().map(|s| s.to_string()).collect(),
            backoff: None,
            timeout: Duration::from_secs(30),
            max_in_flight: 32,
            cache_dir: None,
            offline: false,
            progress: true,
            tree_listing: true,
            github_api: None,
            github_token: None,
        }
    }
}

impl ResolverBuilder {
    /// Uses `ROOT/official_generated`, `ROOT/sglang_generated` and `ROOT` (legacy), in that order.
    /// A local root must be an existing folder ([`ResolverBuilder::build`] checks).
    pub fn root(mut self, root: &GtRoot) -> Self {
        if let Location::Local(dir) = &root.base {
            self.local_roots.push(dir.clone());
        }
        self.sources.extend(root.sources());
        self
    }

    /// Appends one source (sources are tried in the order added, legacy ones last).
    pub fn source(mut self, source: Source) -> Self {
        self.sources.push(source);
        self
    }

    /// A local GT folder that replaces every other source (upstream's [`GT_DIR_ENV`]). A folder
    /// holding `official_generated/` or `sglang_generated/` is read as a GT root; any other folder
    /// as one flat folder of our GT.
    pub fn local_override(mut self, dir: Option<PathBuf>) -> Self {
        self.local_override = dir;
        self
    }

    /// Replaces the list of case ids that always use our GT (default: [`DEFAULT_FORCED_OURS`]).
    pub fn forced_ours<I, S>(mut self, cases: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.forced_ours = cases.into_iter().map(Into::into).collect();
        self
    }

    /// Retry schedule for probes and downloads (default: 5 attempts, 1-2-4-8 s, cap 16 s; the
    /// number of attempts can be set with [`ATTEMPTS_ENV`]).
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = Some(backoff);
        self
    }

    /// Time limit of each phase of one HTTP exchange: connecting, waiting for the response
    /// headers, and each read of the body (default 30 s, as upstream's probe).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Most HTTP requests in flight at once, and most cases resolved at once (default 32).
    /// 1 probes one URL after another and stops at the first decisive answer.
    pub fn max_in_flight(mut self, n: usize) -> Self {
        self.max_in_flight = n.max(1);
        self
    }

    /// Cache folder (default: [`Cache::default_dir`]).
    pub fn cache_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cache_dir = Some(dir.into());
        self
    }

    /// Serve remote files only from the cache; local folders still work.
    pub fn offline(mut self, offline: bool) -> Self {
        self.offline = offline;
        self
    }

    /// Show a progress bar for large downloads (default on; hidden when stderr is not a terminal).
    pub fn progress(mut self, on: bool) -> Self {
        self.progress = on;
        self
    }

    /// Answer existence from the pinned commit's file list when the GT root is a raw GitHub URL
    /// pinned to a commit (default on; see the crate docs). Off: every candidate is probed.
    pub fn tree_listing(mut self, on: bool) -> Self {
        self.tree_listing = on;
        self
    }

    /// The GitHub API base for tree listings (default: [`GITHUB_API_ENV`], else
    /// [`crate::GITHUB_API`]). Raw URLs on this API's host are recognised as well as
    /// raw.githubusercontent.com ones, so one loopback server can emulate both in tests.
    pub fn github_api(mut self, base: impl Into<String>) -> Self {
        self.github_api = Some(base.into());
        self
    }

    /// The token sent to the GitHub API (default: [`GITHUB_TOKEN_ENV`], if set).
    pub fn github_token(mut self, token: Option<String>) -> Self {
        self.github_token = token;
        self
    }

    /// Checks that local GT roots (and the local override) are folders, opens the cache and
    /// builds the resolver. A missing root is an error here rather than a "GT not found" for
    /// every case later: the run could not look anywhere.
    pub fn build(self) -> Result<Resolver, Error> {
        self.build_inner(true)
    }

    /// A resolver that may have no GT source at all, for [`Resolver::fetch_url`] alone (e.g. a
    /// case's input images when no GT is looked up): this builder's cache, retries, timeout and
    /// offline switch. Sources that were given still work as with [`ResolverBuilder::build`].
    pub fn build_for_downloads(self) -> Result<Resolver, Error> {
        self.build_inner(false)
    }

    fn build_inner(self, need_sources: bool) -> Result<Resolver, Error> {
        let mut notes = Vec::new();
        let sources = match &self.local_override {
            Some(dir) => {
                check_folder(dir)?;
                notes.push(format!(
                    "{GT_DIR_ENV}={} replaces remote lookup",
                    dir.display()
                ));
                let is_root = dir.join("official_generated").is_dir()
                    || dir.join("sglang_generated").is_dir();
                if is_root {
                    GtRoot {
                        base: Location::Local(dir.clone()),
                        revision: None,
                    }
                    .sources()
                } else {
                    vec![Source::new(
                        SourceKind::Sglang,
                        Location::Local(dir.clone()),
                    )]
                }
            }
            None => {
                for dir in &self.local_roots {
                    check_folder(dir)?;
                }
                self.sources
            }
        };
        if sources.is_empty() && need_sources {
            return Err(Error::InvalidLocation {
                input: String::new(),
                reason: "no GT sources configured (give a GT root or sources)".into(),
            });
        }
        let cache_dir = match self.cache_dir {
            Some(d) => d,
            None => Cache::default_dir()?,
        };
        let cache = Cache::open(cache_dir)?;
        let case_maps = sources.iter().map(|_| OnceLock::new()).collect();
        let env = |name: &str| std::env::var(name).ok();
        let github = GithubApi::new(
            self.github_api.or_else(|| env(GITHUB_API_ENV)),
            self.github_token.or_else(|| env(GITHUB_TOKEN_ENV)),
        );
        let (trees, source_trees) = if self.tree_listing {
            plan_trees(&github, &sources)
        } else {
            (Vec::new(), vec![None; sources.len()])
        };
        Ok(Resolver {
            http: Http::new(self.timeout, self.backoff.unwrap_or_else(backoff_from_env)),
            sources,
            forced_ours: self.forced_ours.into_iter().collect(),
            cache,
            offline: self.offline,
            progress: self.progress,
            max_in_flight: self.max_in_flight,
            permits: Semaphore::new(self.max_in_flight),
            case_maps,
            github,
            trees,
            source_trees,
            global_notes: notes,
        })
    }
}

/// Finds GT files for consistency cases. Cheap to share across threads (`&Resolver` is `Sync`).
#[derive(Debug)]
pub struct Resolver {
    pub(crate) http: Http,
    pub(crate) sources: Vec<Source>,
    pub(crate) forced_ours: HashSet<String>,
    pub(crate) cache: Cache,
    pub(crate) offline: bool,
    pub(crate) progress: bool,
    pub(crate) max_in_flight: usize,
    /// One permit per HTTP request in flight, shared by every thread of this resolver.
    pub(crate) permits: Semaphore,
    /// The official sources' case maps, loaded at most once (indexed like `sources`).
    pub(crate) case_maps: Vec<OnceLock<CaseMap>>,
    /// The GitHub API that lists pinned commits.
    pub(crate) github: GithubApi,
    /// The commits whose file lists may answer existence, each loaded at most once.
    pub(crate) trees: Vec<Tree>,
    /// Where each source sits in `trees` (indexed like `sources`; `None`: probed).
    pub(crate) source_trees: Vec<Option<SourceTree>>,
    global_notes: Vec<String>,
}

impl Resolver {
    /// A builder with upstream's defaults.
    pub fn builder() -> ResolverBuilder {
        ResolverBuilder::default()
    }

    /// The sources in priority order.
    pub fn sources(&self) -> &[Source] {
        &self.sources
    }

    /// The disk cache.
    pub fn cache(&self) -> &Cache {
        &self.cache
    }

    /// Resolves one query. A query no source satisfies gives `source: None` (see
    /// [`Resolution::into_found`]); errors are reserved for invalid input, local I/O failures, and
    /// an official case map that could not be read when no other source has the GT
    /// ([`Error::CaseMapUnavailable`]: "missing" could not be told from "not judged").
    pub fn resolve(&self, query: &GtQuery) -> Result<Resolution, Error> {
        query.validate()?;
        let mut notes = self.global_notes.clone();
        let record_key = self.record_key(query);
        if let Some(key) = &record_key
            && let Some(mut r) = self.load_record(key)
        {
            r.notes.push(
                "resolution served from the on-disk cache (pinned revision; no network request); \
                 probes are those recorded when it was first resolved"
                    .into(),
            );
            return Ok(r);
        }
        if self.offline {
            notes.push("offline: remote answers come from the cache only".into());
        }

        let (waves, mut definitive) = self.plan(query, &mut notes);
        let mut memo = Memo::default();
        let mut chosen: Option<(usize, Vec<String>, bool)> = None;

        'outer: for wave in &waves {
            if self.max_in_flight > 1 {
                self.prefetch(wave, &mut memo);
            }
            for tier in wave {
                if let Some((names, via_unknown)) = self.decide(tier, &mut memo) {
                    if self.sources[tier.source].kind == SourceKind::Legacy {
                        notes.push(format!(
                            "no official or sglang GT for {}: falling back to legacy GT at {}",
                            query.case,
                            self.sources[tier.source].base.url()
                        ));
                    }
                    chosen = Some((tier.source, names, via_unknown));
                    break 'outer;
                }
            }
        }

        notes.extend(self.tree_notes());
        let probes = memo.probes(self);
        definitive &= probes.iter().all(|p| p.answer != Answer::Unknown);
        if self.offline {
            definitive = false;
        }
        let revision = self.sources.iter().find_map(|s| s.revision.clone());

        let Some((src, names, via_unknown)) = chosen else {
            // Official GT was not judged (its case map could not be read): "missing" would be a
            // guess, and a false "GT not found" is what this crate exists to prevent.
            if !definitive && let Some(reason) = self.unavailable_case_map() {
                return Err(Error::CaseMapUnavailable {
                    case: query.case.clone(),
                    reason,
                });
            }
            notes.push(format!("no source holds GT for {}", query.case));
            return Ok(Resolution {
                case: query.case.clone(),
                source: None,
                files: Vec::new(),
                probes,
                notes,
                revision,
            });
        };
        let source = &self.sources[src];
        if via_unknown {
            // Say which files were taken on trust, so a later failure is not a mystery.
            for name in &names {
                let url = source.base.join(name).url();
                if let Some(o) = memo.get(&url)
                    && o.answer == Answer::Unknown
                {
                    notes.push(format!(
                        "{url}: only transient failures ({}) after {} attempt(s); treated as present",
                        o.reason, o.attempts
                    ));
                }
            }
        }
        let files = names
            .iter()
            .map(|name| {
                let loc = source.base.join(name);
                GtFile {
                    name: name.clone(),
                    url: loc.url(),
                    local_path: match loc {
                        Location::Local(p) => Some(p),
                        Location::Remote(_) => None,
                    },
                    revision: source.revision.clone(),
                }
            })
            .collect();
        let resolution = Resolution {
            case: query.case.clone(),
            source: Some(source.kind),
            files,
            probes,
            notes,
            revision,
        };
        if definitive && let Some(key) = &record_key {
            self.store_record(key, &resolution);
        }
        Ok(resolution)
    }

    /// Probes one URL or path as the resolver would (each attempt a HEAD then a ranged GET,
    /// retried with backoff), without consulting the cache or a tree listing.
    pub fn exists(&self, url: &str) -> Result<Probe, Error> {
        let loc = Location::parse(url)?;
        let outcome = match &loc {
            Location::Local(p) => local_outcome(p),
            Location::Remote(u) if !self.offline => {
                let _permit = self.permits.acquire();
                self.http.probe(u)
            }
            Location::Remote(_) => Outcome {
                answer: Answer::Unknown,
                attempts: 0,
                reason: "offline".into(),
            },
        };
        Ok(Probe {
            url: loc.url(),
            answer: outcome.answer,
            attempts: outcome.attempts,
            reason: outcome.reason,
            source: None,
        })
    }

    /// Resolves many queries in parallel (bounded by `max_in_flight`); results are in input order.
    pub fn resolve_many(&self, queries: &[GtQuery]) -> Vec<Result<Resolution, Error>> {
        par_map(queries, self.max_in_flight, |q| self.resolve(q))
    }

    /// The local path of `file`: local files as they are, remote ones through the verified cache
    /// (downloaded with retries when missing or corrupt).
    pub fn fetch(&self, file: &GtFile) -> Result<PathBuf, Error> {
        if let Some(p) = &file.local_path {
            return if p.is_file() {
                Ok(p.clone())
            } else {
                Err(Error::io(p, std::io::ErrorKind::NotFound.into()))
            };
        }
        let key = CacheKey::new(&file.url, file.revision.clone());
        if file.revision.is_some() || self.offline {
            match self.cache.lookup(&key) {
                Lookup::Hit(p) => return Ok(p),
                // Online, a corrupt copy is simply downloaded again below.
                Lookup::Corrupt(path) if self.offline => {
                    return Err(Error::CorruptCache {
                        url: file.url.clone(),
                        path,
                    });
                }
                Lookup::Corrupt(_) | Lookup::Miss => {}
            }
        }
        if self.offline {
            return Err(Error::OfflineMiss {
                url: file.url.clone(),
                cache: self.cache.root().to_path_buf(),
            });
        }
        self.download(&key)
    }
}

/// Upstream's schedule, with the number of attempts from [`ATTEMPTS_ENV`] when it is a number
/// from 1 to 10 (anything else is ignored: a typo must not turn retries off).
fn backoff_from_env() -> Backoff {
    let mut b = Backoff::default();
    if let Some(n) = std::env::var(ATTEMPTS_ENV)
        .ok()
        .and_then(|v| v.trim().parse::<u32>().ok())
        .filter(|n| (1..=10).contains(n))
    {
        b.attempts = n;
    }
    b
}

/// A local GT root must be an existing folder.
fn check_folder(dir: &Path) -> Result<(), Error> {
    let reason = match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => return Ok(()),
        Ok(_) => "it is a file, not a folder".to_string(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => "no such folder".to_string(),
        Err(e) => e.to_string(),
    };
    Err(Error::InvalidLocation {
        input: dir.display().to_string(),
        reason: format!("{reason} (a GT root holds official_generated/ and sglang_generated/)"),
    })
}

/// The local GT folder from [`GT_DIR_ENV`], if set and non-empty.
pub fn gt_dir_from_env() -> Option<PathBuf> {
    std::env::var_os(GT_DIR_ENV)
        .filter(|v| !v.is_empty())
        .map(|v| std::path::absolute(Path::new(&v)).unwrap_or_else(|_| PathBuf::from(v)))
}
