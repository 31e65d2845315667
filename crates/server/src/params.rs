//! SGLang's request fields onto the pipeline's [`Request`]: the names and meanings of
//! `ImageGenerationsRequest` and the edits form (`protocol.py`, `image_api.py`), the model's
//! SGLang sampling defaults for what a request leaves out, `n` outputs with SGLang's seeds, and
//! the same bounds as `cargo xtask generate` (`Request::check_named`), each error naming the
//! field. Input images are read elsewhere ([`crate::inputs`]); a [`Plan`] is complete once they
//! are attached.

use image_io::LayeredResolution;
use pipeline::{InitialLatents, InputImage, MAX_LAYERS, PipelineKind, Request, RequestFieldNames};
use text_encoder::VisionPositions;
use torch_rng::{CudaPlatform, GeneratorDevice};

use crate::error::ApiError;
use crate::fields::{Fields, Seeds};
use crate::model::{Loaded, ServedModel};
use image_io::{DEFAULT_JPEG_QUALITY, OutputFormat};

/// SGLang clamps `n` to 1..=10 (`image_api.py`).
pub const MAX_N: usize = 10;

/// The request fields the pipeline's bounds are reported under.
const NAMES: RequestFieldNames = RequestFieldNames {
    height: "height",
    width: "width",
    steps: "num_inference_steps",
};

/// Fields of OpenAI's and SGLang's request models that change nothing here (no effect on a
/// Qwen-Image pipeline, or a feature this server does not have): accepted, and named in
/// `x-ignored-fields` like unknown ones.
const NO_EFFECT: &[&str] = &[
    "quality",
    "style",
    "user",
    "enable_teacache",
    "enable_upscaling",
    "upscaling_model_path",
    "upscaling_scale",
    "diffusers_kwargs",
    "perf_dump_path",
    "flow_shift",
];

/// What a client may send `response_format` as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseFormat {
    /// The image bytes base64-encoded in the answer (the default).
    B64Json,
    /// A link to `GET /v1/images/{id}/content`, kept for `--url-ttl`.
    Url,
}

/// The server-side facts a request is read against.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    pub model: &'a ServedModel,
    pub loaded: Loaded,
    /// The layout `generator_device="cuda"` draws its noise in (`--platform`).
    pub cuda: CudaPlatform,
}

/// A request read and checked: one pipeline request per output, and how to answer.
#[derive(Debug, Clone)]
pub struct Plan {
    /// One per output (`n`), each with its seed; input images attached by [`Plan::attach`].
    pub requests: Vec<Request>,
    pub seeds: Vec<u64>,
    /// `torch-cpu` or `torch-cuda:h100`.
    pub generator: String,
    pub format: OutputFormat,
    /// JPEG quality.
    pub quality: u8,
    pub response: ResponseFormat,
    /// The prompt as sent (SGLang's `revised_prompt`).
    pub prompt: String,
    /// Fields accepted without effect, unknown ones included, sorted.
    pub ignored: Vec<String>,
}

impl Plan {
    /// Read `fields` for the loaded model, with `images` input images to come. Fields the
    /// model does not use (Layered options on an Edit model, a size on a Layered one) are
    /// ignored, as SGLang ignores them.
    pub fn read(fields: &mut Fields, ctx: &Context, images: usize) -> Result<Self, ApiError> {
        let kind = ctx.loaded.kind;
        check_model(fields, ctx.model)?;
        check_images(kind, images)?;
        let mut ignored: Vec<String> = Vec::new();
        let prompt = read_prompt(fields, ctx)?;
        let n = fields.int("n")?.unwrap_or(1).clamp(1, MAX_N as i64) as usize;
        let mut base = Request::edit(prompt.clone(), Vec::new());
        read_sampling(fields, ctx, &mut base)?;
        let size_from = read_size(fields, kind, &mut base, &mut ignored)?;
        if kind == PipelineKind::Layered {
            read_layered(fields, ctx, &mut base)?;
        } else {
            for f in [
                "num_frames",
                "layers",
                "resolution",
                "cfg_normalize",
                "use_en_prompt",
            ] {
                if fields.discard(f) {
                    ignored.push(f.into());
                }
            }
        }
        read_vision_positions(fields, kind, &mut base, &mut ignored)?;
        base.check_named(&NAMES)
            .map_err(|m| bounds_error(m, size_from))?;
        let (format, quality, response) = read_output(fields, kind)?;
        let (seeds, device) = read_seeds(fields, n, ctx.cuda)?;
        let requests = seeds
            .iter()
            .map(|&s| base.clone().latents(InitialLatents::seeded(s, device)))
            .collect::<Vec<_>>();
        let generator = requests[0].latents.generator().unwrap_or_default();
        for f in NO_EFFECT {
            if fields.discard(f) {
                ignored.push((*f).into());
            }
        }
        ignored.extend(fields.leftover());
        ignored.sort();
        Ok(Self {
            requests,
            seeds,
            generator,
            format,
            quality,
            response,
            prompt,
            ignored,
        })
    }

