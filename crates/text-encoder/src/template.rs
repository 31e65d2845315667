//! The prompt templates of the Qwen-Image pipelines and how many leading tokens each drops.
//!
//! diffusers keeps both in the pipeline object (`prompt_template_encode`,
//! `prompt_template_encode_start_idx`); which one applies follows from the class that
//! `model_index.json` names (`_class_name`).

use std::path::Path;

use serde_json::Value;

use crate::Error;

/// `QwenImagePipeline`'s template (`prompt_template_encode`); the prompt replaces `{}`.
pub const PROMPT_TEMPLATE: &str = "<|im_start|>system\nDescribe the image by detailing the color, shape, size, texture, quantity, text, spatial relationships of the objects and background:<|im_end|>\n<|im_start|>user\n{}<|im_end|>\n<|im_start|>assistant\n";

/// Tokens of the text-to-image template before the prompt (`prompt_template_encode_start_idx`):
/// dropped from the embeddings. The 5-token assistant suffix after the prompt is kept.
pub const TEMPLATE_PREFIX_TOKENS: usize = 34;

/// The Edit pipelines' system prompt and user turn; Edit puts one image placeholder before the
/// prompt, Edit-Plus a "Picture N: " placeholder per image (see [`PromptTemplate::format`]).
pub const EDIT_PROMPT_TEMPLATE: &str = "<|im_start|>system\nDescribe the key features of the input image (color, shape, size, texture, objects, background), then explain how the user's text instruction should alter or modify the image. Generate a new image that meets the user's requirements while maintaining consistency with the original input where appropriate.<|im_end|>\n<|im_start|>user\n{}<|im_end|>\n<|im_start|>assistant\n";

/// Leading tokens the Edit pipelines drop (`prompt_template_encode_start_idx = 64`). It is a
/// fixed count, not the length of the system prefix: the image's own tokens stay.
pub const EDIT_TEMPLATE_PREFIX_TOKENS: usize = 64;

/// An image placeholder, which the processor expands to one `<|image_pad|>` per merged patch.
pub const IMAGE_PLACEHOLDER: &str = "<|vision_start|><|image_pad|><|vision_end|>";

/// The token the image embeddings replace.
pub const IMAGE_PAD: &str = "<|image_pad|>";

/// The video placeholder token; the Edit processors refuse it in a prompt without videos.
pub const VIDEO_PAD: &str = "<|video_pad|>";

/// Which prompt template a pipeline uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PromptTemplate {
    /// `QwenImagePipeline` and the other text-conditioned pipelines (img2img, inpaint,
    /// ControlNet, Layered): [`PROMPT_TEMPLATE`], drop 34, tokenizer truncation at 1024 + 34,
    /// embeddings cut to `max_sequence_length`.
    #[default]
    TextToImage,
    /// `QwenImageEditPipeline` (and `QwenImageEditInpaintPipeline`): the edit system prompt with
    /// one image before the prompt, drop 64, processor without truncation, no cut.
    Edit,
    /// `QwenImageEditPlusPipeline` (Edit-2509, Edit-2511): the edit system prompt with
    /// "Picture 1: …Picture N: " before the prompt, drop 64.
    EditPlus,
}

impl PromptTemplate {
    /// The template of a diffusers pipeline class (`_class_name`), `None` for a class this port
    /// does not know.
    pub fn for_pipeline_class(class: &str) -> Option<Self> {
        match class {
            "QwenImagePipeline"
            | "QwenImageImg2ImgPipeline"
            | "QwenImageInpaintPipeline"
            | "QwenImageControlNetPipeline"
            | "QwenImageControlNetInpaintPipeline"
            | "QwenImageLayeredPipeline" => Some(Self::TextToImage),
            "QwenImageEditPipeline" | "QwenImageEditInpaintPipeline" => Some(Self::Edit),
            "QwenImageEditPlusPipeline" => Some(Self::EditPlus),
            _ => None,
        }
    }

    /// The template of a pipeline folder's `model_index.json` (parsed): from `_class_name`, or
    /// [`TextToImage`](Self::TextToImage) when the file names no class. `path` is only used in
    /// the error for an unknown class.
    pub fn for_model_index(index: &Value, path: &Path) -> Result<Self, Error> {
        match index.get("_class_name").and_then(Value::as_str) {
            None => Ok(Self::TextToImage),
            Some(class) => Self::for_pipeline_class(class).ok_or_else(|| Error::Config {
                path: path.to_path_buf(),
                reason: format!(
                    "pipeline class `{class}` is not a Qwen-Image pipeline this port knows \
                     (QwenImagePipeline, QwenImageEditPipeline, QwenImageEditPlusPipeline, …)"
                ),
            }),
        }
    }

