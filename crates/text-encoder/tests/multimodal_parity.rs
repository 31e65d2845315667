//! The Edit / Edit-Plus prompt path against the official tensors in testdata/text-encoder-mm
//! (diffusers' QwenImageEditPipeline / QwenImageEditPlusPipeline with a real Qwen2VLProcessor
//! and transformers' Qwen2.5-VL on the tiny pipeline; see xtask/reference/gen_text_encoder_mm.py):
//! token ids and M-RoPE positions exact, embeddings within 1e-4 max relative error, checked
//! after the image scatter, after every layer and at the end of the pipeline.
//!
//! The image embeddings are the official vision tower's output stored in the goldens, so this
//! file tests the language-model side alone.

use crate::common;

use std::path::PathBuf;

use burn::tensor::{Int, Tensor, TensorData};
use common::{B, Goldens, batch, ints, max_rel_err, testdata, values};
use text_encoder::{
    EDIT_TEMPLATE_PREFIX_TOKENS, Error, ImageEmbeds, MultimodalInputs, PromptEncoder,
    PromptTemplate, VisionPositions, mrope_position_ids,
};

const TOLERANCE: f32 = 1e-4;
const GOLDENS: &str = "text-encoder-mm/mm_embeds.safetensors";
const CASES: [&str; 3] = ["edit_batch", "edit_single", "edit_plus"];

fn goldens() -> Goldens {
    Goldens::testdata(GOLDENS)
}

fn info(g: &Goldens, case: &str) -> serde_json::Value {
    g.info()["cases"][case].clone()
}

/// The tiny pipeline folder of a golden case's pipeline class.
fn folder(g: &Goldens, case: &str) -> PathBuf {
    match info(g, case)["pipeline"].as_str() {
        Some("QwenImageEditPipeline") => testdata("tiny-qwen-image-edit"),
        Some("QwenImageEditPlusPipeline") => testdata("tiny-qwen-image-edit-plus"),
        other => panic!("{case}: unexpected pipeline {other:?}"),
    }
}

fn encoder_for(g: &Goldens, case: &str) -> PromptEncoder<B> {
    PromptEncoder::from_pipeline_dir(folder(g, case), &Default::default()).expect("loads")
}

fn prompts(g: &Goldens, case: &str) -> Vec<String> {
    serde_json::from_value(info(g, case)["prompts"].clone()).expect("prompt list")
}

fn grids(g: &Goldens, prefix: &str) -> Vec<[usize; 3]> {
    let (v, shape) = g.i64(&format!("{prefix}image_grid_thw"));
    assert_eq!(shape[1], 3);
    v.chunks_exact(3)
        .map(|r| [r[0] as usize, r[1] as usize, r[2] as usize])
        .collect()
}

/// Which images belong to which prompt, as the processor consumed them: Edit takes one per
/// prompt in order, Edit-Plus gives its single prompt every image.
fn per_prompt<T: Clone>(g: &Goldens, case: &str, items: Vec<T>) -> Vec<Vec<T>> {
    let n = prompts(g, case).len();
    if info(g, case)["pipeline"] == "QwenImageEditPlusPipeline" {
        assert_eq!(n, 1, "Edit-Plus takes one prompt");
        vec![items]
    } else {
        assert_eq!(items.len(), n, "Edit: one image per prompt");
        items.into_iter().map(|i| vec![i]).collect()
    }
}

fn f32_tensor<const D: usize>(g: &Goldens, name: &str) -> Tensor<B, D> {
    let (v, shape) = g.f32(name);
    let shape: [usize; D] = shape.try_into().expect("rank");
    Tensor::from_data(TensorData::new(v, shape), &Default::default())
}

fn int_tensor<const D: usize>(g: &Goldens, name: &str) -> Tensor<B, D, Int> {
    let (v, shape) = g.i64(name);
    let shape: [usize; D] = shape.try_into().expect("rank");
    Tensor::from_data(TensorData::new(v, shape), &Default::default())
}

