//! Planning: which (source, candidate names) pairs to try, in which order, and the official
//! source's `case_map.json` policy (declared cases only, never the forced-to-ours quarantine).

use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;

use serde::Deserialize;

use crate::download::Downloader;
use crate::error::Error;
use crate::http::{Answer, is_clean_absence};
use crate::listing::Lister;
use crate::naming::{CandidateSet, GtQuery};
use crate::resolution::GtFile;
use crate::source::{Location, Source, SourceKind};

/// What an official source's `case_map.json` says, loaded once per resolver.
#[derive(Debug)]
enum CaseMap {
    /// The outputs each declared case may use.
    Declared(HashMap<String, HashSet<String>>),
    /// No usable case map at this source, a final answer (why, for the notes).
    Absent(String),
    /// Not read in this run (why, for the notes): the plan is not definitive, and its choices
    /// are not recorded. `unavailable` is set when a download failed (a transient doubt about
    /// the GT host), and stays empty offline, where "not in the cache" is the expected answer.
    Unread {
        note: String,
        unavailable: Option<String>,
    },
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
pub(crate) struct Tier<'a> {
    /// The source's index in the resolver's sources.
    pub(crate) index: usize,
    /// The source itself.
    pub(crate) source: &'a Source,
    pub(crate) names: Vec<String>,
    pub(crate) all_required: bool,
}

impl<'a> Tier<'a> {
    fn new(index: usize, source: &'a Source, set: &CandidateSet, names: Vec<String>) -> Self {
        Tier {
            index,
            source,
            names,
            all_required: set.all_required,
        }
    }
}

/// What official GT counts for one candidate set.
struct Official {
    names: Vec<String>,
    /// False when the case map could not be read in this run.
    definitive: bool,
    /// Why official GT was skipped, when it was (only the first such note is kept).
    skipped: Option<String>,
}

/// The sources in priority order and the policy that decides which of them may hold a case.
#[derive(Debug)]
pub(crate) struct Planner {
    sources: Vec<Source>,
    forced_ours: HashSet<String>,
    /// The official sources' case maps, loaded at most once (indexed like `sources`).
    case_maps: Vec<OnceLock<CaseMap>>,
}

/// Where a case map comes from: the commit's file list, else a download through the cache.
#[derive(Clone, Copy)]
pub(crate) struct Fetchers<'a> {
    pub(crate) lister: &'a Lister,
    pub(crate) downloader: &'a Downloader,
}

impl Planner {
    /// A planner over `sources` (tried in this order, legacy ones last) that never uses official
    /// GT for the cases in `forced_ours`.
    pub(crate) fn new(sources: Vec<Source>, forced_ours: impl IntoIterator<Item = String>) -> Self {
        Planner {
            case_maps: sources.iter().map(|_| OnceLock::new()).collect(),
            sources,
            forced_ours: forced_ours.into_iter().collect(),
        }
    }

    /// The sources in priority order.
    pub(crate) fn sources(&self) -> &[Source] {
        &self.sources
    }

    /// Whether `case` always uses our GT.
    pub(crate) fn is_forced(&self, case: &str) -> bool {
        self.forced_ours.contains(case)
    }

    /// The pinned revision of the GT tree: the first source's that has one.
    pub(crate) fn revision(&self) -> Option<String> {
        self.sources.iter().find_map(|s| s.revision.clone())
    }

