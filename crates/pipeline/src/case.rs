//! The consistency case file (TOML; paths relative to the file), as docs/formats.md fixes it:
//! parsed and validated in one place, for the runner (`cargo xtask consistency`) and for this
//! crate's end-to-end test alike.
//!
//! ```
//! let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/cases/tiny.toml");
//! let cases = pipeline::case::load(&path)?;
//! let request = cases[0].request(); // what the runner generates for the first case
//! # let _ = request;
//! # Ok::<(), pipeline::Error>(())
//! ```

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::{Error, InitialLatents, Request};

/// One consistency case, resolved: paths made absolute, the model classified, defaults applied.
#[derive(Debug, Clone)]
pub struct Case {
    pub id: String,
    /// A local folder (joined to the case file's folder) or an HF repo id.
    pub model: String,
    pub prompt: String,
    pub negative_prompt: Option<String>,
    pub true_cfg_scale: Option<f32>,
    pub guidance_scale: Option<f32>,
    pub height: usize,
    pub width: usize,
    pub num_inference_steps: usize,
    pub seed: Option<u64>,
    pub latents: Option<PathBuf>,
    /// Part of the GT file name (`<id>_<n>gpu.<ext>`).
    pub num_gpus: u32,
    /// `png`, `jpg` or `webp`.
    pub output_format: String,
}

impl Case {
    /// The latents file when given (it wins), else the seed, else seed 0.
    pub fn initial_latents(&self) -> InitialLatents {
        InitialLatents::from_options(self.latents.as_deref(), self.seed)
    }