fn image_embeds(g: &Goldens, prefix: &str) -> Vec<ImageEmbeds<B>> {
    ImageEmbeds::split(
        f32_tensor(g, &format!("{prefix}image_embeds")),
        &grids(g, prefix),
        2,
    )
    .expect("golden embeddings fit their grids")
}

fn positions(g: &Goldens, prefix: &str) -> Vec<i64> {
    let batch = batch(g, prefix);
    mrope_position_ids(
        &batch.ids,
        &batch.mask,
        batch.batch_size,
        batch.seq_len,
        &grids(g, prefix),
        151_655,
        2,
    )
    .expect("positions")
}

fn assert_close(what: &str, ours: Vec<f32>, theirs: &[f32]) {
    let err = max_rel_err(&ours, theirs);
    eprintln!("{what}: max relative error {err:.2e}");
    assert!(err <= TOLERANCE, "{what}: max relative error {err}");
}

#[test]
fn the_pipeline_class_picks_the_template_and_the_processor_tokenizer() {
    let g = goldens();
    for case in CASES {
        let enc = encoder_for(&g, case);
        let want = match info(&g, case)["pipeline"].as_str() {
            Some("QwenImageEditPipeline") => PromptTemplate::Edit,
            _ => PromptTemplate::EditPlus,
        };
        assert_eq!(enc.template(), want, "{case}");
        assert_eq!(enc.template().drop_tokens(), EDIT_TEMPLATE_PREFIX_TOKENS);
        assert_eq!(info(&g, case)["drop"], EDIT_TEMPLATE_PREFIX_TOKENS);
        assert!(
            enc.tokenizer().location().contains("processor"),
            "{case}: the Edit pipelines tokenize with their processor's tokenizer, got {}",
            enc.tokenizer().location()
        );
    }
    let t2i =
        PromptEncoder::<B>::from_pipeline_dir(testdata("tiny-qwen-image"), &Default::default())
            .expect("loads");
    assert_eq!(t2i.template(), PromptTemplate::TextToImage);
}

#[test]
fn image_placeholders_expand_and_tokenize_exactly_as_the_processor() {
    let g = goldens();
    for case in CASES {
        let enc = encoder_for(&g, case);
        let prefix = format!("{case}.");
        let grids = per_prompt(&g, case, grids(&g, &prefix));
        let ours = enc
            .tokenize_with_images(&prompts(&g, case), &grids)
            .expect("tokenizes");
        assert_eq!(
            ours,
            batch(&g, &prefix),
            "{case}: input_ids / attention_mask"
        );
    }
}

#[test]
fn mrope_positions_equal_get_rope_index_with_right_and_left_padding() {
    let g = goldens();
    for prefix in CASES
        .iter()
        .map(|c| format!("{c}."))
        .chain(["left_padded.".to_string()])
    {
        let (want, shape) = g.i64(&format!("{prefix}position_ids"));
        assert_eq!(shape[0], 3);
        assert_eq!(positions(&g, &prefix), want, "{prefix}position_ids");
    }
    let mask = batch(&g, "left_padded.").mask;
    assert_eq!(mask[0], 0, "the left-padded case starts with a pad");
}

#[test]
fn image_embeddings_land_on_the_image_pad_tokens() {
    let g = goldens();
    let enc = encoder_for(&g, "edit_batch");
    for case in CASES {
        let prefix = format!("{case}.");
        let x = enc
            .encoder()
            .embed_multimodal(
                int_tensor(&g, &format!("{prefix}input_ids")),
                Some(f32_tensor(&g, &format!("{prefix}image_embeds"))),
            )
            .expect("scatters");
        let (want, _) = g.f32(&format!("{prefix}hidden_states.0"));
        // Pure copies of the embedding table and of the vision rows: exact.
        assert_eq!(values(x), want, "{case}: inputs_embeds after the scatter");
    }
}

