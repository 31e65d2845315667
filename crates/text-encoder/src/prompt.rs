//! The Qwen-Image prompt paths: template → tokens → final-norm hidden states → keep each sample's
//! real tokens → drop the template's leading tokens → re-pad with zeros → mask.
//!
//! Text-to-image (`QwenImagePipeline._get_qwen_prompt_embeds` and the truncation of
//! `encode_prompt`): tokenizer truncation at 1024 + 34, drop 34, cut to `max_sequence_length`.
//! Edit / Edit-Plus (`QwenImageEdit[Plus]Pipeline._get_qwen_prompt_embeds`, whose
//! `encode_prompt` ignores `max_sequence_length`): the processor expands each image placeholder,
//! no truncation, image embeddings scattered in, M-RoPE positions, drop 64, no cut.

use std::path::Path;

use burn::tensor::backend::Backend;
use burn::tensor::{Int, Tensor, TensorData};
use image::RgbImage;
use tokenizer_loader::{Batch, QwenTokenizer};
use weights::{PipelineDir, Weights};

use crate::multimodal::{
    ImageEmbeds, VisionPositions, expand_image_pads, image_token_count, mrope_position_ids,
};
use crate::template::{PromptTemplate, TEMPLATE_PREFIX_TOKENS, VIDEO_PAD, format_prompt};
use crate::{
    Error, ImageProcessor, MultimodalInputs, QwenTextEncoder, TextConfig, VisionConfig, VisionTower,
};

/// `tokenizer_max_length`: the tokenizer truncates at this plus [`TEMPLATE_PREFIX_TOKENS`].
pub const TOKENIZER_MAX_LENGTH: usize = 1024;

/// The largest `max_sequence_length` diffusers accepts (its `check_inputs` refuses more).
pub const MAX_SEQUENCE_LENGTH_LIMIT: usize = 1024;

/// `QwenImagePipeline.__call__`'s default `max_sequence_length`.
pub const DEFAULT_MAX_SEQUENCE_LENGTH: usize = 512;

/// Prompt embeddings ready for the DiT.
#[derive(Debug, Clone)]
pub struct PromptEmbeds<B: Backend> {
    /// `[B, L, D]`: each sample's rows after the template prefix, zero rows after its end.
    pub embeds: Tensor<B, 3>,
    /// `[B, L]`: 1 for real rows, 0 for padding, aligned with `embeds`.
    pub mask: Tensor<B, 2, Int>,
    /// Real rows per sample (`mask.sum(1)`), after truncation.
    pub lengths: Vec<usize>,
}

impl<B: Backend> PromptEmbeds<B> {
    /// The mask as the pipeline passes it on: `None` when every row is real (diffusers ≥ 0.37
    /// replaces an all-ones mask by `None`, e.g. for every single prompt), else the mask.
    pub fn mask_if_needed(&self) -> Option<Tensor<B, 2, Int>> {
        let l = self.embeds.dims()[1];
        (!self.lengths.iter().all(|&n| n == l)).then(|| self.mask.clone())
    }
}

impl<B: Backend> QwenTextEncoder<B> {
    /// The text-to-image prompt path from templated prompts already tokenized as the pipeline
    /// does it ([`PromptEncoder::tokenize`]): run the model, keep each sample's real tokens, drop
    /// the first [`TEMPLATE_PREFIX_TOKENS`], re-pad with zeros to the longest, then keep at most
    /// `max_sequence_length` rows (1..=1024).
    pub fn encode_tokens(
        &self,
        tokens: &Batch,
        max_sequence_length: usize,
    ) -> Result<PromptEmbeds<B>, Error> {
        check_max_sequence_length(max_sequence_length)?;
        let kept = self.check_tokens(tokens, TEMPLATE_PREFIX_TOKENS)?;
        let (ids, mask) = self.token_tensors(tokens);
        let hidden = self.forward(ids, mask)?;
        Ok(pack_rows(hidden, &kept, Some(max_sequence_length)))
    }

