//! The Qwen-Image-Layered auto-caption: what diffusers 0.42.1's `QwenImageLayeredPipeline` does
//! when the prompt is missing, empty or a single space (`get_image_caption`).
//!
//! The pipeline resizes its RGBA input to the resolution bucket first and hands that resized
//! RGBA image to `Qwen2VLProcessor` together with its caption prompt (English or Chinese,
//! `use_en_prompt`); the processor composites the alpha onto white, resizes, patchifies and
//! expands `<|image_pad|>`. Then `text_encoder.generate(**inputs, max_new_tokens=512)`: the
//! vision tower, the language model over the prompt (3-D M-RoPE positions: the processor passes
//! `mm_token_type_ids`), and one token at a time with a KV cache, each new token at the previous
//! position + 1 on all three axes (transformers' `rope_deltas`), the LM head, and the token
//! choice of the checkpoint's generation config ([`GenerationConfig`]). The new ids are decoded
//! with special tokens skipped and the text is stripped.
//!
//! ```no_run
//! use burn::backend::Flex;
//! use text_encoder::caption::{CaptionLanguage, Captioner, DEFAULT_MAX_NEW_TOKENS};
//!
//! let device = Default::default();
//! let captioner = Captioner::<Flex>::from_pipeline_dir("Qwen-Image-Layered", &device)?;
//! // The pipeline's prompt image: the RGBA input after the bucket resize (image-io's
//! // `qwen_layered_image(..).condition`), composited onto white as the processor does.
//! let rgba = image::open("resized_input.png").expect("an image").to_rgba8();
//! let prompt_image = image_io::convert_to_rgb(&image::DynamicImage::ImageRgba8(rgba));
//! let caption = captioner.caption(&prompt_image, CaptionLanguage::English, DEFAULT_MAX_NEW_TOKENS)?;
//! println!("{} ({} tokens)", caption.text, caption.ids.len());
//! # Ok::<(), text_encoder::Error>(())
//! ```

mod language;

use std::path::Path;

use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};
use image::RgbImage;
use tokenizer_loader::QwenTokenizer;

use crate::generation::{GenerationConfig, TokenPicker};
use crate::kv_cache::KvCache;
use crate::lm_head::LmHead;
use crate::multimodal::expand_image_pads;
use crate::template::IMAGE_PAD;
use crate::{Error, ImageProcessor, QwenTextEncoder, VisionInput, VisionTower, mrope_position_ids};

pub use language::{CAPTION_PROMPT_EN, CAPTION_PROMPT_ZH, CaptionLanguage, DEFAULT_MAX_NEW_TOKENS};

/// Why generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// This end-of-text id was generated (it is the last of the ids).
    Eos(u32),
    /// `max_new_tokens` ids were generated.
    MaxNewTokens,
}

/// A caption and the ids it was decoded from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caption {
    /// `batch_decode(new ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)`,
    /// stripped as Python's `str.strip()` does.
    pub text: String,
    /// The generated ids, prompt excluded; the eos that ended them included (transformers'
    /// `generated_ids_trimmed`).
    pub ids: Vec<u32>,
    /// Why generation ended.
    pub stop: StopReason,
    /// Length of the prompt (text and image tokens).
    pub prompt_tokens: usize,
}

/// What `Qwen2VLProcessor` gives `generate` for the caption prompt and one image, plus the
/// prompt's M-RoPE positions.
#[derive(Debug, Clone, PartialEq)]
pub struct CaptionInputs {
    /// `input_ids` of the one row (no padding: the attention mask is all ones).
    pub input_ids: Vec<u32>,
    /// `pixel_values` and `image_grid_thw`.
    pub vision: VisionInput,
    /// `[3, L]` row-major: temporal, height and width positions of the prompt tokens
    /// (`get_rope_index`).
    pub position_ids: Vec<i64>,
}

impl CaptionInputs {
    /// Prompt length L.
    pub fn len(&self) -> usize {
        self.input_ids.len()
    }

    /// True for an empty prompt (never produced by [`Captioner::prepare`]).
    pub fn is_empty(&self) -> bool {
        self.input_ids.is_empty()
    }

