//! Read a JSON config file into a serde type, naming the file in every error.
//!
//! Every model crate loads its `config.json` the same way: read the file, parse it, and say which
//! file failed. [`read_json`] is that one step; [`ConfigFileError`] keeps the path and the cause
//! apart, so that each crate can turn it into its own error variants (and keep their messages) with
//! one `From` impl:
//!
//! ```
//! use std::path::PathBuf;
//!
//! #[derive(Debug, thiserror::Error)]
//! enum MyError {
//!     #[error("cannot read {path}: {error}")]
//!     Io { path: PathBuf, error: std::io::Error },
//!     #[error("{path}: invalid JSON: {reason}")]
//!     Config { path: PathBuf, reason: String },
//! }
//!
//! impl From<config_file::ConfigFileError> for MyError {
//!     fn from(e: config_file::ConfigFileError) -> Self {
//!         match e {
//!             config_file::ConfigFileError::Read { path, error } => Self::Io { path, error },
//!             config_file::ConfigFileError::Parse { path, error } => Self::Config {
//!                 path,
//!                 reason: error.to_string(),
//!             },
//!         }
//!     }
//! }
//!
//! fn load(path: &std::path::Path) -> Result<serde_json::Value, MyError> {
//!     Ok(config_file::read_json(path)?)
//! }
//!
//! let err = load(std::path::Path::new("/no/such/config.json")).unwrap_err();
//! assert!(err.to_string().starts_with("cannot read /no/such/config.json: "));
//! ```

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

/// Why a config file could not be loaded; both variants carry the file's path.
///
/// The message names the file and the cause is the [`source`](std::error::Error::source), so a
/// chain printed with anyhow's `{:#}` says each once.
#[derive(Debug, thiserror::Error)]
pub enum ConfigFileError {
    /// The file could not be read (missing, unreadable, not UTF-8).
    #[error("cannot read {path}", path = path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        error: std::io::Error,
    },
    /// The text is not JSON, or not JSON of the expected shape.
    #[error("cannot parse {path}", path = path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's error (with line and column).
        #[source]
        error: serde_json::Error,
    },
}

impl ConfigFileError {
    /// The file that failed.
    pub fn path(&self) -> &Path {
        match self {
            Self::Read { path, .. } | Self::Parse { path, .. } => path,
        }
    }
}

/// The largest JSON config read: 16 MiB (the largest config of a released model is a few KiB; an
/// index.json of thousands of shards is under 1 MiB).
pub const MAX_JSON_BYTES: u64 = 16 * 1024 * 1024;

/// Read the JSON file at `path` into a `T` (use [`serde_json::Value`] for a free-form document).
/// Only a regular file of at most [`MAX_JSON_BYTES`] is read ([`read_regular`]).
pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T, ConfigFileError> {
    let bytes = read_regular(path, MAX_JSON_BYTES).map_err(|error| ConfigFileError::Read {
        path: path.to_path_buf(),
        error,
    })?;
    serde_json::from_slice(&bytes).map_err(|error| ConfigFileError::Parse {
        path: path.to_path_buf(),
        error,
    })
}

/// The bytes of `path` when it is a regular file of at most `max` bytes, checked on its size
/// first and again while read; otherwise an I/O error saying what it is (a folder, a FIFO or
/// device, too large), before a byte is read: a FIFO cannot block a reader and a device such as
/// `/dev/zero` cannot fill the memory. The workspace's one reader of input files.
pub fn read_regular(path: &Path, max: u64) -> std::io::Result<Vec<u8>> {
    use std::io::{Error as IoError, ErrorKind, Read};
    let meta = std::fs::metadata(path)?;
    if meta.is_dir() {
        return Err(IoError::new(
            ErrorKind::IsADirectory,
            "it is a folder, not a file",
        ));
    }
    if !meta.is_file() {
        return Err(IoError::new(
            ErrorKind::InvalidInput,
            "it is not a regular file (a FIFO, socket or device): only regular files are read",
        ));
    }
    if meta.len() > max {
        return Err(IoError::new(
            ErrorKind::FileTooLarge,
            format!("it is {} bytes, over the {max}-byte limit", meta.len()),
        ));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    std::fs::File::open(path)?
        .take(max.saturating_add(1))
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        return Err(IoError::new(
            ErrorKind::FileTooLarge,
            format!("it grew over the {max}-byte limit while read"),
        ));
    }
    Ok(bytes)
}

/// Compiles and runs the README example as a doctest.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctest;

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;

    #[test]
    fn reads_a_typed_config() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(&path, r#"{"a": 1, "b": [2, 3]}"#).unwrap();
        #[derive(serde::Deserialize, PartialEq, Debug)]
        struct C {
            a: u32,
            b: Vec<u32>,
        }
        assert_eq!(
            read_json::<C>(&path).unwrap(),
            C {
                a: 1,
                b: vec![2, 3]
            }
        );
    }

    #[test]
    fn a_missing_file_is_a_read_error_naming_it() {
        let path = Path::new("/definitely/not/here.json");
        let err = read_json::<serde_json::Value>(path).unwrap_err();
        assert!(matches!(err, ConfigFileError::Read { .. }));
        assert_eq!(err.path(), path);
        assert_eq!(err.to_string(), "cannot read /definitely/not/here.json");
        assert!(err.source().is_some());
    }

    #[test]
    fn bad_json_and_wrong_shape_are_parse_errors_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.json");
        for text in ["{not json", r#"{"a": "x"}"#] {
            std::fs::write(&path, text).unwrap();
            #[derive(serde::Deserialize, Debug)]
            #[allow(dead_code)]
            struct C {
                a: u32,
            }
            let err = read_json::<C>(&path).unwrap_err();
            let ConfigFileError::Parse { error, .. } = &err else {
                panic!("{err:?}")
            };
            assert!(error.line() >= 1);
            assert_eq!(err.to_string(), format!("cannot parse {}", path.display()));
            assert!(err.source().is_some());
        }
    }
}
