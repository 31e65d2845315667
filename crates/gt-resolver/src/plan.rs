//! Planning: which (source, candidate names) pairs to try, in which order, and the official
//! source's `case_map.json` policy (declared cases only, never the forced-to-ours quarantine).

use std::collections::{HashMap, HashSet};

use serde::Deserialize;

use crate::Error;
use crate::http::{Answer, is_clean_absence};
use crate::naming::GtQuery;
use crate::resolution::GtFile;
use crate::resolver::Resolver;
use crate::source::{Location, SourceKind};

/// What an official source's `case_map.json` declares, loaded once per resolver.
#[derive(Debug)]
pub(crate) struct CaseMap {
    outputs: Option<HashMap<String, HashSet<String>>>,
    note: Option<String>,
    /// False when loading failed for a transient reason: such a run's choices are not recorded.
    definitive: bool,
    /// Why the case map could not be read, when that was transient (then `definitive` is false).
    unavailable: Option<String>,
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
pub(crate) struct Tier {
    pub(crate) source: usize,
    pub(crate) names: Vec<String>,
    pub(crate) all_required: bool,
}

impl Resolver {
    /// The waves of tiers to try: platform names across official and ours, then bare names,
    /// then legacy. Upstream's order, so platform GT of ours beats bare official GT. Returns
    /// whether every input to the plan (the case maps) was loaded definitively.
    pub(crate) fn plan(&self, q: &GtQuery, notes: &mut Vec<String>) -> (Vec<Vec<Tier>>, bool) {
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

    /// Why an official case map this resolver needed could not be read (a transient failure),
    /// if one could not. Without it, "no GT" cannot be told from "official GT not judged".
    pub(crate) fn unavailable_case_map(&self) -> Option<String> {
        self.case_maps
            .iter()
            .find_map(|m| m.get().and_then(|m| m.unavailable.clone()))
    }

    fn case_map(&self, src: usize) -> &CaseMap {
        self.case_maps[src].get_or_init(|| self.load_case_map(src))
    }

    fn load_case_map(&self, src: usize) -> CaseMap {
        let source = &self.sources[src];
        let loc = source.base.join("case_map.json");
        let url = loc.url();
        let absent = |why: String| CaseMap {
            outputs: None,
            note: Some(why),
            definitive: true,
            unavailable: None,
        };
        let bytes = match &loc {
            Location::Local(p) => match std::fs::read(p) {
                Ok(b) => b,
                Err(e) => return absent(format!("{url}: {e}: official GT not used")),
            },
            Location::Remote(_) => {
                if let Some(listed) = self.listed(src, "case_map.json")
                    && listed.answer == Answer::No
                {
                    return absent(format!("{url}: {}: official GT not used", listed.reason));
                }
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
                    // A clean 4xx is a final answer: there is no case map at this revision.
                    Err(Error::Download {
                        status: Some(status),
                        reason,
                        attempts,
                        ..
                    }) if is_clean_absence(status) => {
                        return absent(format!(
                            "{url}: {reason} after {attempts} attempt(s): official GT not used"
                        ));
                    }
                    Err(e) => {
                        return CaseMap {
                            outputs: None,
                            note: Some(format!("{e}: official GT skipped in this run")),
                            definitive: false,
                            // Offline, "not in the cache" is the expected answer, not a doubt.
                            unavailable: matches!(e, Error::Download { .. }).then(|| e.to_string()),
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
                unavailable: None,
            },
            Err(e) => absent(format!(
                "{url}: not a case map ({{\"cases\": {{id: {{\"outputs\": [...]}}}}}}): {e}: official GT not used"
            )),
        }
    }
}