    /// The last prompt token's position on each axis; decode step k (k = 1 for the second new
    /// token) runs at these + k.
    pub fn last_position(&self) -> [i64; 3] {
        let l = self.len();
        if l == 0 {
            return [-1; 3];
        }
        [0, 1, 2].map(|axis| self.position_ids[axis * l + l - 1])
    }
}

/// One generation step, as [`Captioner::generate`] reports it.
#[derive(Debug)]
pub struct Step<'a> {
    /// 0 for the first new token (the prefill's output), then 1, 2, …
    pub index: usize,
    /// The LM head's raw logits at the last position (f32, before any processing).
    pub logits: &'a [f32],
    /// The token chosen from them.
    pub token: u32,
}

/// The ids of one generation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generated {
    /// The new ids, the eos that ended them included.
    pub ids: Vec<u32>,
    /// Why generation ended.
    pub stop: StopReason,
    /// `[t, h, w]` positions of the tokens fed back one at a time (one per new token but the
    /// last): the previous position + 1 on every axis.
    pub decode_positions: Vec<[i64; 3]>,
}

/// Captions images as `QwenImageLayeredPipeline.get_image_caption` does.
///
/// Holds the language model, the vision tower, the LM head, the processor's tokenizer and image
/// settings, and the generation config. Burn modules share their tensors when cloned, so a
/// pipeline that already holds the language model can pass a clone to [`Captioner::new`] without
/// a second copy of the weights.
#[derive(Debug, Clone)]
pub struct Captioner<B: Backend> {
    encoder: QwenTextEncoder<B>,
    tower: VisionTower<B>,
    head: LmHead<B>,
    tokenizer: QwenTokenizer,
    processor: ImageProcessor,
    generation: GenerationConfig,
}

impl<B: Backend> Captioner<B> {
    /// Load from a Layered pipeline folder: `text_encoder/` (language model, vision tower, LM
    /// head, `generation_config.json`), `processor/` (`preprocessor_config.json`, or
    /// `processor_config.json` as transformers ≥ 5 saves it), and the
    /// processor's tokenizer (`processor/`, which the pipeline's `Qwen2VLProcessor` tokenizes
    /// and decodes with; `tokenizer/` when `processor/` holds no tokenizer files).
    pub fn from_pipeline_dir(dir: impl AsRef<Path>, device: &B::Device) -> Result<Self, Error> {
        let dir = dir.as_ref();
        let encoder = QwenTextEncoder::load(dir.join("text_encoder"), device)?;
        Self::from_pipeline_dir_with_encoder(dir, encoder, device)
    }

    /// [`Self::from_pipeline_dir`] around a language model the caller already holds (a Layered
    /// pipeline's prompt encoder): a clone of a burn module shares its weights, so the 7B model
    /// is in memory once; only the vision tower and `lm_head` are loaded here.
    pub fn from_pipeline_dir_with_encoder(
        dir: impl AsRef<Path>,
        encoder: QwenTextEncoder<B>,
        device: &B::Device,
    ) -> Result<Self, Error> {
        let dir = dir.as_ref();
        let processor_dir = dir.join("processor");
        let processor = ImageProcessor::from_processor_dir(&processor_dir)?;
        let has_tokenizer = ["tokenizer.json", "vocab.json"]
            .iter()
            .any(|f| processor_dir.join(f).is_file());
        let tokenizer = if has_tokenizer {
            QwenTokenizer::from_folder(&processor_dir)?
        } else {
            QwenTokenizer::from_pipeline_dir(dir)?
        };
        let te_dir = dir.join("text_encoder");
        let tower = VisionTower::load(&te_dir, device)?;
        let head = LmHead::load(&te_dir, &encoder, device)?;
        let generation = GenerationConfig::from_text_encoder_dir(&te_dir)?;
        Ok(Self::new(
            encoder, tower, head, tokenizer, processor, generation,
        ))
    }

    /// Assemble from loaded parts.
    pub fn new(
        encoder: QwenTextEncoder<B>,
        tower: VisionTower<B>,
        head: LmHead<B>,
        tokenizer: QwenTokenizer,
        processor: ImageProcessor,
        generation: GenerationConfig,
    ) -> Self {
        Self {
            encoder,
            tower,
            head,
            tokenizer,
            processor,
            generation,
        }
    }

