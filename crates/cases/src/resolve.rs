//! One `[[case]]` table resolved into a [`Case`]: the model classified (a folder next to the file,
//! else a repo id), the fields it leaves out filled from the suite's defaults (and noted for the
//! report), input images and latents checked to exist. Values are bounded later, per case, by
//! [`Case::validate`].

use std::path::Path;

use image_io::LayeredResolution;
use pipeline::{LayeredOptions, MAX_LAYERS, VisionPositions};

use crate::schema::{OneOrMany, RawCase};
use crate::source::{Source, not_a_file};
use crate::{Case, Defaults, Error, GeneratorKind, ImageSource, SglangPreset};

/// The fields a case took from defaults, as `name = value` (for reports).
#[derive(Default)]
struct Notes(Vec<String>);

impl Notes {
    fn note(&mut self, field: &str, value: String) {
        self.0.push(format!("{field} = {value}"));
    }
}

/// Resolve the case whose (already checked) id is `id`.
pub(crate) fn resolve_case(
    src: &Source,
    spanned: toml::Spanned<RawCase>,
    id: String,
    defaults: Defaults,
) -> Result<Case, Error> {
    let line = src.line(spanned.span().start);
    let fail = |reason: String| src.fail(line, reason);
    let raw = spanned.into_inner();
    let local = src.base.join(&raw.model);
    let model = if local.is_dir() {
        local.to_string_lossy().into_owned()
    } else if weights::is_repo_id(&raw.model) {
        raw.model.clone()
    } else {
        return Err(fail(format!(
            "case `{id}`: model `{}` is neither a folder ({} does not exist) nor an HF repo id",
            raw.model,
            local.display()
        )));
    };
    let preset = match defaults {
        Defaults::Diffusers => None,
        Defaults::Sglang => Some(sglang_preset(&raw.model, &local).map_err(|why| {
            fail(format!(
                "case `{id}`: which SGLang defaults apply is unknown: {why}"
            ))
        })?),
    };
    let mut notes = Notes::default();
    let mut case = sampling(&raw, &id, preset, &mut notes).map_err(&fail)?;
    case.refused = layered_keys_elsewhere(&raw, &local);
    case.generator = generator(raw.generator.as_deref(), preset, &mut notes)
        .map_err(|why| fail(format!("case `{id}`: {why}")))?;
    case.output_format = output_format(raw.output_format.as_deref(), preset, &mut notes)
        .map_err(|why| fail(format!("case `{id}`: {why}")))?;
    if raw.skip.as_deref().is_some_and(|r| r.trim().is_empty()) {
        return Err(fail(format!(
            "case `{id}`: skip needs a reason (skip = \"why\")"
        )));
    }
    case.images = image_sources(raw.image, src.base)
        .map_err(|reason| fail(format!("case `{id}`: {reason}")))?;
    case.latents = raw.latents.map(|l| src.base.join(l));
    if let Some(l) = &case.latents
        && !l.is_file()
    {
        return Err(fail(format!(
            "case `{id}`: latents file {} {}",
            l.display(),
            not_a_file(l)
        )));
    }
    let given = (
        raw.layers,
        raw.resolution,
        raw.cfg_normalize,
        raw.use_en_prompt,
    );
    case.layered = layered_options(given, preset, &mut notes)
        .map_err(|why| fail(format!("case `{id}`: {why}")))?;

    case.vision_positions = vision_positions(raw.vision_positions.as_deref())
        .map_err(|why| fail(format!("case `{id}`: {why}")))?;
    case.id = id;
    case.model = model;
    case.num_gpus = raw.num_gpus.unwrap_or(1);
    case.skip = raw.skip;
    case.preset = preset;
    case.defaulted = notes.0;
    Ok(case)
}

