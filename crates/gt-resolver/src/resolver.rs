//! The resolver: sources × candidates → the GT files to use, with a log of every probe.

use std::cell::OnceCell;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, OnceLock};
use std::thread;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::Error;
use crate::cache::{Cache, CacheKey, Lookup, sha256_hex};
use crate::http::{Answer, Backoff, Failure, Http};
use crate::naming::{GtKind, GtQuery};
use crate::source::{GtRoot, Location, Source, SourceKind};

/// Environment variable naming a local GT folder that replaces remote lookup, as upstream.
pub const GT_DIR_ENV: &str = "SGLANG_CONSISTENCY_GT_DIR";

/// Cases that always use our GT, whatever official_generated holds. Upstream quarantines these
/// because their official references need regeneration or parity triage
/// (`OFFICIAL_CONSISTENCY_GT_SKIP_CASES`).
pub const DEFAULT_FORCED_OURS: &[&str] = &[
    "ltx_2_3_hq_pipeline",
    "ltx_2_two_stage_t2v",
    "qwen_image_edit_2509_ti2i",
];

/// Files larger than this get a progress bar (when stderr is a terminal).
const PROGRESS_MIN_BYTES: u64 = 8 * 1024 * 1024;

/// One GT file chosen by the resolver.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GtFile {
    /// Name relative to the source base, e.g. `h100/qwen_image_t2i_1gpu.png`.
    pub name: String,
    /// Full URL (`file://` for a local source).
    pub url: String,
    /// Set when the file is already on disk (local source).
    pub local_path: Option<PathBuf>,
    /// Pinned revision of the tree the URL belongs to (part of the cache key).
    pub revision: Option<String>,
}

/// One existence check, in the order the resolver consulted them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Probe {
    /// The URL probed (`file://` for local sources).
    pub url: String,
    /// What the probe concluded.
    pub answer: Answer,
    /// HTTP attempts made (0: answered from the cache; 1 for a local file).
    pub attempts: u32,
}

/// The outcome of resolving one [`GtQuery`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resolution {
    /// The case id.
    pub case: String,
    /// Which source the files come from; `None` when no source has them.
    pub source: Option<SourceKind>,
    /// The files (one image, or the three video frames), in order.
    pub files: Vec<GtFile>,
    /// Every probe consulted, in lookup order.
    pub probes: Vec<Probe>,
    /// Human-readable decisions: skipped sources, unknown answers treated as present, fallbacks.
    pub notes: Vec<String>,
    /// The pinned revision of the GT tree, if any.
    pub revision: Option<String>,
}

impl Resolution {
    /// True when a source holds the GT.
    pub fn is_found(&self) -> bool {
        self.source.is_some()
    }

    /// `self` if found, else [`Error::NotFound`] naming every URL tried, the revision and what to do.
    pub fn into_found(self, query: &GtQuery) -> Result<Self, Error> {
        if self.is_found() {
            return Ok(self);
        }
        Err(Error::NotFound {
            case: query.case.clone(),
            num_gpus: query.num_gpus,
            platform: query.platform.to_string(),
            revision: self.revision.clone(),
            tried: self
                .probes
                .iter()
                .map(|p| format!("{} ({})", p.url, p.answer.as_str()))
                .collect(),
            hint: missing_gt_hint(query, self.revision.as_deref()),
        })
    }

    /// The `gt resolve --json` document, keys in contract order:
    /// `{"source": "official"|"sglang"|"legacy"|"none", "files": [{"name", "url"}],
    /// "probes": [{"url", "answer": "yes"|"no"|"unknown", "attempts"}]}`.
    pub fn to_json(&self) -> String {
        #[derive(Serialize)]
        struct Doc<'a> {
            source: &'a str,
            files: Vec<DocFile<'a>>,
            probes: Vec<DocProbe<'a>>,
        }
        #[derive(Serialize)]
        struct DocFile<'a> {
            name: &'a str,
            url: &'a str,
        }
        #[derive(Serialize)]
        struct DocProbe<'a> {
            url: &'a str,
            answer: &'a str,
            attempts: u32,
        }
        let doc = Doc {
            source: self.source.map_or("none", SourceKind::as_str),
            files: self
                .files
                .iter()
                .map(|f| DocFile {
                    name: &f.name,
                    url: &f.url,
                })
                .collect(),
            probes: self
                .probes
                .iter()
                .map(|p| DocProbe {
                    url: &p.url,
                    answer: p.answer.as_str(),
                    attempts: p.attempts,
                })
                .collect(),
        };
        // Plain strings and integers only: serialisation cannot fail.
        serde_json::to_string_pretty(&doc).unwrap_or_default()
    }
}