    /// Leading tokens dropped from the hidden states (`prompt_template_encode_start_idx`).
    pub fn drop_tokens(self) -> usize {
        match self {
            Self::TextToImage => TEMPLATE_PREFIX_TOKENS,
            Self::Edit | Self::EditPlus => EDIT_TEMPLATE_PREFIX_TOKENS,
        }
    }

    /// Whether the pipeline's prompts go through the processor with images.
    pub fn takes_images(self) -> bool {
        !matches!(self, Self::TextToImage)
    }

    /// The full text for one prompt with `images` images, exactly as the pipeline formats it
    /// (the prompt is inserted verbatim, braces included). Text-to-image takes no image, Edit
    /// exactly one, Edit-Plus any number (none gives the bare edit template).
    pub fn format(self, prompt: &str, images: usize) -> Result<String, Error> {
        let fill = |template: &str, body: &str| {
            let (prefix, suffix) = template.split_once("{}").unwrap_or((template, ""));
            format!("{prefix}{body}{suffix}")
        };
        match (self, images) {
            (Self::TextToImage, 0) => Ok(fill(PROMPT_TEMPLATE, prompt)),
            (Self::Edit, 1) => Ok(fill(
                EDIT_PROMPT_TEMPLATE,
                &format!("{IMAGE_PLACEHOLDER}{prompt}"),
            )),
            (Self::EditPlus, n) => {
                let pictures: String = (1..=n)
                    .map(|i| format!("Picture {i}: {IMAGE_PLACEHOLDER}"))
                    .collect();
                Ok(fill(EDIT_PROMPT_TEMPLATE, &format!("{pictures}{prompt}")))
            }
            (Self::TextToImage, n) => Err(Error::Images(format!(
                "a text-to-image pipeline takes no image, got {n}"
            ))),
            (Self::Edit, n) => Err(Error::Images(format!(
                "QwenImageEditPipeline's template holds exactly one image per prompt, got {n}"
            ))),
        }
    }
}

/// A prompt inside the text-to-image template, exactly as `PROMPT_TEMPLATE.format(prompt)`
/// (the prompt is inserted verbatim, braces included).
pub fn format_prompt(prompt: &str) -> String {
    let (prefix, suffix) = PROMPT_TEMPLATE
        .split_once("{}")
        .unwrap_or((PROMPT_TEMPLATE, ""));
    format!("{prefix}{prompt}{suffix}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_plus_names_each_picture_before_the_prompt() {
        let t = PromptTemplate::EditPlus.format("swap them", 2).unwrap();
        let user = t.split("<|im_start|>user\n").nth(1).unwrap();
        assert!(user.starts_with(
            "Picture 1: <|vision_start|><|image_pad|><|vision_end|>Picture 2: \
             <|vision_start|><|image_pad|><|vision_end|>swap them<|im_end|>"
        ));
        assert_eq!(
            PromptTemplate::EditPlus.format("x", 0).unwrap(),
            EDIT_PROMPT_TEMPLATE.replace("{}", "x")
        );
    }

    #[test]
    fn edit_takes_exactly_one_image_and_text_to_image_none() {
        assert!(PromptTemplate::Edit.format("x", 0).is_err());
        assert!(PromptTemplate::Edit.format("x", 2).is_err());
        assert!(PromptTemplate::TextToImage.format("x", 1).is_err());
        assert_eq!(
            PromptTemplate::TextToImage.format("{}", 0).unwrap(),
            format_prompt("{}")
        );
    }

    #[test]
    fn classes_choose_template_and_drop() {
        let t = |c| PromptTemplate::for_pipeline_class(c).map(PromptTemplate::drop_tokens);
        assert_eq!(t("QwenImagePipeline"), Some(34));
        assert_eq!(t("QwenImageLayeredPipeline"), Some(34));
        assert_eq!(t("QwenImageEditPipeline"), Some(64));
        assert_eq!(t("QwenImageEditPlusPipeline"), Some(64));
        assert_eq!(t("FluxPipeline"), None);
        let index = serde_json::json!({"_class_name": "FluxPipeline"});
        let err = PromptTemplate::for_model_index(&index, Path::new("m/model_index.json"));
        assert!(err.unwrap_err().to_string().contains("m/model_index.json"));
    }
}