    /// The Edit / Edit-Plus path from tokens already expanded as the processor does
    /// ([`PromptEncoder::tokenize_with_images`]) and every image's embeddings in the order of
    /// their `<|image_pad|>` runs (row by row): run the model with the images scattered in and
    /// `positions`, keep each sample's real tokens, drop the first `drop` (64 for the Edit
    /// templates), re-pad with zeros to the longest. No cut: the Edit pipelines' `encode_prompt`
    /// ignores `max_sequence_length`.
    pub fn encode_tokens_with_images(
        &self,
        tokens: &Batch,
        images: &[ImageEmbeds<B>],
        drop: usize,
        positions: VisionPositions,
    ) -> Result<PromptEmbeds<B>, Error> {
        let kept = self.check_tokens(tokens, drop)?;
        let grids: Vec<[usize; 3]> = images.iter().map(|i| i.grid_thw).collect();
        let merge = self.config().spatial_merge_size;
        for image in images {
            let n = image_token_count(image.grid_thw, merge)?;
            if image.embeds.dims()[0] != n {
                return Err(Error::Images(format!(
                    "{} embedding rows for an image of grid {:?} ({n} tokens)",
                    image.embeds.dims()[0],
                    image.grid_thw
                )));
            }
        }
        let device = self.embed_tokens_device();
        let position_ids = match positions {
            VisionPositions::Sequential => None,
            VisionPositions::Mrope => {
                let (b, t) = (tokens.batch_size, tokens.seq_len);
                let p = mrope_position_ids(
                    &tokens.ids,
                    &tokens.mask,
                    b,
                    t,
                    &grids,
                    self.config().image_token_id,
                    merge,
                )?;
                Some(Tensor::<B, 3, Int>::from_data(
                    TensorData::new(p, [3, b, t]),
                    &device,
                ))
            }
        };
        let image_embeds = (!images.is_empty())
            .then(|| Tensor::cat(images.iter().map(|i| i.embeds.clone()).collect(), 0));
        let (input_ids, attention_mask) = self.token_tensors(tokens);
        let hidden = self.forward_multimodal(MultimodalInputs {
            input_ids,
            attention_mask,
            image_embeds,
            position_ids,
        })?;
        Ok(pack_rows(hidden, &kept, None))
    }

    fn token_tensors(&self, tokens: &Batch) -> (Tensor<B, 2, Int>, Tensor<B, 2, Int>) {
        let device = self.embed_tokens_device();
        let (b, t) = (tokens.batch_size, tokens.seq_len);
        let to_tensor = |v: &[u32]| {
            let v: Vec<i64> = v.iter().map(|&x| i64::from(x)).collect();
            Tensor::<B, 2, Int>::from_data(TensorData::new(v, [b, t]), &device)
        };
        (to_tensor(&tokens.ids), to_tensor(&tokens.mask))
    }

    /// Validate a token batch; per sample, the positions of its real tokens after the first
    /// `drop`.
    fn check_tokens(&self, tokens: &Batch, drop: usize) -> Result<Vec<Vec<usize>>, Error> {
        let (b, t) = (tokens.batch_size, tokens.seq_len);
        if b == 0 || t == 0 {
            return Err(Error::Tokens("empty batch".into()));
        }
        if tokens.ids.len() != b * t || tokens.mask.len() != b * t {
            return Err(Error::Tokens(format!(
                "{} ids and {} mask values for a {b}×{t} batch",
                tokens.ids.len(),
                tokens.mask.len()
            )));
        }
        let vocab = self.config().vocab_size;
        if let Some(&id) = tokens.ids.iter().find(|&&id| id as usize >= vocab) {
            return Err(Error::Tokens(format!(
                "token id {id} is outside the vocabulary ({vocab})"
            )));
        }
        let mut kept = Vec::with_capacity(b);
        for (row, m) in tokens.mask.chunks_exact(t).enumerate() {
            if m.iter().any(|&v| v > 1) {
                return Err(Error::Tokens(format!(
                    "row {row}: attention mask values must be 0 or 1"
                )));
            }
            let real: Vec<usize> = (0..t).filter(|&i| m[i] == 1).collect();
            if real.len() <= drop {
                return Err(Error::Tokens(format!(
                    "row {row} has {} tokens: a templated prompt has more than the {drop} tokens the pipeline drops",
                    real.len()
                )));
            }
            kept.push(real[drop..].to_vec());
        }
        Ok(kept)
    }
}