    /// Give every output request the input images, in order.
    pub fn attach(&mut self, images: Vec<InputImage>) {
        for r in &mut self.requests {
            r.images = images.clone();
        }
    }

    /// Denoising steps per output.
    pub fn steps(&self) -> usize {
        self.requests[0].num_inference_steps
    }
}

/// A request's `model`, when given, must name the served model (404 otherwise).
fn check_model(fields: &mut Fields, model: &ServedModel) -> Result<(), ApiError> {
    match fields.string("model")? {
        Some(m) if !m.is_empty() && !model.matches(&m) => Err(ApiError::not_found(
            "model_not_found",
            format!(
                "the model `{m}` is not served here (this server serves `{}`)",
                model.id
            ),
        )
        .param("model")),
        _ => Ok(()),
    }
}

/// The number of input images the kind takes.
fn check_images(kind: PipelineKind, images: usize) -> Result<(), ApiError> {
    let fail = |m: String| Err(ApiError::field("image", m));
    match (kind, images) {
        (PipelineKind::TextToImage, 0) => Ok(()),
        (PipelineKind::TextToImage, _) => fail(format!(
            "the served model is a {kind}: it takes no input image (use /v1/images/generations)"
        )),
        (_, 0) => fail(format!(
            "the served model is a {kind}: send the input picture to /v1/images/edits as an \
             `image` file or a `url`"
        )),
        (PipelineKind::Edit | PipelineKind::Layered, n) if n > 1 => fail(format!(
            "the served model is a {kind}, which takes exactly one input image (got {n})"
        )),
        _ => Ok(()),
    }
}

/// The prompt: required, but for Layered, whose default `" "` makes the pipeline caption the
/// input image (SGLang's Layered sampling default), as does any whitespace-only prompt.
fn read_prompt(fields: &mut Fields, ctx: &Context) -> Result<String, ApiError> {
    let layered = ctx.loaded.kind == PipelineKind::Layered;
    match (fields.string("prompt")?, ctx.loaded.preset.prompt()) {
        // SGLang captions any whitespace-only Layered prompt (`prompt.isspace()`); the pipeline
        // captions "" (diffusers' rule), so a whitespace-only prompt is handed on as "".
        (Some(p), _) if layered => Ok(ctx.loaded.preset.layered_prompt(&p)),
        (Some(p), _) if !p.is_empty() => Ok(p),
        (Some(_), _) => Err(ApiError::field("prompt", "prompt must not be empty")),
        (None, Some(d)) if layered => Ok(d.to_string()),
        (None, _) => Err(ApiError::field("prompt", "prompt is required")),
    }
}

/// Steps, CFG, negative prompt, text length: the request's values, else SGLang's defaults.
fn read_sampling(fields: &mut Fields, ctx: &Context, r: &mut Request) -> Result<(), ApiError> {
    let preset = ctx.loaded.preset;
    r.num_inference_steps = match fields.int("num_inference_steps")? {
        Some(s) if s < 1 => {
            return Err(ApiError::field(
                "num_inference_steps",
                format!("num_inference_steps must be at least 1 (got {s})"),
            ));
        }
        Some(s) => usize::try_from(s).unwrap_or(usize::MAX),
        None => preset.num_inference_steps(),
    };
    r.negative_prompt = Some(
        fields
            .string("negative_prompt")?
            .unwrap_or_else(|| preset.negative_prompt().to_string()),
    );
    r.guidance_scale = Some(match fields.float("guidance_scale")? {
        Some(g) => g as f32,
        None => preset.guidance_scale(),
    });
    // ≤ 1 turns true CFG off (diffusers' `do_true_cfg`): how a client asks for no CFG.
    r.true_cfg_scale = fields.float("true_cfg_scale")?.map(|s| s as f32);
    if let Some(m) = fields.int("max_sequence_length")? {
        r.max_sequence_length = usize::try_from(m).unwrap_or(0);
    }
    Ok(())
}

/// Where the output size came from, to name the right field in a bounds error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SizeFrom {
    Size,
    Fields,
}