    /// Decode with other settings (e.g. `GenerationConfig::greedy`).
    pub fn with_generation(mut self, generation: GenerationConfig) -> Self {
        self.generation = generation;
        self
    }

    /// The generation config in use.
    pub fn generation(&self) -> &GenerationConfig {
        &self.generation
    }

    /// The language model.
    pub fn encoder(&self) -> &QwenTextEncoder<B> {
        &self.encoder
    }

    /// The LM head.
    pub fn head(&self) -> &LmHead<B> {
        &self.head
    }

    /// The processor's tokenizer.
    pub fn tokenizer(&self) -> &QwenTokenizer {
        &self.tokenizer
    }

    /// The image processor settings.
    pub fn processor(&self) -> &ImageProcessor {
        &self.processor
    }

    /// `get_image_caption(image, use_en_prompt)` with `max_new_tokens` (the pipeline's: 512,
    /// [`DEFAULT_MAX_NEW_TOKENS`]). `image` is the prompt image as the processor sees it: the
    /// pipeline's bucket-resized RGBA input composited onto white
    /// ([`image_io::convert_to_rgb`]).
    pub fn caption(
        &self,
        image: &RgbImage,
        lang: CaptionLanguage,
        max_new_tokens: usize,
    ) -> Result<Caption, Error> {
        self.caption_with(image, lang, max_new_tokens, |_| {})
    }

