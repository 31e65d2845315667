//! The case file being parsed, as errors and relative paths need it; what the files it names are.

use std::io::Read;
use std::path::Path;

use crate::Error;

/// The file being parsed: its path (for messages), its folder (which relative paths are joined
/// to) and where its lines start (so that naming the line of each of many cases stays linear).
pub(crate) struct Source<'a> {
    pub path: &'a Path,
    pub base: &'a Path,
    newlines: Vec<usize>,
}

/// The largest case file read (100,000 cases are about 30 MB).
const MAX_CASE_FILE_BYTES: u64 = 256 * 1024 * 1024;

/// Why `p` is not a file that can be read: it does not exist, is a folder, or is not a regular
/// file (a FIFO, which would block, or a device such as `/dev/zero`, which never ends).
pub(crate) fn not_a_file(p: &Path) -> &'static str {
    match std::fs::metadata(p) {
        Err(_) => "does not exist",
        Ok(m) if m.is_dir() => "is a folder, not a file",
        Ok(_) => "is not a regular file (a FIFO, socket or device)",
    }
}

/// The text of the case file `path`: a regular file of at most 256 MiB, else why not.
pub(crate) fn read_case_file(path: &Path) -> Result<String, String> {
    if !path.is_file() {
        return Err(format!("the case file {}", not_a_file(path)));
    }
    let mut text = String::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_CASE_FILE_BYTES + 1).read_to_string(&mut text))
        .map_err(|e| format!("cannot read the case file: {e}"))?;
    if text.len() as u64 > MAX_CASE_FILE_BYTES {
        return Err(format!(
            "the case file is over the {MAX_CASE_FILE_BYTES}-byte limit"
        ));
    }
    Ok(text)
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
