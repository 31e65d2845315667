//! The case file being parsed, as errors and relative paths need it.

use std::path::Path;

use crate::Error;

/// The file being parsed: its path (for messages), its folder (which relative paths are joined
/// to) and where its lines start (so that naming the line of each of many cases stays linear).
pub(crate) struct Source<'a> {
    pub path: &'a Path,
    pub base: &'a Path,
    newlines: Vec<usize>,
}

impl<'a> Source<'a> {
    /// The file `path` whose text is `text`.
    pub fn new(text: &str, path: &'a Path) -> Self {
        Source {
            path,
            base: path.parent().unwrap_or(Path::new(".")),
            newlines: text
                .bytes()
                .enumerate()
                .filter(|&(_, b)| b == b'\n')
                .map(|(i, _)| i)
                .collect(),
        }
    }

    /// An error naming the file and, when known, the line.
    pub fn fail(&self, line: Option<usize>, reason: String) -> Error {
        Error::CaseFile {
            path: self.path.to_path_buf(),
            line,
            reason,
        }
    }

    /// The 1-based line of a byte offset.
    pub fn line(&self, offset: usize) -> Option<usize> {
        Some(self.newlines.partition_point(|&n| n < offset) + 1)
    }
}
