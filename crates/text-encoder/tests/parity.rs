//! Given the official tensors in testdata/text-encoder (transformers' Qwen2.5-VL and diffusers'
//! QwenImagePipeline on the tiny pipeline, upcast to f32; see xtask/reference/gen_text_encoder.py),
//! our text encoder and prompt path match within 1e-4 max relative error, with identical masks.

use crate::common;

use burn::tensor::{Int, Tensor, TensorData};
use common::{B, Goldens, batch, ints, max_rel_err, tiny_pipeline, tiny_text_encoder, values};
use text_encoder::{
    DEFAULT_MAX_SEQUENCE_LENGTH, Error, PROMPT_TEMPLATE, PromptEmbeds, PromptEncoder,
    QwenTextEncoder, TEMPLATE_PREFIX_TOKENS, format_prompt,
};

const TOLERANCE: f32 = 1e-4;

fn encoder() -> QwenTextEncoder<B> {
    QwenTextEncoder::load(tiny_text_encoder(), &Default::default())
        .expect("tiny text encoder loads")
}

fn int_tensor(g: &Goldens, name: &str) -> Tensor<B, 2, Int> {
    let (v, shape) = g.i64(name);
    Tensor::from_data(
        TensorData::new(v, [shape[0], shape[1]]),
        &Default::default(),
    )
}

fn assert_close(what: &str, ours: Vec<f32>, g: &Goldens, name: &str) {
    let (theirs, _) = g.f32(name);
    let err = max_rel_err(&ours, &theirs);
    eprintln!("{what}: max relative error {err:.2e}");
    assert!(
        err <= TOLERANCE,
        "{what} vs `{name}`: max relative error {err}"
    );
}

#[test]
fn rope_inverse_frequencies_equal_transformers_bit_for_bit() {
    let g = Goldens::testdata("text-encoder/hidden_states.safetensors");
    let (theirs, _) = g.f32("inv_freq");
    assert_eq!(encoder().inv_freq(), theirs.as_slice());
}

#[test]
fn every_layer_matches_transformers_hidden_states_on_one_prompt() {
    let g = Goldens::testdata("text-encoder/hidden_states.safetensors");
    let enc = encoder();
    let layers = enc.config().num_hidden_layers;
    let out = enc
        .forward_hidden_states(
            int_tensor(&g, "input_ids"),
            int_tensor(&g, "attention_mask"),
        )
        .expect("forward");
    assert_eq!(out.embeddings.dims()[1], g.i64("input_ids").1[1]);

    assert_close("embeddings", values(out.embeddings), &g, "hidden_states.0");
    assert_eq!(out.layers.len(), layers);
    for (i, h) in out.layers.into_iter().enumerate() {
        assert_close(
            &format!("layer {i} output"),
            values(h),
            &g,
            &format!("layer_output.{i}"),
        );
    }
    // transformers reports the final-norm output as the last of `hidden_states`.
    assert_close(
        "final norm",
        values(out.last_hidden_state),
        &g,
        &format!("hidden_states.{layers}"),
    );
}

/// Our prompt path on the tokens the pipeline made, against `_get_qwen_prompt_embeds` (all rows,
/// `max_sequence_length` 1024) and `encode_prompt(max_sequence_length=512)`.
fn check_prompt_case(case: &str) -> (PromptEmbeds<B>, PromptEmbeds<B>) {
    let g = Goldens::testdata("text-encoder/prompt_embeds.safetensors");
    let enc = encoder();
    let tokens = batch(&g, &format!("{case}."));
    let checks = [
        (1024, format!("{case}.")),
        (512, format!("{case}.encoded.")),
    ];
    let [full, encoded] = checks.map(|(max_len, prefix)| {
        let out = enc.encode_tokens(&tokens, max_len).expect("encodes");
        let (theirs_mask, shape) = g.i64(&format!("{prefix}prompt_embeds_mask"));
        assert_eq!(
            out.embeds.dims().to_vec(),
            g.f32(&format!("{prefix}prompt_embeds")).1
        );
        assert_eq!(out.mask.dims().to_vec(), shape);
        assert_eq!(
            ints(out.mask.clone()),
            theirs_mask,
            "{prefix}: masks differ"
        );
        let lengths: Vec<usize> = theirs_mask
            .chunks_exact(shape[1])
            .map(|r| r.iter().sum::<i64>() as usize)
            .collect();
        assert_eq!(out.lengths, lengths);
        assert_close(
            prefix.as_str(),
            values(out.embeds.clone()),
            &g,
            &format!("{prefix}prompt_embeds"),
        );
        out
    });
    (full, encoded)
}

