//! The consistency case file (TOML; paths relative to the file), as docs/formats.md fixes it:
//! parsed and validated in one place, and each case mapped onto the pipeline's [`Request`], for
//! the runner (`cargo xtask consistency`), the server's defaults and the end-to-end tests alike.
//!
//! ```
//! let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/cases/tiny.toml");
//! let cases = cases::load(&path)?;
//! let request = cases[0].request(); // what the runner generates for the first case
//! # let _ = request;
//! # Ok::<(), cases::Error>(())
//! ```
//!
//! A suite may declare, above its cases, which defaults fill the fields a case leaves out
//! (`defaults = "diffusers"`, the default, or `"sglang"`: [`SglangPreset`]), where its ground
//! truth lives (`gt_root`) and which threshold file holds it to account (`thresholds`); a case may
//! be listed but not run (`skip = "reason"`). [`load_suite`] gives all of it, [`load`] the cases.
//!
//! One job per module: `preset` (the defaults and generators), `schema` (the TOML as written),
//! `parse` (the file and its suite keys), `source` (the file's path, folder and line index), `resolve` (one case: defaults filled, paths checked),
//! `case` (the resolved case and its request), `error`.

mod case;
mod error;
mod parse;
mod preset;
mod resolve;
mod schema;
mod source;

pub use case::{Case, ImageSource, Suite};
pub use error::Error;
pub use parse::{load, load_suite, parse, parse_suite, valid_id};
pub use pipeline::Request;
pub use preset::{Defaults, GeneratorKind, SglangPreset};

/// The README's example, compiled as a doctest.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