/// The prompt and sampling fields (prompts, scales, size, steps, seed), defaults filled from the
/// preset; the other fields are left for the caller to set.
fn sampling(
    raw: &RawCase,
    id: &str,
    preset: Option<SglangPreset>,
    notes: &mut Notes,
) -> Result<Case, String> {
    let prompt = match (&raw.prompt, preset.and_then(SglangPreset::prompt)) {
        (Some(p), _) => match preset {
            // SGLang captions any whitespace-only Layered prompt (the pipeline: "" only).
            Some(preset) => preset.layered_prompt(p),
            None => p.clone(),
        },
        (None, Some(p)) => {
            notes.note("prompt", format!("{p:?}"));
            p.to_string()
        }
        (None, None) => return Err(format!("case `{id}` has no prompt")),
    };
    // A Layered case captions an empty prompt (as diffusers does for None, "" and " ").
    let layered = raw.layers.is_some() || matches!(preset, Some(SglangPreset::Layered));
    if prompt.is_empty() && !layered {
        return Err(format!("case `{id}` has an empty prompt"));
    }
    let negative_prompt = raw.negative_prompt.clone().or_else(|| {
        let p = preset?.negative_prompt();
        notes.note("negative_prompt", format!("{p:?}"));
        Some(p.to_string())
    });
    let guidance_scale = raw.guidance_scale.or_else(|| {
        let g = preset?.guidance_scale();
        notes.note("guidance_scale", g.to_string());
        Some(g)
    });
    let num_inference_steps = raw.num_inference_steps.unwrap_or_else(|| {
        let n = preset.map_or(50, SglangPreset::num_inference_steps);
        notes.note("num_inference_steps", n.to_string());
        n
    });
    let seed = raw.seed.or_else(|| {
        preset?;
        notes.note("seed", SglangPreset::SEED.to_string());
        Some(SglangPreset::SEED)
    });
    Ok(Case {
        id: String::new(),
        model: String::new(),
        prompt,
        negative_prompt,
        true_cfg_scale: raw.true_cfg_scale,
        guidance_scale,
        height: raw.height,
        width: raw.width,
        num_inference_steps,
        seed,
        generator: GeneratorKind::Cpu,
        latents: None,
        images: Vec::new(),
        num_gpus: 1,
        output_format: String::new(),
        skip: None,
        preset,
        defaulted: Vec::new(),
        layered: LayeredOptions::default(),
        vision_positions: VisionPositions::default(),
        refused: None,
    })
}

/// The `vision_positions` key: `mrope` (the default) or `sequential`.
fn vision_positions(given: Option<&str>) -> Result<VisionPositions, String> {
    match given {
        None | Some("mrope") => Ok(VisionPositions::Mrope),
        Some("sequential") => Ok(VisionPositions::Sequential),
        Some(other) => Err(format!(
            "vision_positions `{other}` is not one of mrope, sequential"
        )),
    }
}

/// The `generator` key: `cpu` or `cuda`; absent, CUDA under SGLang's defaults (the request's
/// `generator_device="cuda"`), else the CPU.
fn generator(
    given: Option<&str>,
    preset: Option<SglangPreset>,
    notes: &mut Notes,
) -> Result<GeneratorKind, String> {
    match given {
        Some("cpu") => Ok(GeneratorKind::Cpu),
        Some("cuda") => Ok(GeneratorKind::Cuda),
        Some(other) => Err(format!("generator `{other}` is not one of cpu, cuda")),
        None => {
            let g = if preset.is_some() {
                GeneratorKind::Cuda
            } else {
                GeneratorKind::Cpu
            };
            notes.note("generator", format!("{:?}", g.as_str()));
            Ok(g)
        }
    }
}

/// The `output_format` key (`jpeg` spelled `jpg`); absent, upstream's `output_format_to_ext(None)`
/// (jpg) under SGLang's defaults, else png (the tiny cases predate it).
fn output_format(
    given: Option<&str>,
    preset: Option<SglangPreset>,
    notes: &mut Notes,
) -> Result<String, String> {
    let f = match given {
        Some(f) => match f.to_ascii_lowercase().as_str() {
            "png" => "png",
            "jpg" | "jpeg" => "jpg",
            "webp" => "webp",
            other => {
                return Err(format!(
                    "output_format `{other}` is not one of png, jpg, webp"
                ));
            }
        },
        None => {
            let f = if preset.is_some() { "jpg" } else { "png" };
            notes.note("output_format", format!("{f:?}"));
            f
        }
    };
    Ok(f.to_string())
}

/// A case's `image` entries: http(s) URLs as they are, paths joined to `base` and required to
/// exist.
fn image_sources(raw: Option<OneOrMany>, base: &Path) -> Result<Vec<ImageSource>, String> {
    let list = match raw {
        None => Vec::new(),
        Some(OneOrMany::One(s)) => vec![s],
        Some(OneOrMany::Many(v)) if v.is_empty() => {
            return Err("`image = []` lists no image (leave the key out for text to image)".into());
        }
        Some(OneOrMany::Many(v)) => v,
    };
    list.into_iter()
        .map(|s| {
            if gt_resolver::is_http_url(s.trim()) {
                Ok(ImageSource::Url(s.trim().to_string()))
            } else if s.trim().is_empty() || s.contains("://") {
                Err(format!("image `{s}` is neither a file nor an http(s) URL"))
            } else {
                let p = base.join(&s);
                if p.is_file() {
                    Ok(ImageSource::File(p))
                } else {
                    Err(format!("image file {} {}", p.display(), not_a_file(&p)))
                }
            }
        })
        .collect()
}