#[test]
fn a_padded_batch_of_space_cjk_emoji_and_long_prompts_matches_the_pipeline() {
    let (full, encoded) = check_prompt_case("batch");
    // Three different lengths: the padding and the zero rows are exercised.
    assert_eq!(full.lengths.len(), 3);
    assert!(full.lengths[0] < full.lengths[1] && full.lengths[1] < full.lengths[2]);
    // " " keeps one space token and the 5-token assistant suffix.
    assert_eq!(full.lengths[0], 6);
    assert!(
        encoded.mask_if_needed().is_some(),
        "a padded batch keeps its mask"
    );
}

#[test]
fn a_prompt_cut_by_tokenizer_truncation_still_matches_the_pipeline() {
    let g = Goldens::testdata("text-encoder/prompt_embeds.safetensors");
    assert_eq!(
        batch(&g, "truncated.").seq_len,
        1024 + TEMPLATE_PREFIX_TOKENS
    );
    let (full, encoded) = check_prompt_case("truncated");
    assert_eq!(full.lengths, [1024]);
    assert_eq!(encoded.lengths, [512]);
    assert_eq!(
        g.info()["cases"]["truncated"]["encoded_mask_was_none"],
        true
    );
    assert!(
        encoded.mask_if_needed().is_none(),
        "all ones → None, as diffusers"
    );
}

#[test]
fn an_empty_prompt_keeps_only_the_assistant_suffix() {
    let (full, encoded) = check_prompt_case("empty");
    assert_eq!(full.lengths, [5]);
    assert!(encoded.mask_if_needed().is_none());
}

/// The prompts of one golden case, as the generator recorded them.
fn prompts(g: &Goldens, case: &str) -> Vec<String> {
    serde_json::from_value(g.info()["cases"][case]["prompts"].clone()).expect("prompt list")
}

#[test]
fn the_real_tokenizer_makes_the_template_prefix_exactly_34_tokens() {
    let enc =
        PromptEncoder::<B>::from_pipeline_dir(tiny_pipeline(), &Default::default()).expect("loads");
    let (prefix, _) = PROMPT_TEMPLATE
        .split_once("{}")
        .expect("template has a slot");
    let ids = enc.tokenizer().encode(prefix, false).expect("encodes");
    assert_eq!(ids.len(), TEMPLATE_PREFIX_TOKENS);
    // And the prefix is a prefix of every templated prompt's tokens (it is what gets dropped).
    let full = enc
        .tokenizer()
        .encode(&format_prompt("a cat"), false)
        .expect("encodes");
    assert_eq!(full[..TEMPLATE_PREFIX_TOKENS], ids[..]);
}

#[test]
fn prompts_encoded_end_to_end_match_the_pipeline_tokens_and_embeddings() {
    let g = Goldens::testdata("text-encoder/prompt_embeds.safetensors");
    let enc =
        PromptEncoder::<B>::from_pipeline_dir(tiny_pipeline(), &Default::default()).expect("loads");
    for case in ["batch", "truncated", "empty"] {
        let prompts = prompts(&g, case);
        assert_eq!(
            enc.tokenize(&prompts).expect("tokenizes"),
            batch(&g, &format!("{case}.")),
            "{case}: tokens"
        );
        let out = enc
            .encode(&prompts, DEFAULT_MAX_SEQUENCE_LENGTH)
            .expect("encodes");
        let prefix = format!("{case}.encoded.");
        assert_eq!(
            ints(out.mask),
            g.i64(&format!("{prefix}prompt_embeds_mask")).0,
            "{case}: mask"
        );
        assert_close(
            &prefix,
            values(out.embeds),
            &g,
            &format!("{prefix}prompt_embeds"),
        );
    }
}

#[test]
fn max_sequence_length_above_1024_is_refused_as_in_diffusers() {
    let enc =
        PromptEncoder::<B>::from_pipeline_dir(tiny_pipeline(), &Default::default()).expect("loads");
    let err = enc
        .encode(&["a cat".into()], 1025)
        .expect_err("1025 > 1024");
    assert!(
        matches!(
            err,
            Error::MaxSequenceLength {
                got: 1025,
                limit: 1024
            }
        ),
        "{err}"
    );
    assert!(enc.encode(&["a cat".into()], 0).is_err());
    assert!(enc.encode(&[], 512).is_err(), "no prompts");
}