    /// The generation this case asks for.
    pub fn request(&self) -> Request {
        let mut r = Request::new(self.prompt.clone(), self.height, self.width)
            .steps(self.num_inference_steps)
            .latents(self.initial_latents());
        r.negative_prompt = self.negative_prompt.clone();
        r.true_cfg_scale = self.true_cfg_scale;
        r.guidance_scale = self.guidance_scale;
        r
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    case: Vec<toml::Spanned<RawCase>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCase {
    id: toml::Spanned<String>,
    model: String,
    prompt: String,
    negative_prompt: Option<String>,
    true_cfg_scale: Option<f32>,
    guidance_scale: Option<f32>,
    #[serde(default = "default_size")]
    height: usize,
    #[serde(default = "default_size")]
    width: usize,
    #[serde(default = "default_steps")]
    num_inference_steps: usize,
    seed: Option<u64>,
    latents: Option<String>,
    #[serde(default = "one")]
    num_gpus: u32,
    #[serde(default = "png")]
    output_format: String,
}

fn default_size() -> usize {
    1024
}
fn default_steps() -> usize {
    50
}
fn one() -> u32 {
    1
}
fn png() -> String {
    "png".into()
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// A case id may only use `[A-Za-z0-9_.-]` (it becomes file names and URLs).
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id != "."
        && id != ".."
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// Read, parse and validate a case file. Errors name the file and the line at fault.
pub fn load(path: &Path) -> Result<Vec<Case>, Error> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::CaseFile {
        path: path.to_path_buf(),
        line: None,
        reason: format!("cannot read the case file: {e}"),
    })?;
    parse(&text, path)
}

/// Parse and validate the text of a case file; `path` names it in errors and anchors relative
/// paths (`model`, `latents`).
pub fn parse(text: &str, path: &Path) -> Result<Vec<Case>, Error> {
    let fail = |line: Option<usize>, reason: String| Error::CaseFile {
        path: path.to_path_buf(),
        line,
        reason,
    };
    let file: File = toml::from_str(text).map_err(|e| {
        fail(
            e.span().map(|s| line_of(text, s.start)),
            e.message().to_string(),
        )
    })?;
    let base = path.parent().unwrap_or(Path::new("."));
    let mut seen = std::collections::BTreeSet::new();
    let mut out = Vec::new();
    for spanned in file.case {
        let case_line = Some(line_of(text, spanned.span().start));
        let raw = spanned.into_inner();
        let id_line = Some(line_of(text, raw.id.span().start));
        let id = raw.id.into_inner();
        if !valid_id(&id) {
            return Err(fail(
                id_line,
                format!(
                    "case id `{id}` is invalid: only letters, digits, `_`, `.` and `-` are allowed"
                ),
            ));
        }
        if !seen.insert(id.clone()) {
            return Err(fail(id_line, format!("case id `{id}` appears twice")));
        }
        if raw.prompt.is_empty() {
            return Err(fail(case_line, format!("case `{id}` has an empty prompt")));
        }
        let fmt = match raw.output_format.to_ascii_lowercase().as_str() {
            "png" => "png",
            "jpg" | "jpeg" => "jpg",
            "webp" => "webp",
            other => {
                return Err(fail(
                    case_line,
                    format!("case `{id}`: output_format `{other}` is not one of png, jpg, webp"),
                ));
            }
        };
        if raw.height == 0 || raw.width == 0 || raw.num_inference_steps == 0 || raw.num_gpus == 0 {
            return Err(fail(
                case_line,
                format!(
                    "case `{id}`: height, width, num_inference_steps and num_gpus must be positive"
                ),
            ));
        }
        let local = base.join(&raw.model);
        let model = if local.is_dir() {
            local.to_string_lossy().into_owned()
        } else if weights::is_repo_id(&raw.model) {
            raw.model.clone()
        } else {
            return Err(fail(
                case_line,
                format!(
                    "case `{id}`: model `{}` is neither a folder ({} does not exist) nor an HF repo id",
                    raw.model,
                    local.display()
                ),
            ));
        };
        let latents = raw.latents.map(|l| base.join(l));
        if let Some(l) = &latents
            && !l.is_file()
        {
            return Err(fail(
                case_line,
                format!("case `{id}`: latents file {} does not exist", l.display()),
            ));
        }
        out.push(Case {
            id,
            model,
            prompt: raw.prompt,
            negative_prompt: raw.negative_prompt,
            true_cfg_scale: raw.true_cfg_scale,
            guidance_scale: raw.guidance_scale,
            height: raw.height,
            width: raw.width,
            num_inference_steps: raw.num_inference_steps,
            seed: raw.seed,
            latents,
            num_gpus: raw.num_gpus,
            output_format: fmt.into(),
        });
    }
    if out.is_empty() {
        return Err(fail(None, "no [[case]] entries".into()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> Result<Vec<Case>, Error> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/cases/x.toml");
        parse(text, &dir)
    }

    #[test]
    fn ids_are_restricted() {
        for ok in ["qwen_image_t2i", "a.b-c_1"] {
            assert!(valid_id(ok));
        }
        for bad in ["", "..", "../x", "a/b", "a b", "é"] {
            assert!(!valid_id(bad), "{bad}");
        }
    }

    #[test]
    fn bad_case_files_name_the_line() {
        let head = "[[case]]\nid = \"a\"\nmodel = \"../tiny-qwen-image\"\nprompt = \"x\"\n";
        let e = p(&format!("{head}colour = 3\n")).unwrap_err().to_string();
        assert!(e.contains("x.toml:5") && e.contains("colour"), "{e}");
        let e = p("[[case]]\nid = \"../evil\"\nmodel = \"../tiny-qwen-image\"\nprompt = \"x\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("x.toml:2") && e.contains("../evil"), "{e}");
        let e = p("[[case]]\nid = \"a\"\nmodel = \"../tiny-qwen-image\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("x.toml:1") && e.contains("prompt"), "{e}");
        let e = p(&format!("{head}output_format = \"gif\"\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("gif"), "{e}");
        let e = p("[[case]]\nid = \"a\"\nmodel = \"nowhere\"\nprompt = \"x\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("x.toml:1") && e.contains("neither a folder"),
            "{e}"
        );
    }

    #[test]
    fn every_field_reaches_the_request() {
        let text = "[[case]]\nid = \"a\"\nmodel = \"../tiny-qwen-image\"\nprompt = \"x\"\n\
                    negative_prompt = \" \"\nguidance_scale = 2.5\nheight = 48\nwidth = 80\n\
                    num_inference_steps = 3\nseed = 7\n";
        let c = &p(text).unwrap()[0];
        let r = c.request();
        assert_eq!(r.guidance().unwrap().scale(), Some(2.5));
        assert_eq!((r.height, r.width, r.num_inference_steps), (48, 80, 3));
        assert!(matches!(r.latents, InitialLatents::Seed(7)));
        assert_eq!(r.negative_prompt.as_deref(), Some(" "));
    }
}
