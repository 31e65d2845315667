//! The resolver: sources × candidates → the GT files to use, with a log of every probe.
//!
//! [`Resolver`] composes owned parts and drives a resolution through them: the
//! [`Planner`] decides what to try in which order, the [`Lister`] answers existence from commit
//! file lists, the [`Prober`] answers the rest, the [`Downloader`] fills the cache and the
//! [`RecordStore`] remembers definitive resolutions. [`ResolverBuilder`] holds the configuration.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::cache::{Cache, CacheKey};
use crate::download::{Downloader, Verifier};
use crate::error::Error;
use crate::http::{Answer, Backoff, Http};
use crate::limits;
use crate::listing::{GithubApi, Lister};
use crate::naming::GtQuery;
use crate::plan::{Fetchers, Planner};
use crate::probe::{Choice, Prober};
use crate::record::RecordStore;
use crate::resolution::{GtFile, Probe, Resolution};
use crate::source::{
    GT_DIR_ENV, GtRoot, Location, Source, SourceKind, check_folder, override_sources,
};
use crate::sync::par_map;

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
    verifier: Verifier,
    max_bytes: Option<u64>,
    download_deadline: Option<Duration>,
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
            verifier: Verifier::default(),
            max_bytes: None,
            download_deadline: None,
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
    /// number of attempts can be set with [`crate::ATTEMPTS_ENV`]).
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

    /// The GitHub API base for tree listings (default: [`crate::GITHUB_API_ENV`], else
    /// [`crate::GITHUB_API`]). Raw URLs on this API's host are recognised as well as
    /// raw.githubusercontent.com ones, so one loopback server can emulate both in tests.
    pub fn github_api(mut self, base: impl Into<String>) -> Self {
        self.github_api = Some(base.into());
        self
    }

    /// The token sent to the GitHub API (default: [`crate::GITHUB_TOKEN_ENV`], if set).
    pub fn github_token(mut self, token: Option<String>) -> Self {
        self.github_token = token;
        self
    }

    /// A check of every downloaded file, run before it is renamed into the cache and on every
    /// cached copy served: `check(url, file)` gives `Ok(())` to accept, or why not. A refused
    /// download is retried like a truncated one and never cached; a refused cached copy is removed
    /// (and downloaded again when online). E.g. that an image decodes as the kind its name says:
    /// a 200 with an HTML error page, or a body cut short without a `Content-Length`, is whole as
    /// far as HTTP can tell. Default: none (every whole body is kept).
    pub fn verify(
        mut self,
        check: impl Fn(&str, &Path) -> Result<(), String> + Send + Sync + 'static,
    ) -> Self {
        self.verifier = Verifier::new(Arc::new(check));
        self
    }

    /// The largest file downloaded, in bytes (default: [`crate::MAX_BYTES_ENV`], else
    /// [`crate::DEFAULT_MAX_BYTES`]). A larger body fails at once and is never cached.
    pub fn max_download_bytes(mut self, bytes: u64) -> Self {
        self.max_bytes = Some(bytes.max(1));
        self
    }

    /// The longest one download may take, every attempt and sleep included (default:
    /// [`crate::DEADLINE_ENV`], else [`crate::DEFAULT_DOWNLOAD_DEADLINE`]): a server that sends
    /// a byte every few seconds never trips the per-read [`ResolverBuilder::timeout`].
    pub fn download_deadline(mut self, deadline: Duration) -> Self {
        self.download_deadline = Some(deadline);
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
                let sources = override_sources(dir)?;
                notes.push(format!(
                    "{GT_DIR_ENV}={} replaces remote lookup",
                    dir.display()
                ));
                sources
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
        let mut warnings = Vec::new();
        let backoff = self.backoff.unwrap_or_else(|| {
            let mut b = Backoff::default();
            if let Some(n) = limits::attempts_from_env(&mut warnings) {
                b.attempts = n;
            }
            b
        });
        let download_limits =
            limits::download_limits(self.max_bytes, self.download_deadline, &mut warnings);
        let http = Http::new(self.timeout, backoff, self.max_in_flight);
        let github = self
            .tree_listing
            .then(|| GithubApi::new(self.github_api, self.github_token));
        let offline = self.offline;
        Ok(Resolver {
            lister: Lister::new(http.clone(), cache.clone(), offline, github, &sources),
            prober: Prober::new(http.clone(), cache.clone(), offline, self.max_in_flight > 1),
            downloader: Downloader::new(
                (http, cache.clone()),
                (offline, self.progress),
                self.verifier,
                download_limits,
            ),
            records: RecordStore::new(cache, &sources),
            planner: Planner::new(sources, self.forced_ours),
            offline,
            max_in_flight: self.max_in_flight,
            global_notes: notes,
            warnings,
        })
    }
}

