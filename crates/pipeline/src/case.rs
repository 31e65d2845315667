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

//!
//! A suite may declare, above its cases, which defaults fill the fields a case leaves out
//! (`defaults = "diffusers"`, the default, or `"sglang"`: [`SglangPreset`]), where its ground
//! truth lives (`gt_root`) and which threshold file holds it to account (`thresholds`); a case may
//! be listed but not run (`skip = "reason"`). [`load_suite`] gives all of it, [`load`] the cases.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use torch_rng::{CudaPlatform, GeneratorDevice};

use crate::{Error, InitialLatents, InputImage, LayeredOptions, Request};
use image_io::LayeredResolution;

/// Which defaults fill the fields a case leaves out (the suite's `defaults` key).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Defaults {
    /// diffusers' `__call__` defaults, as the tiny cases use them: no negative prompt (CFG off),
    /// 1024×1024, 50 steps, seed 0 on the CPU generator, PNG output.
    #[default]
    Diffusers,
    /// SGLang's Qwen-Image sampling parameters ([`SglangPreset`]), so that a case copied from
    /// upstream's `gpu_cases.py` means what it means there.
    Sglang,
}

impl Defaults {
    /// `diffusers` or `sglang`, as the case file spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Defaults::Diffusers => "diffusers",
            Defaults::Sglang => "sglang",
        }
    }
}

/// Which `torch.Generator` draws a seeded case's noise (the case's `generator` key).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GeneratorKind {
    /// `torch.Generator("cpu")`: the same noise on every machine.
    Cpu,
    /// `torch.Generator("cuda")`: what upstream's official GT (`--generator-device cuda`) and
    /// SGLang (request default `generator_device="cuda"`) draw; its layout depends on the GPU,
    /// which the run's consistency platform names.
    Cuda,
}

impl GeneratorKind {
    /// `cpu` or `cuda`.
    pub fn as_str(self) -> &'static str {
        match self {
            GeneratorKind::Cpu => "cpu",
            GeneratorKind::Cuda => "cuda",
        }
    }

    /// The generator on a machine whose CUDA launch layout is `cuda` (ignored for the CPU).
    pub fn device(self, cuda: CudaPlatform) -> GeneratorDevice {
        match self {
            GeneratorKind::Cpu => GeneratorDevice::Cpu,
            GeneratorKind::Cuda => GeneratorDevice::Cuda(cuda),
        }
    }
}

/// SGLang's sampling defaults for the Qwen-Image family (`configs/sample/qwenimage.py` in
/// sgl-project/sglang): for a repo id chosen as SGLang's model registry chooses them, by the
/// model path (`Qwen/Qwen-Image-Edit-2511` → [`SglangPreset::EditPlus`]); for a local folder by
/// the `_class_name` of its `model_index.json` (a folder's name says nothing reliable).
///
/// Common to all: negative prompt `" "`, `guidance_scale` 4.0 (which becomes the true-CFG scale,
/// as upstream's official GT maps it for `QwenImage*` pipelines), seed 42 (the server's
/// `SamplingParams.seed` and the official GT script's `setdefault("seed", 42)`), the CUDA
/// generator (the request's `generator_device="cuda"`) and JPEG output (`output_format_to_ext(None)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SglangPreset {
    /// `QwenImageSamplingParams` (Qwen-Image and Qwen-Image-Edit): 50 steps.
    QwenImage,
    /// `QwenImage2512SamplingParams`: as [`SglangPreset::QwenImage`] with a long Chinese
    /// negative prompt.
    QwenImage2512,
    /// `QwenImageEditPlusSamplingParams` (Edit-2509, Edit-2511): 40 steps.
    EditPlus,
    /// `QwenImageLayeredSamplingParams`: the 640 bucket, 50 steps, prompt `" "` (the pipeline then
    /// captions the input image), `cfg_normalize` and `use_en_prompt` on.
    Layered,
}

/// `QwenImage2512SamplingParams.negative_prompt`.
const NEGATIVE_PROMPT_2512: &str = "低分辨率，低画质，肢体畸形，手指畸形，画面过饱和，蜡像感，人脸无细节，过度光滑，画面具有AI感。构图混乱。文字模糊，扭曲。";

