//! What a resolution says: the chosen files, every probe, the notes, and the `gt resolve --json`
//! document (a contract: keys and order as docs/formats.md states them).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::http::Answer;
use crate::naming::GtQuery;
use crate::source::{GT_DIR_ENV, Location, Source, SourceKind};

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

impl GtFile {
    /// The file `name` (relative to the source base) of `source`.
    pub(crate) fn in_source(source: &Source, name: &str) -> Self {
        let loc = source.base.join(name);
        GtFile {
            name: name.to_string(),
            url: loc.url(),
            local_path: match loc {
                Location::Local(p) => Some(p),
                Location::Remote(_) => None,
            },
            revision: source.revision.clone(),
        }
    }
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
    /// Why, in a few words: the deciding status (`HTTP 404`), the transient causes behind an
    /// `unknown` (`connection refused`, `HTTP 429, HTTP 503`), or `in the verified cache`.
    #[serde(default)]
    pub reason: String,
    /// The source the URL belongs to (`None` for [`crate::Resolver::exists`]).
    #[serde(default)]
    pub source: Option<SourceKind>,
}

impl Probe {
    /// No answer and no request: the candidate was not asked at all (offline, not cached).
    pub fn is_unasked(&self) -> bool {
        self.answer == Answer::Unknown && self.attempts == 0
    }

    /// `yes`, `no`, or `unknown (REASON)`: how logs and reports show the answer.
    pub fn describe(&self) -> String {
        match self.answer {
            Answer::Unknown if !self.reason.is_empty() => format!("unknown ({})", self.reason),
            a => a.as_str().to_string(),
        }
    }
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

    /// True when a source was chosen although none of its probes got an answer: every one was
    /// `unknown` (e.g. the GT host refuses connections), so nothing confirmed that the files
    /// exist. Such a choice is upstream's benefit of the doubt, and worth failing loudly on.
    pub fn is_unconfirmed(&self) -> bool {
        let Some(source) = self.source else {
            return false;
        };
        let mut of_source = self
            .probes
            .iter()
            .filter(|p| p.source == Some(source))
            .peekable();
        of_source.peek().is_some() && of_source.all(|p| p.answer == Answer::Unknown)
    }

    /// The distinct reasons of the `unknown` probes, joined (`connection refused`).
    pub fn unknown_reasons(&self) -> String {
        let mut seen: Vec<&str> = Vec::new();
        for p in &self.probes {
            if p.answer == Answer::Unknown && !p.reason.is_empty() && !seen.contains(&&*p.reason) {
                seen.push(&p.reason);
            }
        }
        seen.join("; ")
    }

    /// True when no source holds the GT as far as was asked, but some candidate was not asked at
    /// all (offline, not in the cache): whether GT exists is unknown, not "missing".
    pub fn is_unasked(&self) -> bool {
        !self.is_found() && self.probes.iter().any(Probe::is_unasked)
    }

    /// `self`, unless [`Resolution::is_unasked`]: then [`Error::NotAsked`] naming the candidates
    /// that were not asked and why.
    pub fn into_answered(self) -> Result<Self, Error> {
        if !self.is_unasked() {
            return Ok(self);
        }
        let unasked = self.probes.iter().filter(|p| p.is_unasked());
        let mut reasons: Vec<&str> = Vec::new();
        for p in unasked.clone() {
            if !reasons.contains(&p.reason.as_str()) {
                reasons.push(&p.reason);
            }
        }
        Err(Error::NotAsked {
            case: self.case.clone(),
            reason: reasons.join("; "),
            unasked: unasked.map(|p| p.url.clone()).collect(),
        })
    }

    /// `self` if found, else [`Error::NotFound`] naming every URL tried, the revision and what to
    /// do ([`Error::NotAsked`] when some candidate was not asked at all).
    pub fn into_found(self, query: &GtQuery) -> Result<Self, Error> {
        if self.is_found() {
            return Ok(self);
        }
        let this = self.into_answered()?;
        Err(Error::NotFound {
            case: query.case.clone(),
            num_gpus: query.num_gpus,
            platform: query.platform.to_string(),
            revision: this.revision.clone(),
            tried: this
                .probes
                .iter()
                .map(|p| format!("{} ({})", p.url, p.describe()))
                .collect(),
            hint: missing_gt_hint(query, this.revision.as_deref()),
        })
    }

    /// The `gt resolve --json` document, keys in contract order:
    /// `{"source": "official"|"sglang"|"legacy"|"none", "files": [{"name", "url"}],
    /// "probes": [{"url", "answer": "yes"|"no"|"unknown", "attempts", "reason"}]}`. `reason` is an
    /// addition to the contract: why the probe answered so (`HTTP 404`, `connection refused`).
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
            reason: &'a str,
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
                    reason: &p.reason,
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