#[test]
fn every_layer_matches_transformers_with_3d_positions() {
    let g = goldens();
    let enc = encoder_for(&g, "edit_batch");
    let model = enc.encoder();
    let layers = model.config().num_hidden_layers;
    for case in CASES {
        let prefix = format!("{case}.");
        let batch = batch(&g, &prefix);
        let p = positions(&g, &prefix);
        let out = model
            .forward_multimodal_hidden_states(MultimodalInputs {
                input_ids: int_tensor(&g, &format!("{prefix}input_ids")),
                attention_mask: int_tensor(&g, &format!("{prefix}attention_mask")),
                image_embeds: Some(f32_tensor(&g, &format!("{prefix}image_embeds"))),
                position_ids: Some(Tensor::from_data(
                    TensorData::new(p, [3, batch.batch_size, batch.seq_len]),
                    &Default::default(),
                )),
            })
            .expect("forward");
        assert_eq!(out.layers.len(), layers);
        for (i, h) in out.layers.into_iter().enumerate() {
            let (want, _) = g.f32(&format!("{prefix}layer_output.{i}"));
            assert_close(&format!("{case} layer {i}"), values(h), &want);
        }
        let (want, _) = g.f32(&format!("{prefix}hidden_states.{layers}"));
        assert_close(
            &format!("{case} final norm"),
            values(out.last_hidden_state),
            &want,
        );
    }
}

/// Our prompt path vs `_get_qwen_prompt_embeds` (`<case>.<tag>prompt_embeds`) and
/// `encode_prompt` (`<case>.<tag>encoded.*`), on golden image embeddings.
fn check_pipeline(case: &str, positions: VisionPositions, tag: &str) {
    let g = goldens();
    let enc = encoder_for(&g, case);
    let prefix = format!("{case}.");
    let images = per_prompt(&g, case, image_embeds(&g, &prefix));
    let out = enc
        .encode_with_image_embeds(&prompts(&g, case), &images, positions)
        .expect("encodes");
    for stage in ["", "encoded."] {
        let name = format!("{prefix}{tag}{stage}prompt_embeds");
        let (want, shape) = g.f32(&name);
        assert_eq!(out.embeds.dims().to_vec(), shape, "{name}");
        assert_close(&name, values(out.embeds.clone()), &want);
        let (mask, _) = g.i64(&format!("{name}_mask"));
        assert_eq!(ints(out.mask.clone()), mask, "{name}_mask");
    }
    let flag = if tag.is_empty() {
        "encoded_mask_was_none"
    } else {
        "as_is_encoded_mask_was_none"
    };
    assert_eq!(
        out.mask_if_needed().is_none(),
        info(&g, case)[flag] == true,
        "{case}: encode_prompt's None mask"
    );
    let real: Vec<usize> = info(&g, case)["token_lengths"]
        .as_array()
        .expect("lengths")
        .iter()
        .map(|n| n.as_u64().expect("length") as usize - EDIT_TEMPLATE_PREFIX_TOKENS)
        .collect();
    assert_eq!(
        out.lengths, real,
        "{case}: 64 tokens dropped from each prompt"
    );
}

#[test]
fn an_edit_batch_of_two_prompts_and_two_images_matches_the_pipeline() {
    check_pipeline("edit_batch", VisionPositions::Mrope, "");
}

#[test]
fn a_single_edit_prompt_matches_the_pipeline() {
    check_pipeline("edit_single", VisionPositions::Mrope, "");
}

#[test]
fn an_edit_plus_prompt_with_two_pictures_matches_the_pipeline() {
    check_pipeline("edit_plus", VisionPositions::Mrope, "");
}

#[test]
fn sequential_positions_match_the_pinned_diffusers_and_transformers_5_as_they_are() {
    for case in CASES {
        check_pipeline(case, VisionPositions::Sequential, "as_is.");
    }
}

#[test]
fn a_left_padded_batch_gives_the_same_real_rows_as_transformers() {
    let g = goldens();
    let enc = encoder_for(&g, "edit_batch");
    let prefix = "left_padded.";
    let batch = batch(&g, prefix);
    let out = enc
        .encoder()
        .forward_multimodal(MultimodalInputs {
            input_ids: int_tensor(&g, "left_padded.input_ids"),
            attention_mask: int_tensor(&g, "left_padded.attention_mask"),
            image_embeds: Some(f32_tensor(&g, "left_padded.image_embeds")),
            position_ids: Some(Tensor::from_data(
                TensorData::new(positions(&g, prefix), [3, batch.batch_size, batch.seq_len]),
                &Default::default(),
            )),
        })
        .expect("forward");
    // Padding rows are zero in the golden (meaningless upstream); zero ours the same way.
    let d = out.dims()[2];
    let ours: Vec<f32> = values(out)
        .chunks_exact(d)
        .zip(&batch.mask)
        .flat_map(|(row, &m)| row.iter().map(move |&v| if m == 1 { v } else { 0.0 }))
        .collect();
    let (want, _) = g.f32("left_padded.last_hidden_state");
    assert_close("left-padded real rows", ours, &want);
}