impl SglangPreset {
    /// The SGLang class name (`QwenImageEditPlusSamplingParams`).
    pub fn class_name(self) -> &'static str {
        match self {
            SglangPreset::QwenImage => "QwenImageSamplingParams",
            SglangPreset::QwenImage2512 => "QwenImage2512SamplingParams",
            SglangPreset::EditPlus => "QwenImageEditPlusSamplingParams",
            SglangPreset::Layered => "QwenImageLayeredSamplingParams",
        }
    }

    /// SGLang's registry detectors, applied to the model path as given (a repo id or a folder):
    /// exact paths first, then the lower-cased substring rules of `registry.py`.
    pub fn from_model_path(model: &str) -> Option<Self> {
        let exact = match model {
            "Qwen/Qwen-Image" | "nvidia/Qwen-Image-NVFP4" | "Qwen/Qwen-Image-Edit" => {
                Some(SglangPreset::QwenImage)
            }
            "Qwen/Qwen-Image-2512" => Some(SglangPreset::QwenImage2512),
            "Qwen/Qwen-Image-Edit-2509"
            | "Qwen/Qwen-Image-Edit-2511"
            | "FireRedTeam/FireRed-Image-Edit-1.0"
            | "FireRedTeam/FireRed-Image-Edit-1.1" => Some(SglangPreset::EditPlus),
            "Qwen/Qwen-Image-Layered" => Some(SglangPreset::Layered),
            _ => None,
        };
        if exact.is_some() {
            return exact;
        }
        let m = model.to_ascii_lowercase();
        let has = |s: &str| m.contains(s);
        if has("qwen-image-edit-2509") || has("qwen-image-edit-2511") {
            Some(SglangPreset::EditPlus)
        } else if has("qwen-image-layered") {
            Some(SglangPreset::Layered)
        } else if has("qwen-image-2512") {
            Some(SglangPreset::QwenImage2512)
        } else if has("qwen-image-edit") || (has("qwen-image") && !has("edit")) {
            // Qwen-Image and Qwen-Image-Edit share QwenImageSamplingParams.
            Some(SglangPreset::QwenImage)
        } else {
            None
        }
    }

    /// From a pipeline class (`model_index.json`'s `_class_name`).
    pub fn from_class_name(class: &str) -> Option<Self> {
        match class {
            "QwenImagePipeline" | "QwenImageEditPipeline" => Some(SglangPreset::QwenImage),
            "QwenImageEditPlusPipeline" => Some(SglangPreset::EditPlus),
            "QwenImageLayeredPipeline" => Some(SglangPreset::Layered),
            _ => None,
        }
    }

    /// `negative_prompt`.
    pub fn negative_prompt(self) -> &'static str {
        match self {
            SglangPreset::QwenImage2512 => NEGATIVE_PROMPT_2512,
            _ => " ",
        }
    }

    /// `guidance_scale` (4.0 everywhere).
    pub fn guidance_scale(self) -> f32 {
        4.0
    }

    /// `num_inference_steps`.
    pub fn num_inference_steps(self) -> usize {
        match self {
            SglangPreset::EditPlus => 40,
            _ => 50,
        }
    }

    /// Layered's resolution bucket: SGLang's `height = width = 640`, which the Layered pipeline
    /// takes as its `resolution` (the output keeps the input image's aspect at about 640² pixels).
    /// Other presets have no size default: text-to-image cases give theirs (upstream's
    /// `output_size`), Edit cases without one take it from the input image.
    pub fn resolution(self) -> Option<u32> {
        matches!(self, SglangPreset::Layered).then_some(640)
    }

    /// The prompt when a case gives none (Layered: `" "`, which makes the pipeline caption the
    /// input image); other presets have none, so a case must give one.
    pub fn prompt(self) -> Option<&'static str> {
        match self {
            SglangPreset::Layered => Some(" "),
            _ => None,
        }
    }

    /// Layered's `cfg_normalize` (on; diffusers' own default is off).
    pub fn cfg_normalize(self) -> Option<bool> {
        matches!(self, SglangPreset::Layered).then_some(true)
    }

    /// Layered's `use_en_prompt` (on: an English caption when the prompt is blank).
    pub fn use_en_prompt(self) -> Option<bool> {
        matches!(self, SglangPreset::Layered).then_some(true)
    }

    /// The seed when a case gives none: 42.
    pub const SEED: u64 = 42;
}

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
    /// `None`: the pipeline's default (text to image: 1024; Edit: from the input image).
    pub height: Option<usize>,
    pub width: Option<usize>,
    pub num_inference_steps: usize,
    pub seed: Option<u64>,
    /// The generator a seed is drawn with (`cpu` unless the case or SGLang's defaults say `cuda`).
    pub generator: GeneratorKind,
    pub latents: Option<PathBuf>,
    /// The input images of an Edit / Edit-Plus case, in order (`image = "…"` or `image = [...]`;
    /// empty for text to image).
    pub images: Vec<ImageSource>,
    /// Part of the GT file name (`<id>_<n>gpu.<ext>`).
    pub num_gpus: u32,
    /// `png`, `jpg` or `webp`.
    pub output_format: String,
    /// Listed but not run, and why (e.g. a feature this project does not have).
    pub skip: Option<String>,
    /// The SGLang preset whose defaults filled this case's missing fields (`defaults = "sglang"`).
    pub preset: Option<SglangPreset>,
    /// The fields filled from defaults, as `name = value` (for reports).
    pub defaulted: Vec<String>,
    /// Layered (`layers`, `resolution`, `cfg_normalize`, `use_en_prompt`): diffusers' defaults
    /// where absent (4 layers, bucket 640, off, off), or SGLang's with `defaults = "sglang"`
    /// (bucket 640, `cfg_normalize` and `use_en_prompt` on). Other pipelines ignore them.
    pub layered: LayeredOptions,
}