/// Gather each sample's kept rows of `hidden` `[B, T, D]` into `[B, L, D]`, zero rows after its
/// end, L = the longest kept length, capped at `cap`; with the aligned mask. One `select` for the
/// whole batch: padding slots point at row 0 and are zeroed afterwards (upstream pads with
/// `new_zeros`).
fn pack_rows<B: Backend>(
    hidden: Tensor<B, 3>,
    kept: &[Vec<usize>],
    cap: Option<usize>,
) -> PromptEmbeds<B> {
    let [b, t, d] = hidden.dims();
    let device = hidden.device();
    let longest = kept.iter().map(Vec::len).max().unwrap_or(0);
    let len = cap.map_or(longest, |c| longest.min(c));
    let mut index = Vec::with_capacity(b * len);
    let mut mask = Vec::with_capacity(b * len);
    for (row, rows) in kept.iter().enumerate() {
        for k in 0..len {
            let real = rows.get(k);
            index.push((row * t + real.copied().unwrap_or(0)) as i64);
            mask.push(i64::from(real.is_some()));
        }
    }
    let index = Tensor::<B, 1, Int>::from_data(TensorData::new(index, [b * len]), &device);
    let mask = Tensor::<B, 2, Int>::from_data(TensorData::new(mask, [b, len]), &device);
    let embeds = hidden
        .reshape([b * t, d])
        .select(0, index)
        .reshape([b, len, d]);
    let pad = mask
        .clone()
        .equal_elem(0)
        .unsqueeze_dim::<3>(2)
        .expand([b, len, d]);
    PromptEmbeds {
        embeds: embeds.mask_fill(pad, 0.0),
        mask,
        lengths: kept.iter().map(|r| r.len().min(len)).collect(),
    }
}

fn check_max_sequence_length(n: usize) -> Result<(), Error> {
    if (1..=MAX_SEQUENCE_LENGTH_LIMIT).contains(&n) {
        Ok(())
    } else {
        Err(Error::MaxSequenceLength {
            got: n,
            limit: MAX_SEQUENCE_LENGTH_LIMIT,
        })
    }
}

/// Tokenizer + text encoder + the pipeline's template (+ for the Edit pipelines the image
/// processor and the vision tower): prompts (and images) in, [`PromptEmbeds`] out.
#[derive(Debug)]
pub struct PromptEncoder<B: Backend> {
    tokenizer: QwenTokenizer,
    encoder: QwenTextEncoder<B>,
    template: PromptTemplate,
    vision: Option<(ImageProcessor, VisionTower<B>)>,
}

impl<B: Backend> PromptEncoder<B> {
    /// Load the tokenizer and the text encoder of a diffusers pipeline folder (`model_index.json`,
    /// `tokenizer/`, `text_encoder/`); the template follows the pipeline class (`_class_name`).
    ///
    /// For the Edit pipelines also the image side: the processor settings of
    /// `processor/` (`preprocessor_config.json`, or
    /// `processor_config.json` as transformers ≥ 5 saves it) and the vision tower of `text_encoder/`; and, as
    /// their processor tokenizes, the tokenizer of `processor/` when it holds tokenizer files
    /// (as released), else `tokenizer/`.
    pub fn from_pipeline_dir(dir: impl AsRef<Path>, device: &B::Device) -> Result<Self, Error> {
        let dir = dir.as_ref();
        let pipeline = PipelineDir::open(dir)?;
        let template =
            PromptTemplate::for_model_index(pipeline.model_index(), &dir.join("model_index.json"))?;
        let te_dir = pipeline.component("text_encoder")?;
        if !template.takes_images() {
            let encoder = QwenTextEncoder::load(&te_dir, device)?;
            let tokenizer = QwenTokenizer::from_pipeline_dir(dir)?;
            return Ok(Self::new(tokenizer, encoder));
        }
        // One mapping of the checkpoint for both halves of the model.
        let config_path = te_dir.join("config.json");
        let weights = Weights::open(&te_dir)?;
        let encoder =
            QwenTextEncoder::from_weights(&weights, TextConfig::from_file(&config_path)?, device)?;
        let tower =
            VisionTower::from_weights(&weights, VisionConfig::from_file(&config_path)?, device)?;
        let processor_dir = dir.join("processor");
        let processor = ImageProcessor::from_processor_dir(&processor_dir)?;
        let has = |f: &str| processor_dir.join(f).is_file();
        let tokenizer = if has("tokenizer.json") || (has("vocab.json") && has("merges.txt")) {
            QwenTokenizer::from_folder(&processor_dir)?
        } else {
            QwenTokenizer::from_pipeline_dir(dir)?
        };
        Ok(Self::new(tokenizer, encoder)
            .with_template(template)
            .with_vision(processor, tower))
    }

