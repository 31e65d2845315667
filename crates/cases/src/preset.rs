//! The suite-level choices of a case file: which defaults fill what a case leaves out
//! ([`Defaults`], [`SglangPreset`]: SGLang's Qwen-Image sampling parameters) and which
//! `torch.Generator` draws a seed ([`GeneratorKind`]).

use torch_rng::{CudaPlatform, GeneratorDevice};

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

    /// The prompt a Layered request hands the pipeline under SGLang's rule: SGLang captions the
    /// input image for any whitespace-only prompt (Python's `prompt.isspace()`), where diffusers
    /// (and the pipeline) caption only `None`, `""` and `" "`; so a whitespace-only prompt becomes
    /// `""`, which the pipeline captions. Other prompts, and other presets, are unchanged.
    pub fn layered_prompt(self, prompt: &str) -> String {
        if self == SglangPreset::Layered && prompt.chars().all(is_python_space) {
            String::new()
        } else {
            prompt.to_string()
        }
    }
}

/// Python's `str.isspace()` for one character: Unicode whitespace, plus the four information
/// separators U+001C..U+001F that Python counts and Rust's `char::is_whitespace` does not.
fn is_python_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}