/// Where one input image of a case comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageSource {
    /// A file (relative paths are joined to the case file's folder; checked to exist).
    File(PathBuf),
    /// An http(s) URL, fetched by the caller (the runner: through the GT files' verified cache).
    Url(String),
}

impl ImageSource {
    /// The path or the URL, as reports show it.
    pub fn display(&self) -> String {
        match self {
            ImageSource::File(p) => p.display().to_string(),
            ImageSource::Url(u) => u.clone(),
        }
    }
}

impl Case {
    /// The case's input images read as diffusers' `load_image` reads them; `fetch_url` turns a
    /// URL into a local file (the runner's verified cache) or says why it cannot. Errors name
    /// the case and the file or URL.
    pub fn load_images(
        &self,
        fetch_url: &mut dyn FnMut(&str) -> Result<PathBuf, String>,
    ) -> Result<Vec<InputImage>, Error> {
        self.images
            .iter()
            .map(|src| match src {
                ImageSource::File(p) => InputImage::load(p),
                ImageSource::Url(u) => {
                    let path = fetch_url(u).map_err(|reason| Error::InputImage {
                        image: u.clone(),
                        reason,
                    })?;
                    InputImage::load_as(path, u.as_str())
                }
            })
            .collect::<Result<Vec<_>, Error>>()
            .map_err(|e| Error::Request(format!("case `{}`: {e}", self.id)))
    }

    /// [`Case::request`] with the input images read ([`Case::load_images`]).
    pub fn request_with_images(
        &self,
        fetch_url: &mut dyn FnMut(&str) -> Result<PathBuf, String>,
    ) -> Result<Request, Error> {
        Ok(self.request().images(self.load_images(fetch_url)?))
    }

    /// The latents file when given (it wins), else the seed, else seed 0; a CUDA generator uses
    /// the H100 launch layout (see [`Case::initial_latents_on`]).
    pub fn initial_latents(&self) -> InitialLatents {
        self.initial_latents_on(CudaPlatform::H100)
    }