    /// Pair an already loaded tokenizer and model, with the text-to-image template.
    pub fn new(tokenizer: QwenTokenizer, encoder: QwenTextEncoder<B>) -> Self {
        Self {
            tokenizer,
            encoder,
            template: PromptTemplate::TextToImage,
            vision: None,
        }
    }

    /// The same encoder with an image side, for [`encode_with_images`](Self::encode_with_images).
    pub fn with_vision(mut self, processor: ImageProcessor, tower: VisionTower<B>) -> Self {
        self.vision = Some((processor, tower));
        self
    }

    /// The image processor settings and the vision tower, when loaded.
    pub fn vision(&self) -> Option<(&ImageProcessor, &VisionTower<B>)> {
        self.vision.as_ref().map(|(p, t)| (p, t))
    }

    /// The same encoder with another pipeline's template.
    pub fn with_template(mut self, template: PromptTemplate) -> Self {
        self.template = template;
        self
    }

    /// The template in use.
    pub fn template(&self) -> PromptTemplate {
        self.template
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &QwenTokenizer {
        &self.tokenizer
    }

    /// The language model.
    pub fn encoder(&self) -> &QwenTextEncoder<B> {
        &self.encoder
    }

    /// The text-to-image pipeline's tokenizer call: each prompt in [`PROMPT_TEMPLATE`],
    /// right-padded to the longest, truncated at 1024 + 34 tokens.
    ///
    /// [`PROMPT_TEMPLATE`]: crate::PROMPT_TEMPLATE
    pub fn tokenize(&self, prompts: &[String]) -> Result<Batch, Error> {
        let texts: Vec<String> = prompts.iter().map(|p| format_prompt(p)).collect();
        Ok(self
            .tokenizer
            .encode_batch_padded(&texts, TOKENIZER_MAX_LENGTH + TEMPLATE_PREFIX_TOKENS)?)
    }

    /// Encode prompts as the pipeline's `encode_prompt` does without images: text-to-image
    /// keeps at most `max_sequence_length` (1..=1024, default [`DEFAULT_MAX_SEQUENCE_LENGTH`])
    /// rows; Edit-Plus encodes the bare edit template (no picture), ignoring the cut as
    /// diffusers does; Edit refuses (its template holds an image).
    pub fn encode(
        &self,
        prompts: &[String],
        max_sequence_length: usize,
    ) -> Result<PromptEmbeds<B>, Error> {
        check_max_sequence_length(max_sequence_length)?;
        if prompts.is_empty() {
            return Err(Error::Tokens("no prompts to encode".into()));
        }
        if self.template.takes_images() {
            let none = vec![Vec::new(); prompts.len()];
            return self.encode_with_image_embeds(prompts, &none, VisionPositions::default());
        }
        let tokens = self.tokenize(prompts)?;
        self.encoder.encode_tokens(&tokens, max_sequence_length)
    }

    /// The processor's text side for prompts with images, `grids[i]` being prompt i's images
    /// (`image_grid_thw` rows): each prompt in the template (Edit: one image; Edit-Plus: "Picture
    /// N: " per image), every `<|image_pad|>` repeated once per merged patch, tokenized and
    /// right-padded to the longest, without truncation (`padding=True` only).
    pub fn tokenize_with_images(
        &self,
        prompts: &[String],
        grids: &[Vec<[usize; 3]>],
    ) -> Result<Batch, Error> {
        if !self.template.takes_images() {
            return Err(Error::Images(
                "this is a text-to-image pipeline: its prompts take no images".into(),
            ));
        }
        if prompts.is_empty() {
            return Err(Error::Tokens("no prompts to encode".into()));
        }
        if grids.len() != prompts.len() {
            return Err(Error::Images(format!(
                "{} image lists for {} prompts (one list per prompt)",
                grids.len(),
                prompts.len()
            )));
        }
        let merge = self.encoder.config().spatial_merge_size;
        let mut texts = Vec::with_capacity(prompts.len());
        for (prompt, grids) in prompts.iter().zip(grids) {
            let text = self.template.format(prompt, grids.len())?;
            if text.contains(VIDEO_PAD) {
                // The processor counts it as a video placeholder and refuses a prompt without
                // videos.
                return Err(Error::Tokens(format!(
                    "a prompt may not contain {VIDEO_PAD} (no videos were passed)"
                )));
            }
            let counts = grids
                .iter()
                .map(|&g| image_token_count(g, merge))
                .collect::<Result<Vec<_>, _>>()?;
            texts.push((
                expand_image_pads(&text, &counts)?,
                counts.iter().sum::<usize>(),
            ));
        }
        let strings: Vec<&str> = texts.iter().map(|(t, _)| t.as_str()).collect();
        let batch = self.tokenizer.encode_batch_padded(&strings, usize::MAX)?;
        // The processor's own check: the tokenizer must keep each placeholder a single token.
        let image_id = self.encoder.config().image_token_id;
        for (row, (_, want)) in texts.iter().enumerate() {
            let got = batch
                .row(row)
                .map_or(0, |r| r.iter().filter(|&&id| id == image_id).count());
            if got != *want {
                return Err(Error::Images(format!(
                    "prompt {row}: {got} image tokens after tokenization, {want} expected (is \
                     <|image_pad|> id {image_id} in the tokenizer?)"
                )));
            }
        }
        Ok(batch)
    }

    /// Encode prompts with images as the Edit pipelines' `encode_prompt` does, given each
    /// image's vision-tower embeddings: `images[i]` are prompt i's images in order (Edit: exactly
    /// one; Edit-Plus: any number, named "Picture 1…N"). `positions` picks the 3-D M-RoPE
    /// positions of the model (the default) or the sequential ones of the pinned diffusers +
    /// transformers 5 pairing ([`VisionPositions`]). No `max_sequence_length`: the Edit
    /// pipelines ignore it.
    pub fn encode_with_image_embeds(
        &self,
        prompts: &[String],
        images: &[Vec<ImageEmbeds<B>>],
        positions: VisionPositions,
    ) -> Result<PromptEmbeds<B>, Error> {
        let grids: Vec<Vec<[usize; 3]>> = images
            .iter()
            .map(|list| list.iter().map(|i| i.grid_thw).collect())
            .collect();
        let tokens = self.tokenize_with_images(prompts, &grids)?;
        let flat: Vec<ImageEmbeds<B>> = images.iter().flatten().cloned().collect();
        self.encoder.encode_tokens_with_images(
            &tokens,
            &flat,
            self.template.drop_tokens(),
            positions,
        )
    }

    /// The processor and the vision tower on RGB images: each image's embeddings, in order
    /// (`Qwen2VLImageProcessor` then `get_image_features`, all images in one call as the
    /// processor takes them).
    ///
    /// The images must already be RGB: diffusers' `load_image` converts with PIL's
    /// `convert("RGB")`, which drops alpha. (A picture with alpha handed to the processor as it
    /// is would be composited onto white: [`image_io::convert_to_rgb`].)
    pub fn image_embeds(&self, images: &[RgbImage]) -> Result<Vec<ImageEmbeds<B>>, Error> {
        let (processor, tower) = self.vision.as_ref().ok_or_else(|| {
            Error::Images("this encoder has no image processor and vision tower".into())
        })?;
        if images.is_empty() {
            return Ok(Vec::new());
        }
        let input = processor.preprocess(images)?;
        let device = self.encoder.embed_tokens_device();
        let embeds = tower.forward(input.pixel_values_tensor::<B>(&device), &input.grid_thw)?;
        ImageEmbeds::split(embeds, &input.grid_thw, tower.config().spatial_merge_size)
    }

    /// Encode prompts with images as the Edit pipelines' `encode_prompt` does, from the images
    /// themselves (RGB, see [`image_embeds`](Self::image_embeds)): `images[i]` are prompt i's
    /// images, as for [`encode_with_image_embeds`](Self::encode_with_image_embeds).
    pub fn encode_with_images(
        &self,
        prompts: &[String],
        images: &[Vec<RgbImage>],
        positions: VisionPositions,
    ) -> Result<PromptEmbeds<B>, Error> {
        let flat: Vec<RgbImage> = images.iter().flatten().cloned().collect();
        let mut embeds = self.image_embeds(&flat)?.into_iter();
        let per_prompt: Vec<Vec<ImageEmbeds<B>>> = images
            .iter()
            .map(|list| embeds.by_ref().take(list.len()).collect())
            .collect();
        self.encode_with_image_embeds(prompts, &per_prompt, positions)
    }
}