/// Finds GT files for consistency cases. Cheap to share across threads (`&Resolver` is `Sync`).
#[derive(Debug)]
pub struct Resolver {
    /// The sources, and which of them may hold a case in which order.
    planner: Planner,
    /// Existence from pinned commits' file lists.
    lister: Lister,
    /// Existence from the cache, local folders or HTTP.
    prober: Prober,
    /// Files into the verified cache.
    downloader: Downloader,
    /// Definitive resolutions kept for warm runs.
    records: RecordStore,
    offline: bool,
    max_in_flight: usize,
    /// Notes every resolution starts with (the local override).
    global_notes: Vec<String>,
    /// Settings from the environment that were ignored, added to every resolution's notes.
    warnings: Vec<String>,
}

impl Resolver {
    /// A builder with upstream's defaults.
    pub fn builder() -> ResolverBuilder {
        ResolverBuilder::default()
    }

    /// The sources in priority order.
    pub fn sources(&self) -> &[Source] {
        self.planner.sources()
    }

    /// The disk cache.
    pub fn cache(&self) -> &Cache {
        self.downloader.cache()
    }

    /// Settings from the environment that could not be used and were ignored (e.g.
    /// `GT_RESOLVER_ATTEMPTS=abc`): worth a warning. Every resolution's notes end with them.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Resolves one query. A query no source satisfies gives `source: None` (see
    /// [`Resolution::into_found`]); errors are reserved for invalid input, local I/O failures, and
    /// an official case map that could not be read when no other source has the GT
    /// ([`Error::CaseMapUnavailable`]: "missing" could not be told from "not judged").
    pub fn resolve(&self, query: &GtQuery) -> Result<Resolution, Error> {
        query.validate()?;
        let record_key = self.records.key(query, self.planner.is_forced(&query.case));
        if let Some(mut recorded) = record_key.as_ref().and_then(|k| self.records.load(k)) {
            recorded.notes.extend(self.warnings.iter().cloned());
            return Ok(recorded);
        }
        let mut resolution = self.resolve_fresh(query, record_key.as_ref())?;
        resolution.notes.extend(self.warnings.iter().cloned());
        Ok(resolution)
    }

    /// [`Resolver::resolve`] by asking the sources; a definitive answer is recorded under
    /// `record_key`.
    fn resolve_fresh(
        &self,
        query: &GtQuery,
        record_key: Option<&CacheKey>,
    ) -> Result<Resolution, Error> {
        let mut notes = self.global_notes.clone();
        if self.offline {
            notes.push("offline: remote answers come from the cache only".into());
        }
        let fetchers = Fetchers {
            lister: &self.lister,
            downloader: &self.downloader,
        };
        let (waves, planned_definitively) = self.planner.plan(query, &mut notes, fetchers);
        let mut probing = self.prober.session(&self.lister);
        let chosen = waves.iter().find_map(|wave| probing.choose(wave));
        let sources = self.planner.sources();
        if let Some(c) = &chosen
            && sources[c.source].kind == SourceKind::Legacy
        {
            notes.push(format!(
                "no official or sglang GT for {}: falling back to legacy GT at {}",
                query.case,
                sources[c.source].base.url()
            ));
        }
        notes.extend(self.lister.notes());
        let probes = probing.probes();
        let definitive = planned_definitively
            && probes.iter().all(|p| p.answer != Answer::Unknown)
            && !self.offline;
        let mut resolution = Resolution {
            case: query.case.clone(),
            source: None,
            files: Vec::new(),
            probes,
            notes,
            revision: self.planner.revision(),
        };
        let Some(Choice {
            source,
            names,
            via_unknown,
        }) = chosen
        else {
            // Official GT was not judged (its case map could not be read): "missing" would be a
            // guess, and a false "GT not found" is what this crate exists to prevent.
            if !definitive && let Some(reason) = self.planner.unavailable_case_map() {
                return Err(Error::CaseMapUnavailable {
                    case: query.case.clone(),
                    reason,
                });
            }
            resolution
                .notes
                .push(format!("no source holds GT for {}", query.case));
            return Ok(resolution);
        };
        let source = &sources[source];
        if via_unknown {
            resolution.notes.extend(probing.trust_notes(source, &names));
        }
        resolution.source = Some(source.kind);
        resolution.files = names.iter().map(|n| GtFile::in_source(source, n)).collect();
        if definitive && let Some(key) = record_key {
            self.records.store(key, &resolution);
        }
        Ok(resolution)
    }

    /// Probes one URL or path as the resolver would (each attempt a HEAD then a ranged GET,
    /// retried with backoff), without consulting the cache or a tree listing.
    pub fn exists(&self, url: &str) -> Result<Probe, Error> {
        let loc = Location::parse(url)?;
        let outcome = self.prober.exists(&loc);
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
        self.downloader.fetch(file)
    }

    /// The local path of any file named by an http(s) URL, a `file://` URL or a plain path —
    /// e.g. a consistency case's input image — through the same verified cache, retries and
    /// offline rules as GT files ([`Resolver::fetch`] of an unpinned URL: downloaded again when
    /// online, served from the cache when offline). A local file is returned as it is.
    pub fn fetch_url(&self, url: &str) -> Result<PathBuf, Error> {
        self.downloader.fetch_url(url)
    }
}
