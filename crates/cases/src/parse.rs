//! Reading a case file: the TOML structure, the suite keys (`defaults`, `gt_root`, `thresholds`),
//! unique and well-formed ids; each case is then resolved by `resolve`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::resolve::resolve_case;
use crate::schema::File;
use crate::source::{Source, not_a_file, read_case_file};
use crate::{Case, Defaults, Error, Suite};

/// A case id may only use `[A-Za-z0-9_.-]` (it becomes file names and URLs).
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id != "."
        && id != ".."
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// Read, parse and validate a case file. Errors name the file and the line at fault. The
/// file's structure (keys, types, ids, paths) is checked here; each case's values (sizes, step
/// count, CFG scales) by [`Case::validate`], so that one impossible case does not stop the others.
pub fn load(path: &Path) -> Result<Vec<Case>, Error> {
    Ok(load_suite(path)?.cases)
}

/// Read, parse and validate a case file with its suite-level settings.
pub fn load_suite(path: &Path) -> Result<Suite, Error> {
    let text = read_case_file(path).map_err(|reason| Error::CaseFile {
        path: path.to_path_buf(),
        line: None,
        reason,
    })?;
    parse_suite(&text, path)
}

/// Parse and validate the text of a case file; `path` names it in errors and anchors relative
/// paths (`model`, `latents`).
pub fn parse(text: &str, path: &Path) -> Result<Vec<Case>, Error> {
    Ok(parse_suite(text, path)?.cases)
}

/// [`parse`] with the suite-level settings (`defaults`, `gt_root`, `thresholds`).
pub fn parse_suite(text: &str, path: &Path) -> Result<Suite, Error> {
    let src = Source::new(text, path);
    let file: File = toml::from_str(text).map_err(|e| {
        src.fail(
            e.span().and_then(|s| src.line(s.start)),
            e.message().to_string(),
        )
    })?;
    let defaults = defaults_of(&src, &file)?;
    let thresholds = thresholds_of(&src, &file)?;
    // A remote root stays as written; a folder is relative to the case file.
    let gt_root = file.gt_root.as_ref().map(|r| {
        if r.contains("://") {
            r.clone()
        } else {
            src.base.join(r).to_string_lossy().into_owned()
        }
    });
    let mut seen = BTreeSet::new();
    let mut cases = Vec::with_capacity(file.case.len());
    for spanned in file.case {
        let (id, id_line) = case_id(&src, &spanned.get_ref().id)?;
        if !seen.insert(id.clone()) {
            return Err(src.fail(id_line, format!("case id `{id}` appears twice")));
        }
        cases.push(resolve_case(&src, spanned, id, defaults)?);
    }
    if cases.is_empty() {
        return Err(src.fail(None, "no [[case]] entries".into()));
    }
    Ok(Suite {
        defaults,
        gt_root,
        thresholds,
        cases,
    })
}

/// A case's id, checked to be well formed, with its line.
fn case_id(src: &Source, id: &toml::Spanned<String>) -> Result<(String, Option<usize>), Error> {
    let line = src.line(id.span().start);
    let id = id.get_ref();
    if !valid_id(id) {
        return Err(src.fail(
            line,
            format!(
                "case id `{id}` is invalid: only letters, digits, `_`, `.` and `-` are allowed"
            ),
        ));
    }
    Ok((id.clone(), line))
}

/// The suite's `defaults` key.
fn defaults_of(src: &Source, file: &File) -> Result<Defaults, Error> {
    let Some(d) = &file.defaults else {
        return Ok(Defaults::Diffusers);
    };
    match d.get_ref().as_str() {
        "diffusers" => Ok(Defaults::Diffusers),
        "sglang" => Ok(Defaults::Sglang),
        other => Err(src.fail(
            src.line(d.span().start),
            format!("defaults `{other}` is not one of diffusers, sglang"),
        )),
    }
}

/// The suite's `thresholds` key: a file next to the case file, which must exist.
fn thresholds_of(src: &Source, file: &File) -> Result<Option<PathBuf>, Error> {
    let Some(t) = &file.thresholds else {
        return Ok(None);
    };
    let p = src.base.join(t.get_ref());
    if !p.is_file() {
        return Err(src.fail(
            src.line(t.span().start),
            format!("threshold file {} {}", p.display(), not_a_file(&p)),
        ));
    }
    Ok(Some(p))
}