/// Upstream's "MISSING GROUND TRUTH" instructions, adapted.
fn missing_gt_hint(q: &GtQuery, revision: Option<&str>) -> String {
    format!(
        "To add GT: generate it with our pipeline (upstream: SGLANG_GEN_GT=1 via \
         test/scripts/gen_diffusion_ci_outputs.py) or with official diffusers \
         (test/scripts/gen_official_diffusion_gt.py, then declare the case in \
         official_generated/case_map.json); publish {} under diffusion-ci/consistency_gt/sglang_generated/ \
         (optionally in a platform folder such as {}/) of https://github.com/sgl-project/ci-data-diffusion; \
         then bump the pinned revision (now {}) together with the repository. \
         For a local run, point {GT_DIR_ENV} at a folder holding these files.",
        q.publish_names().join(", "),
        q.platform,
        revision.unwrap_or("unpinned"),
    )
}

/// Configures a [`Resolver`]. Start from [`Resolver::builder`].
#[derive(Debug, Clone)]
pub struct ResolverBuilder {
    sources: Vec<Source>,
    local_override: Option<PathBuf>,
    forced_ours: Vec<String>,
    backoff: Backoff,
    timeout: Duration,
    max_in_flight: usize,
    cache_dir: Option<PathBuf>,
    offline: bool,
    progress: bool,
}

impl Default for ResolverBuilder {
    fn default() -> Self {
        ResolverBuilder {
            sources: Vec::new(),
            local_override: None,
            forced_ours: DEFAULT_FORCED_OURS.iter().map(|s| s.to_string()).collect(),
            backoff: Backoff::default(),
            timeout: Duration::from_secs(30),
            max_in_flight: 32,
            cache_dir: None,
            offline: false,
            progress: true,
        }
    }
}