    /// [`caption`](Self::caption), calling `on_step` after each new token (progress, logits).
    pub fn caption_with(
        &self,
        image: &RgbImage,
        lang: CaptionLanguage,
        max_new_tokens: usize,
        on_step: impl FnMut(&Step<'_>),
    ) -> Result<Caption, Error> {
        let inputs = self.prepare(image, lang)?;
        let generated = self.generate(&inputs, max_new_tokens, on_step)?;
        Ok(Caption {
            text: self.decode(&generated.ids)?,
            ids: generated.ids,
            stop: generated.stop,
            prompt_tokens: inputs.len(),
        })
    }

    /// The processor's output for the caption prompt and `image`, and the prompt's positions.
    pub fn prepare(&self, image: &RgbImage, lang: CaptionLanguage) -> Result<CaptionInputs, Error> {
        let cfg = self.encoder.config();
        if self.processor.merge_size != cfg.spatial_merge_size {
            return Err(Error::Images(format!(
                "the processor merges {0}×{0} patches, the model {1}×{1}",
                self.processor.merge_size, cfg.spatial_merge_size
            )));
        }
        let vision = self.processor.preprocess(std::slice::from_ref(image))?;
        let counts = vision.merged_tokens(self.processor.merge_size);
        let text = expand_image_pads(lang.prompt(), &counts)?;
        let input_ids = self.tokenizer.encode(&text, false)?;
        let image_id = cfg.image_token_id;
        let found = input_ids.iter().filter(|&&id| id == image_id).count();
        let want: usize = counts.iter().sum();
        if found != want {
            return Err(Error::Images(format!(
                "{found} image tokens after tokenization, {want} expected (is {IMAGE_PAD} id \
                 {image_id} in the tokenizer?)"
            )));
        }
        if let Some(&bad) = input_ids.iter().find(|&&id| id as usize >= cfg.vocab_size) {
            return Err(Error::Tokens(format!(
                "token id {bad} is outside the model's vocabulary of {}",
                cfg.vocab_size
            )));
        }
        let l = input_ids.len();
        let mask = vec![1u32; l];
        let position_ids = mrope_position_ids(
            &input_ids,
            &mask,
            1,
            l,
            &vision.grid_thw,
            image_id,
            cfg.spatial_merge_size,
        )?;
        Ok(CaptionInputs {
            input_ids,
            vision,
            position_ids,
        })
    }

    /// transformers' `generate` on prepared inputs: the vision tower, the prefill over the
    /// prompt, then one token at a time with a KV cache until an eos id of the generation config
    /// or `max_new_tokens` ids (at least 1).
    pub fn generate(
        &self,
        inputs: &CaptionInputs,
        max_new_tokens: usize,
        mut on_step: impl FnMut(&Step<'_>),
    ) -> Result<Generated, Error> {
        if max_new_tokens == 0 {
            return Err(Error::Tokens("max_new_tokens must be at least 1".into()));
        }
        let l = inputs.len();
        if l == 0 || inputs.position_ids.len() != 3 * l {
            return Err(Error::Tokens(format!(
                "{} position ids for {l} prompt tokens",
                inputs.position_ids.len()
            )));
        }
        let device = self.encoder.embed_tokens_device();
        let vocab = self.head.vocab_size();
        let embeds = self.tower.forward(
            inputs.vision.pixel_values_tensor::<B>(&device),
            &inputs.vision.grid_thw,
        )?;
        let ids: Vec<i64> = inputs.input_ids.iter().map(|&i| i64::from(i)).collect();
        let ids = Tensor::<B, 2, Int>::from_data(TensorData::new(ids, [1, l]), &device);
        let x = self.encoder.embed_multimodal(ids, Some(embeds))?;
        let positions = Tensor::<B, 3, Int>::from_data(
            TensorData::new(inputs.position_ids.clone(), [3, 1, l]),
            &device,
        );
        let mut cache = KvCache::new(self.encoder.config().num_hidden_layers);
        let mut hidden = self.encoder.forward_cached(x, positions, &mut cache)?;
        let mut picker = TokenPicker::new(&self.generation, vocab, &inputs.input_ids);
        let last = inputs.last_position();
        let mut out = Vec::new();
        let mut decode_positions = Vec::new();
        loop {
            let n = hidden.dims()[1];
            let h = hidden
                .narrow(1, n - 1, 1)
                .reshape([1, self.encoder.config().hidden_size]);
            let logits = self
                .head
                .forward(h)
                .into_data()
                .convert::<f32>()
                .to_vec::<f32>()
                .map_err(|e| Error::Tokens(format!("reading the logits back: {e:?}")))?;
            let step = out.len();
            let token = picker.pick(&logits, step)?;
            on_step(&Step {
                index: step,
                logits: &logits,
                token,
            });
            out.push(token);
            if self.generation.eos_token_ids.contains(&token) {
                return Ok(Generated {
                    ids: out,
                    stop: StopReason::Eos(token),
                    decode_positions,
                });
            }
            if out.len() == max_new_tokens {
                return Ok(Generated {
                    ids: out,
                    stop: StopReason::MaxNewTokens,
                    decode_positions,
                });
            }
            // The new token at the last position + 1 on every axis (text after the prompt).
            let k = out.len() as i64;
            let pos = last.map(|p| p + k);
            decode_positions.push(pos);
            let x = self.encoder.embed_tokens(Tensor::<B, 2, Int>::from_data(
                TensorData::new(vec![i64::from(token)], [1, 1]),
                &device,
            ));
            let pos =
                Tensor::<B, 3, Int>::from_data(TensorData::new(pos.to_vec(), [3, 1, 1]), &device);
            hidden = self.encoder.forward_cached(x, pos, &mut cache)?;
        }
    }

    /// `batch_decode([ids], skip_special_tokens=True, clean_up_tokenization_spaces=False)[0]`
    /// then `.strip()`.
    pub fn decode(&self, ids: &[u32]) -> Result<String, Error> {
        let text = self.tokenizer.decode(ids, true)?;
        Ok(strip_like_python(&text).to_owned())
    }
}

/// Python's `str.strip()` with no argument: Unicode whitespace as `str.isspace` defines it,
/// which is Rust's `char::is_whitespace` plus the four information separators U+001C..U+001F.
pub fn strip_like_python(s: &str) -> &str {
    s.trim_matches(|c: char| c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strip_matches_python_whitespace() {
        assert_eq!(strip_like_python(" \n\t a b \u{3000}\u{1f}\u{85}"), "a b");
        // Zero-width space is not whitespace for either.
        assert_eq!(strip_like_python("\u{200b}x"), "\u{200b}x");
        assert_eq!(strip_like_python("\n\n"), "");
    }
}