/// The Layered fields of a case, defaults filled (and noted) from the SGLang preset if any.
fn layered_options(
    (layers, resolution, cfg_normalize, use_en_prompt): (
        Option<usize>,
        Option<u32>,
        Option<bool>,
        Option<bool>,
    ),
    preset: Option<SglangPreset>,
    notes: &mut Notes,
) -> Result<LayeredOptions, String> {
    let mut o = LayeredOptions::default();
    if let Some(n) = layers {
        if !(1..=MAX_LAYERS).contains(&n) {
            return Err(format!(
                "layers must be between 1 and {MAX_LAYERS} (got {n})"
            ));
        }
        o.layers = n;
    }
    let resolution = resolution.or_else(|| {
        let r = preset?.resolution()?;
        notes.note("resolution", r.to_string());
        Some(r)
    });
    if let Some(r) = resolution {
        o.resolution = LayeredResolution::from_pixels(r)
            .ok_or_else(|| format!("resolution {r} is not one of the buckets 640, 1024"))?;
    }
    let mut flag = |given: Option<bool>, default: Option<bool>, name: &str| {
        given.or_else(|| {
            let d = default?;
            notes.note(name, d.to_string());
            Some(d)
        })
    };
    if let Some(b) = flag(
        cfg_normalize,
        preset.and_then(SglangPreset::cfg_normalize),
        "cfg_normalize",
    ) {
        o.cfg_normalize = b;
    }
    if let Some(b) = flag(
        use_en_prompt,
        preset.and_then(SglangPreset::use_en_prompt),
        "use_en_prompt",
    ) {
        o.use_en_prompt = b;
    }
    Ok(o)
}

/// The Layered keys a case gives (`layers`, `resolution`, `cfg_normalize`, `use_en_prompt`) when
/// its model is known not to be a Layered pipeline (a folder by its `_class_name`, a repo id by
/// SGLang's registry rules), as `generate` refuses `--layers` and the like on such a folder; `None`
/// when none is given or the model's kind is not known here.
fn layered_keys_elsewhere(raw: &RawCase, local: &Path) -> Option<String> {
    let keys: Vec<&str> = [
        ("layers", raw.layers.is_some()),
        ("resolution", raw.resolution.is_some()),
        ("cfg_normalize", raw.cfg_normalize.is_some()),
        ("use_en_prompt", raw.use_en_prompt.is_some()),
    ]
    .into_iter()
    .filter_map(|(k, given)| given.then_some(k))
    .collect();
    if keys.is_empty() {
        return None;
    }
    let class = if local.is_dir() {
        let dir = weights::PipelineDir::open(local).ok()?;
        dir.model_index().get("_class_name")?.as_str()?.to_string()
    } else {
        match SglangPreset::from_model_path(&raw.model)? {
            SglangPreset::Layered => return None,
            other => format!("{} model ({})", raw.model, other.class_name()),
        }
    };
    (class != "QwenImageLayeredPipeline").then(|| {
        format!(
            "{} apply to a QwenImageLayeredPipeline model; `{}` is a {class}",
            keys.join(", "),
            raw.model
        )
    })
}

/// The SGLang preset for a case's model: a local folder's `model_index.json` `_class_name`, else
/// SGLang's registry rules on the repo id.
fn sglang_preset(model: &str, local: &Path) -> Result<SglangPreset, String> {
    if !local.is_dir() {
        return SglangPreset::from_model_path(model)
            .ok_or_else(|| format!("`{model}` matches none of SGLang's Qwen-Image model paths"));
    }
    let dir = weights::PipelineDir::open(local).map_err(|e| e.to_string())?;
    let class = dir
        .model_index()
        .get("_class_name")
        .and_then(|c| c.as_str())
        .ok_or_else(|| format!("{}/model_index.json has no `_class_name`", local.display()))?;
    SglangPreset::from_class_name(class).ok_or_else(|| {
        format!(
            "{}/model_index.json names `{class}`, not a Qwen-Image pipeline",
            local.display()
        )
    })
}