/// `size` ("WxH") and `width`/`height` (which win, as in SGLang's `build_sampling_params`).
/// Layered takes its size from the input and the resolution bucket, so the fields are ignored.
fn read_size(
    fields: &mut Fields,
    kind: PipelineKind,
    r: &mut Request,
    ignored: &mut Vec<String>,
) -> Result<SizeFrom, ApiError> {
    let size = fields.string("size")?;
    let (width, height) = (fields.int("width")?, fields.int("height")?);
    if kind == PipelineKind::Layered {
        for (name, given) in [
            ("size", size.is_some()),
            ("width", width.is_some()),
            ("height", height.is_some()),
        ] {
            if given {
                ignored.push(name.into());
            }
        }
        return Ok(SizeFrom::Fields);
    }
    let parsed = match size.as_deref().map(str::trim) {
        None | Some("") | Some("auto") => None,
        Some(s) => Some(parse_size(s).ok_or_else(|| {
            ApiError::field(
                "size",
                format!("size must be formatted as positive WIDTHxHEIGHT, not `{s}`"),
            )
        })?),
    };
    let side = |name: &str, v: Option<i64>| -> Result<Option<usize>, ApiError> {
        match v {
            Some(x) if x <= 0 => Err(ApiError::field(name, format!("{name} must be positive"))),
            Some(x) => Ok(Some(usize::try_from(x).unwrap_or(usize::MAX))),
            None => Ok(None),
        }
    };
    let (w, h) = (side("width", width)?, side("height", height)?);
    r.width = w.or(parsed.map(|p| p.0));
    r.height = h.or(parsed.map(|p| p.1));
    Ok(if parsed.is_some() && (w.is_none() || h.is_none()) {
        SizeFrom::Size
    } else {
        SizeFrom::Fields
    })
}

/// `"1024x768"` (also `X` or `*`) → (width, height), both positive.
pub fn parse_size(s: &str) -> Option<(usize, usize)> {
    let (w, h) = s.split_once(['x', 'X', '*'])?;
    let w: usize = w.trim().parse().ok()?;
    let h: usize = h.trim().parse().ok()?;
    (w > 0 && h > 0).then_some((w, h))
}

/// A bounds error of `Request::check_named`, with the field it names (its first word).
fn bounds_error(message: String, size_from: SizeFrom) -> ApiError {
    let first = message.split_whitespace().next().unwrap_or("");
    let param = match first {
        "height" | "width" if size_from == SizeFrom::Size => "size",
        "height"
        | "width"
        | "num_inference_steps"
        | "max_sequence_length"
        | "true_cfg_scale"
        | "guidance_scale" => first,
        _ => "size",
    }
    .to_string();
    ApiError::field(&param, message)
}

/// Layered: `num_frames` (SGLang's name, as its tests send it) or `layers`; the resolution
/// bucket; `cfg_normalize`; `use_en_prompt`. Absent: SGLang's Layered defaults.
fn read_layered(fields: &mut Fields, ctx: &Context, r: &mut Request) -> Result<(), ApiError> {
    let preset = ctx.loaded.preset;
    let frames = fields.int("num_frames")?;
    let layers = fields.int("layers")?;
    let (name, n) = match (frames, layers) {
        (Some(n), _) => ("num_frames", n),
        (None, Some(n)) => ("layers", n),
        // SGLang's request default (`num_frames: int = Form(1)`).
        (None, None) => ("num_frames", 1),
    };
    if !(1..=MAX_LAYERS as i64).contains(&n) {
        return Err(ApiError::field(
            name,
            format!("{name} (the layer count) must be between 1 and {MAX_LAYERS}, not {n}"),
        ));
    }
    r.layered.layers = n as usize;
    let resolution = fields
        .int("resolution")?
        .or(preset.resolution().map(i64::from));
    if let Some(px) = resolution {
        r.layered.resolution = u32::try_from(px)
            .ok()
            .and_then(LayeredResolution::from_pixels)
            .ok_or_else(|| {
                ApiError::field(
                    "resolution",
                    format!("resolution must be 640 or 1024, not {px}"),
                )
            })?;
    }
    if let Some(b) = fields.bool("cfg_normalize")?.or(preset.cfg_normalize()) {
        r.layered.cfg_normalize = b;
    }
    if let Some(b) = fields.bool("use_en_prompt")?.or(preset.use_en_prompt()) {
        r.layered.use_en_prompt = b;
    }
    Ok(())
}

