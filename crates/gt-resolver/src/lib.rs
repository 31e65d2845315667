//! Find a consistency case's ground-truth (GT) files: official first, then ours, then legacy;
//! tri-state HTTP probes with backoff; a verified on-disk cache.
//!
//! This is the lookup half of SGLang's diffusion consistency testing, ported so that a CDN hiccup
//! never turns into a false "GT not found":
//!
//! * **Sources** ([`Source`]) in priority order: `official_generated/` (only for cases declared in
//!   its `case_map.json`, and never for the [`DEFAULT_FORCED_OURS`] quarantine), `sglang_generated/`,
//!   then the legacy root. Each is an http(s) base or a local folder.
//! * **Candidates** ([`GtQuery::candidate_sets`]): the platform folder (`h100/`, `b200/`, `5090/`)
//!   before bare names; images `<case>_<n>gpu.<ext>` with the requested extension first; videos
//!   the three key frames, all from one base.
//! * **Probes** answer [`Answer::Yes`], [`Answer::No`] (a persistent clean 404) or
//!   [`Answer::Unknown`] (only transient failures; treated as present and logged).
//! * **Cache** ([`Cache`]): content-addressed, verified on every read, written via temp + rename,
//!   keyed by URL + pinned revision. Resolutions against a pinned tree are recorded too, so a warm
//!   run makes no request at all.
//!
//! ```no_run
//! use gt_resolver::{GtQuery, GtRoot, Platform, Resolver};
//!
//! # fn main() -> Result<(), gt_resolver::Error> {
//! let root = GtRoot::github(
//!     gt_resolver::GITHUB_RAW,
//!     "sgl-project/ci-data-diffusion",
//!     "4ce5eeb9606e378478b2d0964d83e960af4e88cf",
//!     false,
//! )?;
//! let resolver = Resolver::builder().root(&root).build()?;
//! let query = GtQuery::image("qwen_image_t2i", 1, Some("png"), Platform::from_env()?);
//! let found = resolver.resolve(&query)?.into_found(&query)?;
//! for file in &found.files {
//!     let path = resolver.fetch(file)?; // verified local copy
//!     println!("{} from {:?}: {}", file.name, found.source, path.display());
//! }
//! # Ok(())
//! # }
//! ```

mod cache;
mod download;
mod error;
mod http;
mod listing;
mod naming;
mod plan;
mod probe;
mod record;
mod resolution;
mod resolver;
mod source;
mod sync;

pub use cache::{CACHE_ENV, Cache, CacheKey, Lookup};
pub use error::Error;
pub use http::{Answer, Backoff};
pub use listing::{GITHUB_API, GITHUB_API_ENV, GITHUB_TOKEN_ENV};
pub use naming::{
    CandidateSet, GtKind, GtQuery, PLATFORM_ENV, Platform, image_extensions, preferred_extension,
};
pub use resolution::{GtFile, Probe, Resolution};
pub use resolver::{
    ATTEMPTS_ENV, DEFAULT_FORCED_OURS, GT_DIR_ENV, Resolver, ResolverBuilder, gt_dir_from_env,
};
pub use source::{GITHUB_RAW, GT_TREE_PATH, GtRoot, Location, Source, SourceKind, is_commit};