    /// [`Case::initial_latents`] with a CUDA generator laid out as on `cuda` (the run's
    /// consistency platform).
    pub fn initial_latents_on(&self, cuda: CudaPlatform) -> InitialLatents {
        match (&self.latents, self.seed) {
            (Some(p), _) => InitialLatents::File(p.clone()),
            (None, seed) => InitialLatents::seeded(seed.unwrap_or(0), self.generator.device(cuda)),
        }
    }

    /// The generation this case asks for (a CUDA generator in the H100 layout).
    pub fn request(&self) -> Request {
        self.request_on(CudaPlatform::H100)
    }

    /// The generation this case asks for, with a CUDA generator laid out as on `cuda`, without
    /// its input images (see [`Case::load_images`]). A size left out is the pipeline's default
    /// (text to image: 1024; Edit: from the last input image).
    pub fn request_on(&self, cuda: CudaPlatform) -> Request {
        let mut r = Request::edit(self.prompt.clone(), Vec::new())
            .steps(self.num_inference_steps)
            .latents(self.initial_latents_on(cuda));
        r.height = self.height;
        r.width = self.width;
        r.negative_prompt = self.negative_prompt.clone();
        r.true_cfg_scale = self.true_cfg_scale;
        r.guidance_scale = self.guidance_scale;
        r.layered = self.layered;
        r
    }
}

/// A whole case file: its suite-level settings and its cases (skipped ones included).
#[derive(Debug, Clone)]
pub struct Suite {
    /// Which defaults filled the cases' missing fields.
    pub defaults: Defaults,
    /// The GT root the suite is meant for (an http(s) base or a folder joined to the file's
    /// folder), used when the run gives none.
    pub gt_root: Option<String>,
    /// The threshold file (joined to the file's folder), used when the run gives none; a
    /// `<platform>.json` next to it is laid over it.
    pub thresholds: Option<PathBuf>,
    pub cases: Vec<Case>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    defaults: Option<toml::Spanned<String>>,
    gt_root: Option<String>,
    thresholds: Option<toml::Spanned<String>>,
    case: Vec<toml::Spanned<RawCase>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCase {
    id: toml::Spanned<String>,
    model: String,
    prompt: Option<String>,
    negative_prompt: Option<String>,
    true_cfg_scale: Option<f32>,
    guidance_scale: Option<f32>,
    height: Option<usize>,
    width: Option<usize>,
    num_inference_steps: Option<usize>,
    seed: Option<u64>,
    generator: Option<String>,
    latents: Option<String>,
    image: Option<OneOrMany>,
    num_gpus: Option<u32>,
    output_format: Option<String>,
    skip: Option<String>,
    layers: Option<usize>,
    resolution: Option<u32>,
    cfg_normalize: Option<bool>,
    use_en_prompt: Option<bool>,
}

/// `image = "a.png"` or `image = ["a.png", "https://…/b.jpg"]`.
#[derive(Deserialize)]
#[serde(
    untagged,
    expecting = "`image` to be a file or http(s) URL, or a list of them"
)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
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
            let lower = s.trim().to_ascii_lowercase();
            if lower.starts_with("http://") || lower.starts_with("https://") {
                Ok(ImageSource::Url(s.trim().to_string()))
            } else if s.trim().is_empty() || s.contains("://") {
                Err(format!("image `{s}` is neither a file nor an http(s) URL"))
            } else {
                let p = base.join(&s);
                if p.is_file() {
                    Ok(ImageSource::File(p))
                } else {
                    Err(format!("image file {} does not exist", p.display()))
                }
            }
        })
        .collect()
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

/// Read, parse and validate a case file. Errors name the file and the line at fault. The
/// file's structure (keys, types, ids, paths) is checked here; each case's values (sizes, step
/// count, CFG scales) by [`Case::validate`], so that one impossible case does not stop the others.
pub fn load(path: &Path) -> Result<Vec<Case>, Error> {
    Ok(load_suite(path)?.cases)
}

