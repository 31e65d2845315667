//! The Layered pipeline's two caption prompts (English, Chinese) and the choice between them.

use std::str::FromStr;

/// `max_new_tokens` of the pipeline's `generate` call.
pub const DEFAULT_MAX_NEW_TOKENS: usize = 512;

/// `QwenImageLayeredPipeline.image_caption_prompt_en`, byte for byte (its line breaks included:
/// the source wraps the triple-quoted string, and those breaks are part of the prompt).
pub const CAPTION_PROMPT_EN: &str = concat!(
    "<|im_start|>system\n",
    "You are a helpful assistant.<|im_end|>\n",
    "<|im_start|>user\n",
    "# Image Annotator\n",
    "You are a professional\n",
    "image annotator. Please write an image caption based on the input image:\n",
    "1. Write the caption using natural,\n",
    "descriptive language without structured formats or rich text.\n",
    "2. Enrich caption details by including: \n",
    " - Object\n",
    "attributes, such as quantity, color, shape, size, material, state, position, actions, and so on\n",
    " - Vision Relations\n",
    "between objects, such as spatial relations, functional relations, possessive relations, attachment relations, action\n",
    "relations, comparative relations, causal relations, and so on\n",
    " - Environmental details, such as weather, lighting,\n",
    "colors, textures, atmosphere, and so on\n",
    " - Identify the text clearly visible in the image, without translation or\n",
    "explanation, and highlight it in the caption with quotation marks\n",
    "3. Maintain authenticity and accuracy:\n",
    " - Avoid\n",
    "generalizations\n",
    " - Describe all visible information in the image, while do not add information not explicitly shown in\n",
    "the image\n",
    "<|vision_start|><|image_pad|><|vision_end|><|im_end|>\n",
    "<|im_start|>assistant\n",
);

/// `QwenImageLayeredPipeline.image_caption_prompt_cn`, byte for byte.
pub const CAPTION_PROMPT_ZH: &str = concat!(
    "<|im_start|>system\n",
    "You are a helpful assistant.<|im_end|>\n",
    "<|im_start|>user\n",
    "# 图像标注器\n",
    "你是一个专业的图像标注器。请基于输入图像，撰写图注:\n",
    "1.\n",
    "使用自然、描述性的语言撰写图注，不要使用结构化形式或富文本形式。\n",
    "2. 通过加入以下内容，丰富图注细节：\n",
    " - 对象的属性：如数量、颜色、形状、大小、位置、材质、状态、动作等\n",
    " -\n",
    "对象间的视觉关系：如空间关系、功能关系、动作关系、从属关系、比较关系、因果关系等\n",
    " - 环境细节：例如天气、光照、颜色、纹理、气氛等\n",
    " - 文字内容：识别图像中清晰可见的文字，不做翻译和解释，用引号在图注中强调\n",
    "3.\n",
    "保持真实性与准确性：\n",
    " - 不要使用笼统的描述\n",
    " -\n",
    "描述图像中所有可见的信息，但不要加入没有在图像中出现的内容\n",
    "<|vision_start|><|image_pad|><|vision_end|><|im_end|>\n",
    "<|im_start|>assistant\n",
);

/// Which of the pipeline's two caption prompts (`use_en_prompt`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum CaptionLanguage {
    /// `use_en_prompt=True`: [`CAPTION_PROMPT_EN`].
    English,
    /// `use_en_prompt=False`, the pipeline's default: [`CAPTION_PROMPT_ZH`].
    #[default]
    Chinese,
}

impl CaptionLanguage {
    /// The pipeline's `use_en_prompt` flag.
    pub fn from_use_en_prompt(use_en_prompt: bool) -> Self {
        if use_en_prompt {
            Self::English
        } else {
            Self::Chinese
        }
    }

    /// The caption prompt (the processor's `text`).
    pub fn prompt(self) -> &'static str {
        match self {
            Self::English => CAPTION_PROMPT_EN,
            Self::Chinese => CAPTION_PROMPT_ZH,
        }
    }

    /// `"en"` or `"zh"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::English => "en",
            Self::Chinese => "zh",
        }
    }
}

impl FromStr for CaptionLanguage {
    type Err = String;

    /// `en` or `zh` (also `cn`, the pipeline's own name for the Chinese prompt).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "en" => Ok(Self::English),
            "zh" | "cn" => Ok(Self::Chinese),
            other => Err(format!("caption language must be en or zh, got {other:?}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::template::IMAGE_PAD;

    #[test]
    fn prompts_hold_one_image_and_end_with_the_assistant_turn() {
        for lang in [CaptionLanguage::English, CaptionLanguage::Chinese] {
            let p = lang.prompt();
            assert_eq!(p.matches(IMAGE_PAD).count(), 1);
            assert!(p.ends_with("<|im_start|>assistant\n"));
        }
        assert_eq!(
            "zh".parse::<CaptionLanguage>().unwrap(),
            CaptionLanguage::default()
        );
        assert!("fr".parse::<CaptionLanguage>().is_err());
    }
}
