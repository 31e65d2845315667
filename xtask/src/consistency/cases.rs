//! The case file (TOML; paths relative to the file), as DESIGN.md fixes it.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::Deserialize;

/// One consistency case, resolved (paths made absolute, model classified).
#[derive(Debug, Clone)]
pub struct Case {
    pub id: String,
    /// A local folder (absolute) or an HF repo id.
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
    pub num_gpus: u32,
    pub output_format: String,
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

/// Parse and validate a case file. Errors name the file and the line at fault.
pub fn load(path: &Path) -> anyhow::Result<Vec<Case>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the case file {}", path.display()))?;
    parse(&text, path)
}

pub fn parse(text: &str, path: &Path) -> anyhow::Result<Vec<Case>> {
    let file: File = toml::from_str(text).map_err(|e| {
        let line = e.span().map(|s| line_of(text, s.start));
        match line {
            Some(l) => anyhow::anyhow!("{}:{l}: {}", path.display(), e.message()),
            None => anyhow::anyhow!("{}: {}", path.display(), e.message()),
        }
    })?;
    let base = path.parent().unwrap_or(Path::new("."));
    let mut seen = std::collections::BTreeSet::new();
    let mut out = Vec::new();
    for spanned in file.case {
        let case_line = line_of(text, spanned.span().start);
        let raw = spanned.into_inner();
        let id_line = line_of(text, raw.id.span().start);
        let id = raw.id.into_inner();
        let at = |line: usize| format!("{}:{line}", path.display());
        if !valid_id(&id) {
            bail!(
                "{}: case id `{id}` is invalid: only letters, digits, `_`, `.` and `-` are allowed",
                at(id_line)
            );
        }
        if !seen.insert(id.clone()) {
            bail!("{}: case id `{id}` appears twice", at(id_line));
        }
        if raw.prompt.is_empty() {
            bail!("{}: case `{id}` has an empty prompt", at(case_line));
        }
        let fmt = match raw.output_format.to_ascii_lowercase().as_str() {
            "png" => "png",
            "jpg" | "jpeg" => "jpg",
            "webp" => "webp",
            other => bail!(
                "{}: case `{id}`: output_format `{other}` is not one of png, jpg, webp",
                at(case_line)
            ),
        };
        if raw.height == 0 || raw.width == 0 || raw.num_inference_steps == 0 || raw.num_gpus == 0 {
            bail!(
                "{}: case `{id}`: height, width, num_inference_steps and num_gpus must be positive",
                at(case_line)
            );
        }
        let local = base.join(&raw.model);
        let model = if local.is_dir() {
            local.to_string_lossy().into_owned()
        } else if raw.model.split('/').count() == 2 && !raw.model.starts_with('.') {
            raw.model.clone()
        } else {
            bail!(
                "{}: case `{id}`: model `{}` is neither a folder ({} does not exist) nor an HF repo id",
                at(case_line),
                raw.model,
                local.display()
            );
        };
        let latents = raw.latents.map(|l| base.join(l));
        if let Some(l) = &latents
            && !l.is_file()
        {
            bail!(
                "{}: case `{id}`: latents file {} does not exist",
                at(case_line),
                l.display()
            );
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
        bail!("{}: no [[case]] entries", path.display());
    }
    Ok(out)
}

/// `K/N` (1-based K): the stable subset of cases a CI shard runs. Cases are ordered by id and
/// dealt round-robin, so adding a case moves few others.
pub fn partition(cases: Vec<Case>, spec: &str) -> anyhow::Result<Vec<Case>> {
    let (k, n) = spec
        .split_once('/')
        .and_then(|(k, n)| {
            Some((
                k.trim().parse::<usize>().ok()?,
                n.trim().parse::<usize>().ok()?,
            ))
        })
        .filter(|&(k, n)| n >= 1 && (1..=n).contains(&k))
        .with_context(|| format!("--partition `{spec}`: expected K/N with 1 ≤ K ≤ N, e.g. 2/4"))?;
    let mut sorted = cases;
    sorted.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(sorted
        .into_iter()
        .enumerate()
        .filter(|(i, _)| i % n == k - 1)
        .map(|(_, c)| c)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> anyhow::Result<Vec<Case>> {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/cases/x.toml");
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
    }

    #[test]
    fn partitions_are_stable_and_cover_everything() {
        let text = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/cases/tiny.toml"),
        )
        .unwrap();
        let all = p(&text).unwrap();
        let mut seen: Vec<String> = (1..=3)
            .flat_map(|k| partition(all.clone(), &format!("{k}/3")).unwrap())
            .map(|c| c.id)
            .collect();
        seen.sort();
        let mut ids: Vec<String> = all.iter().map(|c| c.id.clone()).collect();
        ids.sort();
        assert_eq!(seen, ids);
        assert!(partition(all, "0/2").is_err());
    }
}
