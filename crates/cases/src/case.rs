//! One resolved case ([`Case`]) and what it asks the pipeline for: its [`Request`], its input
//! images ([`ImageSource`], read through a fetcher the caller gives) and the check of its values
//! ([`Case::validate`]).

use std::path::PathBuf;

use pipeline::{
    InitialLatents, InputImage, LayeredOptions, Request, RequestFieldNames, VisionPositions,
};
use torch_rng::CudaPlatform;

use crate::{Defaults, Error, GeneratorKind, SglangPreset};

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
    /// How the text encoder numbers an Edit prompt's image tokens (`vision_positions = "mrope" |
    /// "sequential"`; default M-RoPE, as SGLang computes them; the official GT made with
    /// transformers ≥ 5.15 and diffusers ≤ 0.42.1 used sequential ones, diffusers #14194).
    pub vision_positions: VisionPositions,
    /// What the file allows but this case's model cannot take (Layered keys on a model that is
    /// not Layered): [`Case::validate`] refuses the case with it, so that it is reported as one
    /// that cannot run while the others run.
    pub refused: Option<String>,
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
                    let path = fetch_url(u).map_err(|reason| pipeline::Error::InputImage {
                        image: u.clone(),
                        reason,
                    })?;
                    InputImage::load_as(path, u.as_str())
                }
            })
            .collect::<Result<Vec<_>, pipeline::Error>>()
            .map_err(|e| pipeline::Error::Request(format!("case `{}`: {e}", self.id)).into())
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
        r.vision_positions = self.vision_positions;
        r
    }

    /// Check this case's values (sizes, `num_inference_steps`, `num_gpus`, CFG scales) with the
    /// case file's key names; a runner calls it before loading the case's model, so that a case
    /// that cannot run is reported as such while the other cases run.
    pub fn validate(&self) -> Result<(), Error> {
        let fail = |reason: String| Error::InvalidCase {
            id: self.id.clone(),
            reason,
        };
        if self.num_gpus == 0 {
            return Err(fail("num_gpus must be at least 1".into()));
        }
        if let Some(why) = &self.refused {
            return Err(fail(why.clone()));
        }
        self.request().check_named(&CASE_NAMES).map_err(fail)
    }
}

/// How the case file spells the bounded settings in messages.
const CASE_NAMES: RequestFieldNames = RequestFieldNames {
    height: "height",
    width: "width",
    steps: "num_inference_steps",
};

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
