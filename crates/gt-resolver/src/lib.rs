//! Finds a consistency case's ground-truth files: tri-state probes, a verified cache.
#![doc = include_str!("../README.md")]
//!
//! The main types: [`Resolver`] (built with [`ResolverBuilder`]) resolves a [`GtQuery`] against
//! [`Source`]s (usually from a [`GtRoot`]) into a [`Resolution`] of [`GtFile`]s with a log of
//! [`Probe`]s, each answering [`Answer::Yes`], [`Answer::No`] or [`Answer::Unknown`]; [`Cache`]
//! is the verified on-disk store.

mod cache;
mod download;
mod error;
mod http;
mod limits;
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
pub use download::Check;
pub use error::Error;
pub use http::{Answer, Backoff};
pub use limits::{
    ATTEMPTS_ENV, DEADLINE_ENV, DEFAULT_DOWNLOAD_DEADLINE, DEFAULT_MAX_BYTES, MAX_BYTES_ENV,
};
pub use listing::{GITHUB_API, GITHUB_API_ENV, GITHUB_TOKEN_ENV};
pub use naming::{
    CandidateSet, GtKind, GtQuery, PLATFORM_ENV, Platform, image_extensions, preferred_extension,
};
pub use resolution::{GtFile, Probe, Resolution};
pub use resolver::{DEFAULT_FORCED_OURS, Resolver, ResolverBuilder};
pub use source::{
    GITHUB_RAW, GT_DIR_ENV, GT_TREE_PATH, GtRoot, Location, Source, SourceKind, gt_dir_from_env,
    is_commit, is_http_url,
};