    /// The waves of tiers to try: platform names across official and ours, then bare names,
    /// then legacy. Upstream's order, so platform GT of ours beats bare official GT. Returns
    /// whether every input to the plan (the case maps) was loaded definitively.
    pub(crate) fn plan(
        &self,
        q: &GtQuery,
        notes: &mut Vec<String>,
        fetchers: Fetchers<'_>,
    ) -> (Vec<Vec<Tier<'_>>>, bool) {
        let sets = q.candidate_sets();
        let mut definitive = true;
        let mut waves: Vec<Vec<Tier<'_>>> = Vec::new();
        let mut official_noted = false;
        for set in &sets {
            let mut wave = Vec::new();
            for (i, s) in self.sources.iter().enumerate() {
                let names = match s.kind {
                    SourceKind::Legacy => continue,
                    SourceKind::Sglang => set.names.clone(),
                    SourceKind::Official => {
                        let official = self.official_names(i, q, set, fetchers);
                        definitive &= official.definitive;
                        if let Some(n) = official.skipped {
                            if !official_noted {
                                notes.push(n);
                            }
                            official_noted = true;
                        }
                        official.names
                    }
                };
                if !names.is_empty() {
                    wave.push(Tier::new(i, s, set, names));
                }
            }
            waves.push(wave);
        }
        let legacy = sets.iter().flat_map(|set| {
            self.sources
                .iter()
                .enumerate()
                .filter(|(_, s)| s.kind == SourceKind::Legacy)
                .map(move |(i, s)| Tier::new(i, s, set, set.names.clone()))
        });
        waves.push(legacy.collect());
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
        set: &CandidateSet,
        fetchers: Fetchers<'_>,
    ) -> Official {
        let skip = |definitive, why: String| Official {
            names: Vec::new(),
            definitive,
            skipped: Some(why),
        };
        if self.is_forced(&q.case) {
            return skip(
                true,
                format!("{} is forced to our GT: official GT skipped", q.case),
            );
        }
        let outputs = match self.case_map(src, fetchers) {
            CaseMap::Declared(outputs) => outputs,
            CaseMap::Absent(why) => return skip(true, why.clone()),
            CaseMap::Unread { note, .. } => return skip(false, note.clone()),
        };
        let Some(declared) = outputs.get(&q.case) else {
            return skip(
                true,
                format!(
                    "{} is not declared in {}/case_map.json: official GT skipped",
                    q.case,
                    self.sources[src].base.url()
                ),
            );
        };
        let is_declared = |n: &&String| {
            declared.contains(*n) || n.rsplit('/').next().is_some_and(|b| declared.contains(b))
        };
        let names = if !set.all_required {
            set.names.iter().filter(is_declared).cloned().collect()
        } else if set.names.iter().all(|n| is_declared(&n)) {
            set.names.clone()
        } else {
            Vec::new()
        };
        Official {
            names,
            definitive: true,
            skipped: None,
        }
    }

    /// Why an official case map this resolver needed could not be read (a transient failure),
    /// if one could not. Without it, "no GT" cannot be told from "official GT not judged".
    pub(crate) fn unavailable_case_map(&self) -> Option<String> {
        self.case_maps.iter().find_map(|m| match m.get() {
            Some(CaseMap::Unread { unavailable, .. }) => unavailable.clone(),
            _ => None,
        })
    }

    fn case_map(&self, src: usize, fetchers: Fetchers<'_>) -> &CaseMap {
        self.case_maps[src].get_or_init(|| load_case_map(&self.sources[src], src, fetchers))
    }
}

/// Reads and parses source `src`'s `case_map.json`: from the folder, or (unless the commit's
/// file list says it is absent) through the verified cache.
fn load_case_map(source: &Source, src: usize, fetchers: Fetchers<'_>) -> CaseMap {
    let loc = source.base.join("case_map.json");
    let url = loc.url();
    let absent = |why: String| CaseMap::Absent(format!("{url}: {why}: official GT not used"));
    let bytes = match &loc {
        Location::Local(p) => match std::fs::read(p) {
            Ok(b) => b,
            Err(e) => return absent(e.to_string()),
        },
        Location::Remote(_) => {
            if let Some(listed) = fetchers.lister.listed(src, "case_map.json")
                && listed.answer == Answer::No
            {
                return absent(listed.reason);
            }
            let file = GtFile::in_source(source, "case_map.json");
            match fetchers
                .downloader
                .fetch(&file)
                .and_then(|p| std::fs::read(&p).map_err(|e| Error::io(p, e)))
            {
                Ok(b) => b,
                // A clean 4xx is a final answer: there is no case map at this revision.
                Err(Error::Download {
                    status: Some(status),
                    reason,
                    attempts,
                    ..
                }) if is_clean_absence(status) => {
                    return absent(format!("{reason} after {attempts} attempt(s)"));
                }
                Err(e) => {
                    return CaseMap::Unread {
                        note: format!("{e}: official GT skipped in this run"),
                        // Offline, "not in the cache" is the expected answer, not a doubt.
                        unavailable: matches!(e, Error::Download { .. }).then(|| e.to_string()),
                    };
                }
            }
        }
    };
    match serde_json::from_slice::<CaseMapFile>(&bytes) {
        Ok(f) => CaseMap::Declared(
            f.cases
                .into_iter()
                .map(|(k, v)| (k, v.outputs.into_iter().collect()))
                .collect(),
        ),
        Err(e) => absent(format!(
            "not a case map ({{\"cases\": {{id: {{\"outputs\": [...]}}}}}}): {e}"
        )),
    }
}