#[test]
fn wrong_image_counts_and_shapes_are_errors_not_panics() {
    let g = goldens();
    let edit = encoder_for(&g, "edit_single");
    let prompts = prompts(&g, "edit_single");
    let images = image_embeds(&g, "edit_single.");
    let err = |r: Result<_, Error>| r.err().map(|e| e.to_string()).expect("must be refused");

    // Edit's template holds exactly one image per prompt.
    let none = err(edit.encode_with_image_embeds(&prompts, &[vec![]], VisionPositions::Mrope));
    assert!(none.contains("exactly one image"), "{none}");
    let two = vec![vec![images[0].clone(), images[0].clone()]];
    assert!(
        err(edit.encode_with_image_embeds(&prompts, &two, VisionPositions::Mrope))
            .contains("exactly one image")
    );
    assert!(err(edit.encode(&prompts, 512)).contains("exactly one image"));
    // One list per prompt.
    assert!(
        err(edit.encode_with_image_embeds(&prompts, &[], VisionPositions::Mrope))
            .contains("image lists")
    );
    // Embedding rows must match the grid.
    let mut bad = images[0].clone();
    bad.grid_thw = [1, 4, 4];
    assert!(
        err(edit.encode_with_image_embeds(&prompts, &[vec![bad]], VisionPositions::Mrope))
            .contains("embedding rows")
    );
    // A prompt may not write the placeholder itself.
    let sneaky = vec!["<|image_pad|> a cat".to_string()];
    assert!(
        err(edit.encode_with_image_embeds(
            &sneaky,
            &[vec![images[0].clone()]],
            VisionPositions::Mrope
        ))
        .contains("<|image_pad|>")
    );
    // A text-to-image pipeline takes no images.
    let t2i =
        PromptEncoder::<B>::from_pipeline_dir(testdata("tiny-qwen-image"), &Default::default())
            .expect("loads");
    assert!(
        err(t2i.encode_with_image_embeds(
            &prompts,
            &[vec![images[0].clone()]],
            VisionPositions::Mrope
        ))
        .contains("text-to-image")
    );
    // The vision tower's rows must split by the grids.
    let all = f32_tensor::<2>(&g, "edit_batch.image_embeds");
    assert!(ImageEmbeds::split(all, &[[1, 6, 10]], 2).is_err());
}

#[test]
fn edit_plus_without_images_encodes_the_bare_edit_template_as_the_pipeline() {
    let g = goldens();
    let enc = PromptEncoder::<B>::from_pipeline_dir(
        testdata("tiny-qwen-image-edit-plus"),
        &Default::default(),
    )
    .expect("loads");
    let prompts = prompts(&g, "edit_plus_text");
    let none = vec![Vec::new(); prompts.len()];
    assert_eq!(
        enc.tokenize_with_images(&prompts, &none)
            .expect("tokenizes"),
        batch(&g, "edit_plus_text."),
        "ids / mask"
    );
    // `encode` without images; `max_sequence_length` is ignored, as diffusers ignores it.
    let out = enc.encode(&prompts, 16).expect("encodes");
    for stage in ["", "encoded."] {
        let name = format!("edit_plus_text.{stage}prompt_embeds");
        let (want, shape) = g.f32(&name);
        assert_eq!(out.embeds.dims().to_vec(), shape, "{name}");
        assert_close(&name, values(out.embeds.clone()), &want);
        assert_eq!(ints(out.mask.clone()), g.i64(&format!("{name}_mask")).0);
    }
}