/// Read, parse and validate a case file with its suite-level settings.
pub fn load_suite(path: &Path) -> Result<Suite, Error> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::CaseFile {
        path: path.to_path_buf(),
        line: None,
        reason: format!("cannot read the case file: {e}"),
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
    let defaults = match &file.defaults {
        None => Defaults::Diffusers,
        Some(d) => match d.get_ref().as_str() {
            "diffusers" => Defaults::Diffusers,
            "sglang" => Defaults::Sglang,
            other => {
                return Err(fail(
                    Some(line_of(text, d.span().start)),
                    format!("defaults `{other}` is not one of diffusers, sglang"),
                ));
            }
        },
    };
    let thresholds = match &file.thresholds {
        None => None,
        Some(t) => {
            let p = base.join(t.get_ref());
            if !p.is_file() {
                return Err(fail(
                    Some(line_of(text, t.span().start)),
                    format!("threshold file {} does not exist", p.display()),
                ));
            }
            Some(p)
        }
    };
    // A remote root stays as written; a folder is relative to the case file.
    let gt_root = file.gt_root.as_ref().map(|r| {
        if r.contains("://") {
            r.clone()
        } else {
            base.join(r).to_string_lossy().into_owned()
        }
    });
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
        let preset = match defaults {
            Defaults::Diffusers => None,
            Defaults::Sglang => Some(sglang_preset(&raw.model, &local).map_err(|why| {
                fail(
                    case_line,
                    format!("case `{id}`: which SGLang defaults apply is unknown: {why}"),
                )
            })?),
        };
        let mut defaulted = Vec::new();
        let mut note = |field: &str, value: String| defaulted.push(format!("{field} = {value}"));

        let prompt = match (raw.prompt, preset.and_then(SglangPreset::prompt)) {
            (Some(p), _) => p,
            (None, Some(p)) => {
                note("prompt", format!("{p:?}"));
                p.to_string()
            }
            (None, None) => return Err(fail(case_line, format!("case `{id}` has no prompt"))),
        };
        // A Layered case captions an empty prompt (as diffusers does for None, "" and " ").
        let layered = raw.layers.is_some() || matches!(preset, Some(SglangPreset::Layered));
        if prompt.is_empty() && !layered {
            return Err(fail(case_line, format!("case `{id}` has an empty prompt")));
        }
        let negative_prompt = raw.negative_prompt.or_else(|| {
            let p = preset?.negative_prompt();
            note("negative_prompt", format!("{p:?}"));
            Some(p.to_string())
        });
        let guidance_scale = raw.guidance_scale.or_else(|| {
            let g = preset?.guidance_scale();
            note("guidance_scale", g.to_string());
            Some(g)
        });
        let (height, width) = (raw.height, raw.width);
        let num_inference_steps = raw.num_inference_steps.unwrap_or_else(|| {
            let n = preset.map_or(50, SglangPreset::num_inference_steps);
            note("num_inference_steps", n.to_string());
            n
        });
        let seed = raw.seed.or_else(|| {
            preset?;
            note("seed", SglangPreset::SEED.to_string());
            Some(SglangPreset::SEED)
        });
        let generator = match raw.generator.as_deref() {
            Some("cpu") => GeneratorKind::Cpu,
            Some("cuda") => GeneratorKind::Cuda,
            Some(other) => {
                return Err(fail(
                    case_line,
                    format!("case `{id}`: generator `{other}` is not one of cpu, cuda"),
                ));
            }
            None => {
                let g = if preset.is_some() {
                    GeneratorKind::Cuda
                } else {
                    GeneratorKind::Cpu
                };
                note("generator", format!("{:?}", g.as_str()));
                g
            }
        };
        let num_gpus = raw.num_gpus.unwrap_or(1);
        let fmt = match raw.output_format.as_deref() {
            Some(f) => match f.to_ascii_lowercase().as_str() {
                "png" => "png",
                "jpg" | "jpeg" => "jpg",
                "webp" => "webp",
                other => {
                    return Err(fail(
                        case_line,
                        format!(
                            "case `{id}`: output_format `{other}` is not one of png, jpg, webp"
                        ),
                    ));
                }
            },
            None => {
                // Upstream's output_format_to_ext(None) is jpg; the tiny cases predate it.
                let f = if preset.is_some() { "jpg" } else { "png" };
                note("output_format", format!("{f:?}"));
                f
            }
        };
        // Values (sizes, steps, num_gpus, CFG scales) are checked per case by `Case::validate`,
        // so that a runner reports one case that cannot run and still runs the others.
        if raw.skip.as_deref().is_some_and(|r| r.trim().is_empty()) {
            return Err(fail(
                case_line,
                format!("case `{id}`: skip needs a reason (skip = \"why\")"),
            ));
        }
        let images = image_sources(raw.image, base)
            .map_err(|reason| fail(case_line, format!("case `{id}`: {reason}")))?;
        let latents = raw.latents.map(|l| base.join(l));
        if let Some(l) = &latents
            && !l.is_file()
        {
            return Err(fail(
                case_line,
                format!("case `{id}`: latents file {} does not exist", l.display()),
            ));
        }
        let given = (
            raw.layers,
            raw.resolution,
            raw.cfg_normalize,
            raw.use_en_prompt,
        );
        let layered = layered_options(given, preset, &mut note)
            .map_err(|why| fail(case_line, format!("case `{id}`: {why}")))?;
        out.push(Case {
            layered,
            id,
            model,
            prompt,
            negative_prompt,
            true_cfg_scale: raw.true_cfg_scale,
            guidance_scale,
            height,
            width,
            num_inference_steps,
            seed,
            generator,
            latents,
            images,
            num_gpus,
            output_format: fmt.into(),
            skip: raw.skip,
            preset,
            defaulted,
        });
    }
    if out.is_empty() {
        return Err(fail(None, "no [[case]] entries".into()));
    }
    Ok(Suite {
        defaults,
        gt_root,
        thresholds,
        cases: out,
    })
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
    note: &mut dyn FnMut(&str, String),
) -> Result<LayeredOptions, String> {
    let mut o = LayeredOptions::default();
    if let Some(n) = layers {
        if !(1..=crate::MAX_LAYERS).contains(&n) {
            return Err(format!(
                "layers must be between 1 and {} (got {n})",
                crate::MAX_LAYERS
            ));
        }
        o.layers = n;
    }
    let resolution = resolution.or_else(|| {
        let r = preset?.resolution()?;
        note("resolution", r.to_string());
        Some(r)
    });
    if let Some(r) = resolution {
        o.resolution = LayeredResolution::from_pixels(r)
            .ok_or_else(|| format!("resolution {r} is not one of the buckets 640, 1024"))?;
    }
    let mut flag = |given: Option<bool>, default: Option<bool>, name: &str| {
        given.or_else(|| {
            let d = default?;
            note(name, d.to_string());
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

/// The SGLang preset for a case's model: a local folder's `model_index.json` `_class_name`, else
/// SGLang's registry rules on the repo id.
fn sglang_preset(model: &str, local: &Path) -> Result<SglangPreset, String> {
    // A folder says what it is in model_index.json; a repo id is classified as SGLang's registry
    // does it, by name.
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
    fn an_empty_prompt_is_a_caption_request_only_for_layered_cases() {
        let case = |extra: &str| {
            format!("[[case]]\nid = \"a\"\nmodel = \"../tiny-qwen-image\"\nprompt = \"\"\n{extra}")
        };
        let e = p(&case("")).unwrap_err().to_string();
        assert!(e.contains("empty prompt"), "{e}");
        let cases = p(&case("layers = 2\n")).unwrap();
        assert_eq!(cases[0].prompt, "");
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
    fn images_are_files_or_urls_in_order() {
        let head =
            "[[case]]\nid = \"e\"\nmodel = \"../tiny-qwen-image-edit-plus\"\nprompt = \"x\"\n";
        let c = &p(&format!(
            "{head}image = [\"../e2e-edit/plus_gray.png\", \"https://example.com/a.jpg\"]\n"
        ))
        .unwrap()[0];
        assert!(
            matches!(&c.images[0], ImageSource::File(f) if f.ends_with("e2e-edit/plus_gray.png"))
        );
        assert_eq!(
            c.images[1],
            ImageSource::Url("https://example.com/a.jpg".into())
        );
        // No size given: the request leaves it to the pipeline (Edit: from the last image).
        let r = c.request();
        assert_eq!((r.height, r.width), (None, None));
        // Files are read as load_image reads them; a URL goes through the caller's fetcher,
        // whose refusal names the URL and the case.
        let e = c
            .request_with_images(&mut |u| Err(format!("offline: {u} not cached")))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("case `e`") && e.contains("https://example.com/a.jpg"),
            "{e}"
        );
        let one = &p(&format!("{head}image = \"../e2e-edit/edit_input.jpg\"\n")).unwrap()[0];
        let r = one
            .request_with_images(&mut |u| Err(u.to_string()))
            .unwrap();
        assert_eq!(r.images.len(), 1);
        assert_eq!(r.images[0].size(), (53, 37));

        for (bad, why) in [
            ("image = \"../e2e-edit/missing.png\"", "does not exist"),
            ("image = []", "lists no image"),
            ("image = \"ftp://example.com/a.png\"", "neither a file nor"),
            ("image = 3", "image"),
        ] {
            let e = p(&format!("{head}{bad}\n")).unwrap_err().to_string();
            assert!(e.contains("x.toml:") && e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn every_field_reaches_the_request() {
        let text = "[[case]]\nid = \"a\"\nmodel = \"../tiny-qwen-image\"\nprompt = \"x\"\n\
                    negative_prompt = \" \"\nguidance_scale = 2.5\nheight = 48\nwidth = 80\n\
                    num_inference_steps = 3\nseed = 7\n";
        let c = &p(text).unwrap()[0];
        let r = c.request();
        assert_eq!(r.guidance().unwrap().scale(), Some(2.5));
        assert_eq!(
            (r.height, r.width, r.num_inference_steps),
            (Some(48), Some(80), 3)
        );
        assert!(matches!(r.latents, InitialLatents::Seed(7)));
        assert_eq!(r.negative_prompt.as_deref(), Some(" "));
    }

    #[test]
    fn sglang_defaults_fill_what_a_case_leaves_out() {
        let text = "defaults = \"sglang\"\n\
                    [[case]]\nid = \"t2i\"\nmodel = \"Qwen/Qwen-Image\"\nprompt = \"x\"\n\
                    height = 1024\nwidth = 1024\n\
                    [[case]]\nid = \"plus\"\nmodel = \"Qwen/Qwen-Image-Edit-2511\"\nprompt = \"x\"\n\
                    [[case]]\nid = \"layered\"\nmodel = \"Qwen/Qwen-Image-Layered\"\n\
                    output_format = \"png\"\n\
                    [[case]]\nid = \"nvfp4\"\nmodel = \"lmsys/qwen-image-2512-modelopt-nvfp4-sglang\"\n\
                    prompt = \"x\"\nseed = 0\nnum_inference_steps = 12\ngenerator = \"cpu\"\n\
                    skip = \"nvfp4\"\n";
        let suite = parse_suite(text, Path::new("/nowhere/s.toml")).unwrap();
        assert_eq!(suite.defaults, Defaults::Sglang);
        let [t2i, plus, layered, nvfp4] = &suite.cases[..] else {
            panic!("four cases")
        };
        assert_eq!(t2i.preset, Some(SglangPreset::QwenImage));
        assert_eq!(t2i.negative_prompt.as_deref(), Some(" "));
        assert_eq!(t2i.guidance_scale, Some(4.0));
        assert_eq!(t2i.true_cfg_scale, None);
        assert_eq!((t2i.num_inference_steps, t2i.seed), (50, Some(42)));
        assert_eq!(
            (t2i.generator, t2i.output_format.as_str()),
            (GeneratorKind::Cuda, "jpg")
        );
        // guidance_scale becomes the true-CFG scale (upstream's official GT maps it so).
        assert_eq!(t2i.request().guidance().unwrap().scale(), Some(4.0));
        assert!(matches!(
            t2i.request_on(CudaPlatform::B200).latents,
            InitialLatents::Seeded(42, GeneratorDevice::Cuda(CudaPlatform::B200))
        ));
        assert_eq!(plus.preset, Some(SglangPreset::EditPlus));
        assert_eq!(plus.num_inference_steps, 40);
        assert_eq!(layered.preset, Some(SglangPreset::Layered));
        assert_eq!((layered.height, layered.width), (None, None));
        assert_eq!(SglangPreset::Layered.resolution(), Some(640));
        assert_eq!((plus.height, plus.width), (None, None));
        assert_eq!(layered.prompt, " ");
        assert_eq!(layered.output_format, "png");
        assert!(layered.defaulted.iter().any(|d| d == "prompt = \" \""));
        assert_eq!(nvfp4.preset, Some(SglangPreset::QwenImage2512));
        assert!(
            nvfp4
                .negative_prompt
                .as_deref()
                .unwrap()
                .starts_with("低分辨率")
        );
        assert_eq!((nvfp4.seed, nvfp4.num_inference_steps), (Some(0), 12));
        assert_eq!(nvfp4.generator, GeneratorKind::Cpu);
        assert_eq!(nvfp4.skip.as_deref(), Some("nvfp4"));
    }

    #[test]
    fn diffusers_defaults_keep_the_tiny_cases_as_they_were() {
        let c =
            &p("[[case]]\nid = \"a\"\nmodel = \"../tiny-qwen-image\"\nprompt = \"x\"\nseed = 3\n")
                .unwrap()[0];
        assert_eq!((c.height, c.width, c.num_inference_steps), (None, None, 50));
        assert_eq!(c.negative_prompt, None);
        assert_eq!(c.guidance_scale, None);
        assert_eq!(
            (c.generator, c.output_format.as_str()),
            (GeneratorKind::Cpu, "png")
        );
        assert_eq!(c.preset, None);
        assert!(matches!(c.request().latents, InitialLatents::Seed(3)));
        assert_eq!(
            c.initial_latents().generator().as_deref(),
            Some("torch-cpu")
        );
    }

    #[test]
    fn a_local_folder_takes_its_preset_from_model_index() {
        let text = "defaults = \"sglang\"\n[[case]]\nid = \"a\"\nmodel = \"../tiny-qwen-image-edit-plus\"\nprompt = \"x\"\n";
        let c = &p(text).unwrap()[0];
        assert_eq!(c.preset, Some(SglangPreset::EditPlus));
        assert_eq!(c.num_inference_steps, 40);
    }

    #[test]
    fn suite_keys_and_new_fields_are_checked() {
        let head = "[[case]]\nid = \"a\"\nmodel = \"../tiny-qwen-image\"\nprompt = \"x\"\n";
        let e = p(&format!("defaults = \"comfy\"\n{head}"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("x.toml:1") && e.contains("comfy"), "{e}");
        let e = p(&format!("thresholds = \"nope.json\"\n{head}"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("x.toml:1") && e.contains("nope.json"), "{e}");
        let e = p(&format!("{head}generator = \"tpu\"\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("x.toml:1") && e.contains("tpu"), "{e}");
        let e = p(&format!("{head}skip = \" \"\n")).unwrap_err().to_string();
        assert!(e.contains("reason"), "{e}");
        let e = p(
            "defaults = \"sglang\"\n[[case]]\nid = \"a\"\nmodel = \"acme/flux\"\nprompt = \"x\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("SGLang") && e.contains("acme/flux"), "{e}");
        let e = p("[[case]]\nid = \"a\"\nmodel = \"Qwen/Qwen-Image-Layered\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("no prompt"), "{e}");
        let suite = parse_suite(
            &format!("gt_root = \"gt\"\nthresholds = \"tiny.toml\"\n{head}generator = \"cuda\"\n"),
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/cases/x.toml"),
        )
        .unwrap();
        assert!(suite.gt_root.unwrap().ends_with("cases/gt"));
        assert!(suite.thresholds.unwrap().is_file());
        assert!(matches!(
            suite.cases[0].request().latents,
            InitialLatents::Seeded(0, GeneratorDevice::Cuda(CudaPlatform::H100))
        ));
    }
}