impl ResolverBuilder {
    /// Uses `ROOT/official_generated`, `ROOT/sglang_generated` and `ROOT` (legacy), in that order.
    pub fn root(mut self, root: &GtRoot) -> Self {
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

    /// Retry schedule for probes and downloads (default: 5 attempts, 1-2-4-8 s, cap 16 s).
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
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

    /// Opens the cache and builds the resolver.
    pub fn build(self) -> Result<Resolver, Error> {
        let mut notes = Vec::new();
        let sources = match &self.local_override {
            Some(dir) => {
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
            None => self.sources,
        };
        if sources.is_empty() {
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
        Ok(Resolver {
            http: Http::new(self.timeout, self.backoff),
            sources,
            forced_ours: self.forced_ours.into_iter().collect(),
            cache,
            offline: self.offline,
            progress: self.progress,
            max_in_flight: self.max_in_flight,
            permits: Semaphore::new(self.max_in_flight),
            case_maps,
            global_notes: notes,
        })
    }
}

/// Finds GT files for consistency cases. Cheap to share across threads (`&Resolver` is `Sync`).
#[derive(Debug)]
pub struct Resolver {
    http: Http,
    sources: Vec<Source>,
    forced_ours: HashSet<String>,
    cache: Cache,
    offline: bool,
    progress: bool,
    max_in_flight: usize,
    permits: Semaphore,
    case_maps: Vec<OnceLock<CaseMap>>,
    global_notes: Vec<String>,
}

/// What an official source's `case_map.json` declares, loaded once per resolver.
#[derive(Debug)]
struct CaseMap {
    outputs: Option<HashMap<String, HashSet<String>>>,
    note: Option<String>,
    /// False when loading failed for a transient reason: such a run's choices are not recorded.
    definitive: bool,
}

#[derive(Deserialize)]
struct CaseMapFile {
    cases: HashMap<String, CaseMapEntry>,
}

#[derive(Deserialize)]
struct CaseMapEntry {
    #[serde(default)]
    outputs: Vec<String>,
}

/// One (source, candidate set) pair: names that must all exist (video) or the first that exists (image).
struct Tier {
    source: usize,
    names: Vec<String>,
    all_required: bool,
}

type Memo = HashMap<String, (Answer, u32)>;

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
    /// [`Resolution::into_found`]); errors are reserved for invalid input and local I/O failures.
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
        let mut memo = Memo::new();
        let mut order: Vec<String> = Vec::new();
        let mut chosen: Option<(usize, Vec<String>, bool)> = None;

        'outer: for wave in &waves {
            if self.max_in_flight > 1 {
                self.prefetch(wave, &mut memo, &mut order);
            }
            for tier in wave {
                if let Some((names, via_unknown)) = self.decide(tier, &mut memo, &mut order) {
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

        let probes: Vec<Probe> = order
            .iter()
            .filter_map(|url| {
                memo.get(url).map(|(answer, attempts)| Probe {
                    url: url.clone(),
                    answer: *answer,
                    attempts: *attempts,
                })
            })
            .collect();
        definitive &= probes.iter().all(|p| p.answer != Answer::Unknown);
        if self.offline {
            definitive = false;
        }
        let revision = self.sources.iter().find_map(|s| s.revision.clone());

        let Some((src, names, _)) = chosen else {
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
        for name in &names {
            let url = source.base.join(name).url();
            if let Some((Answer::Unknown, attempts)) = memo.get(&url) {
                notes.push(format!(
                    "{url}: only transient failures after {attempts} attempt(s); treated as present"
                ));
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
            // Best effort: a cache that cannot be written only costs the next run some probes.
            if let Ok(bytes) = serde_json::to_vec(&resolution) {
                let _ = self.cache.put_bytes(key, &bytes);
            }
        }
        Ok(resolution)
    }

    /// Probes one URL or path as the resolver would (HEAD, ranged GET when HEAD is refused,
    /// retries with backoff), without consulting the cache.
    pub fn exists(&self, url: &str) -> Result<Probe, Error> {
        let loc = Location::parse(url)?;
        let (answer, attempts) = match &loc {
            Location::Local(p) => (if p.is_file() { Answer::Yes } else { Answer::No }, 1),
            Location::Remote(u) if !self.offline => {
                let _permit = self.permits.acquire();
                self.http.probe(u)
            }
            Location::Remote(_) => (Answer::Unknown, 0),
        };
        Ok(Probe {
            url: loc.url(),
            answer,
            attempts,
        })
    }

    /// Resolves many queries in parallel (bounded by `max_in_flight`); results are in input order.
    pub fn resolve_many(&self, queries: &[GtQuery]) -> Vec<Result<Resolution, Error>> {
        let workers = self.max_in_flight.min(queries.len()).max(1);
        let next = AtomicUsize::new(0);
        let mut done: Vec<(usize, Result<Resolution, Error>)> = thread::scope(|s| {
            let handles: Vec<_> = (0..workers)
                .map(|_| {
                    s.spawn(|| {
                        let mut out = Vec::new();
                        loop {
                            let i = next.fetch_add(1, Ordering::Relaxed);
                            let Some(q) = queries.get(i) else { break };
                            out.push((i, self.resolve(q)));
                        }
                        out
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                .collect()
        });
        done.sort_by_key(|(i, _)| *i);
        done.into_iter().map(|(_, r)| r).collect()
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
        if (file.revision.is_some() || self.offline)
            && let Lookup::Hit(p) = self.cache.lookup(&key)
        {
            return Ok(p);
        }
        if self.offline {
            return Err(Error::OfflineMiss {
                url: file.url.clone(),
                cache: self.cache.root().to_path_buf(),
            });
        }
        self.download(&key)
    }

    /// Downloads `key.url` into the cache, retrying throttling, 5xx, transport errors and
    /// truncated bodies; a clean 4xx fails at once.
    fn download(&self, key: &CacheKey) -> Result<PathBuf, Error> {
        let backoff = self.http.backoff();
        let attempts = backoff.attempts.max(1);
        let mut last = String::new();
        for n in 1..=attempts {
            let mut part = self.cache.begin()?;
            let bar: OnceCell<indicatif::ProgressBar> = OnceCell::new();
            let outcome = {
                let _permit = self.permits.acquire();
                self.http.download_once(
                    &key.url,
                    &mut part,
                    &mut |len| {
                        if let Some(len) = len.filter(|l| self.progress && *l >= PROGRESS_MIN_BYTES)
                        {
                            let pb = indicatif::ProgressBar::new(len);
                            pb.set_message(key.url.clone());
                            let _ = bar.set(pb);
                        }
                    },
                    &mut |got| {
                        if let Some(pb) = bar.get() {
                            pb.set_position(got);
                        }
                    },
                )
            };
            if let Some(pb) = bar.get() {
                pb.finish_and_clear();
            }
            match outcome {
                Ok(()) => return self.cache.commit(part, key),
                Err(Failure::Fatal(reason)) => {
                    return Err(Error::Download {
                        url: key.url.clone(),
                        attempts: n,
                        reason,
                    });
                }
                Err(Failure::Retry(reason)) => {
                    last = reason;
                    drop(part);
                    if n < attempts {
                        thread::sleep(backoff.delay_after(n));
                    }
                }
            }
        }
        Err(Error::Download {
            url: key.url.clone(),
            attempts,
            reason: last,
        })
    }

    /// The waves of tiers to try: platform names across official and ours, then bare names,
    /// then legacy. Upstream's order, so platform GT of ours beats bare official GT. Returns
    /// whether every input to the plan (the case maps) was loaded definitively.
    fn plan(&self, q: &GtQuery, notes: &mut Vec<String>) -> (Vec<Vec<Tier>>, bool) {
        let sets = q.candidate_sets();
        let mut definitive = true;
        let mut waves: Vec<Vec<Tier>> = Vec::new();
        let mut official_noted = false;
        for set in &sets {
            let mut wave = Vec::new();
            for (i, s) in self.sources.iter().enumerate() {
                let names = match s.kind {
                    SourceKind::Legacy => continue,
                    SourceKind::Sglang => set.names.clone(),
                    SourceKind::Official => {
                        let (names, ok) = self.official_names(
                            i,
                            q,
                            &set.names,
                            set.all_required,
                            notes,
                            &mut official_noted,
                        );
                        definitive &= ok;
                        names
                    }
                };
                if !names.is_empty() {
                    wave.push(Tier {
                        source: i,
                        names,
                        all_required: set.all_required,
                    });
                }
            }
            waves.push(wave);
        }
        let legacy: Vec<Tier> = sets
            .iter()
            .flat_map(|set| {
                self.sources
                    .iter()
                    .enumerate()
                    .filter(|(_, s)| s.kind == SourceKind::Legacy)
                    .map(|(i, _)| Tier {
                        source: i,
                        names: set.names.clone(),
                        all_required: set.all_required,
                    })
            })
            .collect();
        waves.push(legacy);
        waves.retain(|w| !w.is_empty());
        (waves, definitive)
    }

    /// The official candidates that count: the case must not be forced to ours and must be
    /// declared in `case_map.json`, with each name (or its last path component) among its outputs;
    /// for video all three frames must be declared.
    fn official_names(
        &self,
        src: usize,
        q: &GtQuery,
        names: &[String],
        all_required: bool,
        notes: &mut Vec<String>,
        noted: &mut bool,
    ) -> (Vec<String>, bool) {
        let mut note = |n: String| {
            if !*noted {
                notes.push(n);
            }
        };
        if self.forced_ours.contains(&q.case) {
            note(format!(
                "{} is forced to our GT: official GT skipped",
                q.case
            ));
            *noted = true;
            return (Vec::new(), true);
        }
        let map = self.case_map(src);
        let Some(outputs) = map.outputs.as_ref() else {
            if let Some(n) = &map.note {
                note(n.clone());
            }
            *noted = true;
            return (Vec::new(), map.definitive);
        };
        let Some(declared) = outputs.get(&q.case) else {
            note(format!(
                "{} is not declared in {}/case_map.json: official GT skipped",
                q.case,
                self.sources[src].base.url()
            ));
            *noted = true;
            return (Vec::new(), true);
        };
        let is_declared = |n: &String| {
            declared.contains(n) || n.rsplit('/').next().is_some_and(|b| declared.contains(b))
        };
        if all_required {
            if names.iter().all(is_declared) {
                (names.to_vec(), true)
            } else {
                (Vec::new(), true)
            }
        } else {
            (
                names.iter().filter(|n| is_declared(n)).cloned().collect(),
                true,
            )
        }
    }

    fn case_map(&self, src: usize) -> &CaseMap {
        self.case_maps[src].get_or_init(|| self.load_case_map(&self.sources[src]))
    }

    fn load_case_map(&self, source: &Source) -> CaseMap {
        let loc = source.base.join("case_map.json");
        let url = loc.url();
        let absent = |why: String| CaseMap {
            outputs: None,
            note: Some(why),
            definitive: true,
        };
        let bytes = match &loc {
            Location::Local(p) => match std::fs::read(p) {
                Ok(b) => b,
                Err(e) => return absent(format!("{url}: {e}: official GT not used")),
            },
            Location::Remote(_) => {
                let file = GtFile {
                    name: "case_map.json".into(),
                    url: url.clone(),
                    local_path: None,
                    revision: source.revision.clone(),
                };
                match self
                    .fetch(&file)
                    .and_then(|p| std::fs::read(&p).map_err(|e| Error::io(p, e)))
                {
                    Ok(b) => b,
                    Err(Error::Download {
                        reason, attempts, ..
                    }) if reason.contains("not retried") => {
                        return absent(format!(
                            "{url}: {reason} after {attempts} attempt(s): official GT not used"
                        ));
                    }
                    Err(e) => {
                        return CaseMap {
                            outputs: None,
                            note: Some(format!("{e}: official GT skipped in this run")),
                            definitive: false,
                        };
                    }
                }
            }
        };
        match serde_json::from_slice::<CaseMapFile>(&bytes) {
            Ok(f) => CaseMap {
                outputs: Some(
                    f.cases
                        .into_iter()
                        .map(|(k, v)| (k, v.outputs.into_iter().collect()))
                        .collect(),
                ),
                note: None,
                definitive: true,
            },
            Err(e) => absent(format!(
                "{url}: not a case map ({{\"cases\": {{id: {{\"outputs\": [...]}}}}}}): {e}: official GT not used"
            )),
        }
    }

    /// Probes every not-yet-known URL of a wave at once (each request takes a permit).
    fn prefetch(&self, wave: &[Tier], memo: &mut Memo, order: &mut Vec<String>) {
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
        let results: Vec<(Answer, u32)> = thread::scope(|sc| {
            let handles: Vec<_> = todo
                .iter()
                .map(|(_, loc, rev)| sc.spawn(move || self.probe(loc, rev.as_deref())))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
                .collect()
        });
        for ((url, _, _), r) in todo.into_iter().zip(results) {
            order.push(url.clone());
            memo.insert(url, r);
        }
    }

    /// The names a tier yields, probing lazily in order (and stopping early) when not prefetched.
    /// Image: the first `Yes`, else the first `Unknown`. Video: all names, unless one is `No`.
    fn decide(
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
    fn probe(&self, loc: &Location, revision: Option<&str>) -> (Answer, u32) {
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

    /// Resolutions are recorded only when every source is pinned (or local) and at least one is
    /// remote: an unpinned base can change between runs, which is how upstream's floating `main`
    /// let unrelated uploads flip PR results.
    fn record_key(&self, q: &GtQuery) -> Option<CacheKey> {
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
            "resolution-v1|{}|{}|{format}|{}|forced={}",
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

    fn load_record(&self, key: &CacheKey) -> Option<Resolution> {
        let path = self.cache.get(key)?;
        let bytes = std::fs::read(path).ok()?;
        serde_json::from_slice(&bytes).ok()
    }
}

/// A counting semaphore bounding requests in flight.
#[derive(Debug)]
struct Semaphore {
    free: Mutex<usize>,
    cv: Condvar,
}

struct Permit<'a>(&'a Semaphore);

impl Semaphore {
    fn new(n: usize) -> Self {
        Semaphore {
            free: Mutex::new(n.max(1)),
            cv: Condvar::new(),
        }
    }

    fn acquire(&self) -> Permit<'_> {
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        while *free == 0 {
            free = self.cv.wait(free).unwrap_or_else(|e| e.into_inner());
        }
        *free -= 1;
        Permit(self)
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        let mut free = self.0.free.lock().unwrap_or_else(|e| e.into_inner());
        *free += 1;
        self.0.cv.notify_one();
    }
}

/// The local GT folder from [`GT_DIR_ENV`], if set and non-empty.
pub fn gt_dir_from_env() -> Option<PathBuf> {
    std::env::var_os(GT_DIR_ENV)
        .filter(|v| !v.is_empty())
        .map(|v| std::path::absolute(Path::new(&v)).unwrap_or_else(|_| PathBuf::from(v)))
}