/// `vision_positions` (`mrope`, the default, or `sequential`) for the Edit kinds.
fn read_vision_positions(
    fields: &mut Fields,
    kind: PipelineKind,
    r: &mut Request,
    ignored: &mut Vec<String>,
) -> Result<(), ApiError> {
    let Some(v) = fields.string("vision_positions")? else {
        return Ok(());
    };
    if !matches!(kind, PipelineKind::Edit | PipelineKind::EditPlus) {
        ignored.push("vision_positions".into());
        return Ok(());
    }
    r.vision_positions = match v.as_str() {
        "mrope" => VisionPositions::Mrope,
        "sequential" => VisionPositions::Sequential,
        other => {
            return Err(ApiError::field(
                "vision_positions",
                format!("vision_positions must be mrope or sequential, not `{other}`"),
            ));
        }
    };
    Ok(())
}

/// The file format (SGLang's `choose_output_image_ext`: the asked one, else PNG for a
/// transparent background, else JPEG; Layered's RGBA layers default to PNG), the JPEG quality
/// (`output_compression`, else `output_quality`'s level) and `response_format`.
fn read_output(
    fields: &mut Fields,
    kind: PipelineKind,
) -> Result<(OutputFormat, u8, ResponseFormat), ApiError> {
    let background = fields.string("background")?.unwrap_or_default();
    let format = match fields.string("output_format")? {
        Some(f) => OutputFormat::parse(&f).ok_or_else(|| {
            ApiError::field(
                "output_format",
                format!("output_format must be png, jpeg or webp, not `{f}`"),
            )
        })?,
        None if background.eq_ignore_ascii_case("transparent") => OutputFormat::Png,
        None if kind == PipelineKind::Layered => OutputFormat::Png,
        None => OutputFormat::Jpeg,
    };
    let level = fields.string("output_quality")?;
    let quality = match fields.int("output_compression")? {
        Some(c) if (0..=100).contains(&c) => c.max(1) as u8,
        Some(c) => {
            return Err(ApiError::field(
                "output_compression",
                format!("output_compression must be between 0 and 100, not {c}"),
            ));
        }
        // SGLang's OUTPUT_QUALITY_MAPPER; an unknown level keeps the default.
        None => match level.as_deref() {
            Some("maximum") => 100,
            Some("high") => 90,
            Some("medium") => 55,
            Some("low") => 35,
            _ => DEFAULT_JPEG_QUALITY,
        },
    };
    let response = match fields.string("response_format")?.as_deref() {
        None | Some("b64_json") => ResponseFormat::B64Json,
        Some("url") => ResponseFormat::Url,
        Some(other) => {
            return Err(ApiError::field(
                "response_format",
                format!("response_format must be b64_json or url, not `{other}`"),
            ));
        }
    };
    Ok((format, quality, response))
}

/// One seed per output, as SGLang draws them (`normalize_output_seeds`): a list of `n` seeds as
/// given, else `seed + i` (default 42); and the generator (`generator_device`, default `cuda`).
fn read_seeds(
    fields: &mut Fields,
    n: usize,
    cuda: CudaPlatform,
) -> Result<(Vec<u64>, GeneratorDevice), ApiError> {
    let given = fields.seeds("seed")?;
    let non_negative = |s: i64| {
        u64::try_from(s).map_err(|_| {
            ApiError::field(
                "seed",
                format!("seed must be a non-negative integer, not {s}"),
            )
        })
    };
    let seeds = match given {
        Some(Seeds::List(list)) => list
            .into_iter()
            .map(non_negative)
            .collect::<Result<Vec<_>, _>>()?,
        Some(Seeds::One(s)) => {
            let base = non_negative(s)?;
            (0..n as u64)
                .map(|i| {
                    base.checked_add(i)
                        .ok_or_else(|| ApiError::field("seed", "seed + n overflows"))
                })
                .collect::<Result<Vec<_>, _>>()?
        }
        None => (0..n as u64)
            .map(|i| cases::SglangPreset::SEED + i)
            .collect(),
    };
    if seeds.len() != n {
        return Err(ApiError::field(
            "seed",
            format!(
                "a seed list must have one seed per output (n = {n}), got {}",
                seeds.len()
            ),
        ));
    }
    let device = match fields.string("generator_device")?.as_deref() {
        None => GeneratorDevice::Cuda(cuda),
        Some(d) if d.starts_with("cuda") => GeneratorDevice::Cuda(cuda),
        Some("cpu") => GeneratorDevice::Cpu,
        Some(other) => {
            return Err(ApiError::field(
                "generator_device",
                format!("generator_device must be cuda or cpu, not `{other}`"),
            ));
        }
    };
    Ok((seeds, device))
}
