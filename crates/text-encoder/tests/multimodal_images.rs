//! From image files to the Edit pipelines' prompt embeddings: our `load_image` (as diffusers'),
//! the image processor and the vision tower of this crate, then the multimodal prompt path —
//! against `encode_prompt` of diffusers' QwenImageEditPipeline / QwenImageEditPlusPipeline on the
//! same files (testdata/text-encoder-mm, made by xtask/reference/gen_text_encoder_mm.py), within
//! 1e-4 max relative error, with the image embeddings checked on the way.

use crate::common;

use std::path::PathBuf;

use common::{B, Goldens, ints, max_rel_err, testdata, values};
use image::RgbImage;
use text_encoder::{PromptEncoder, VisionPositions, load_image};

const TOLERANCE: f32 = 1e-4;

fn goldens() -> Goldens {
    Goldens::testdata("text-encoder-mm/mm_embeds.safetensors")
}

struct Case {
    folder: PathBuf,
    prompts: Vec<String>,
    images: Vec<Vec<RgbImage>>,
}

/// A golden case's pipeline folder, prompts, and images grouped per prompt as the processor
/// consumed them (Edit: one per prompt in order; Edit-Plus: all of them for its one prompt).
fn case(g: &Goldens, name: &str) -> Case {
    let info = g.info()["cases"][name].clone();
    let prompts: Vec<String> = serde_json::from_value(info["prompts"].clone()).expect("prompts");
    let files: Vec<String> = serde_json::from_value(info["images"].clone()).expect("images");
    let images: Vec<RgbImage> = files
        .iter()
        .map(|f| load_image(testdata("text-encoder-mm").join(f)).expect("image loads"))
        .collect();
    let (folder, images) = match info["pipeline"].as_str() {
        Some("QwenImageEditPipeline") => (
            testdata("tiny-qwen-image-edit"),
            images.into_iter().map(|i| vec![i]).collect(),
        ),
        Some("QwenImageEditPlusPipeline") => (testdata("tiny-qwen-image-edit-plus"), vec![images]),
        other => panic!("{name}: pipeline {other:?}"),
    };
    Case {
        folder,
        prompts,
        images,
    }
}

fn check(name: &str) {
    let g = goldens();
    let c = case(&g, name);
    let enc = PromptEncoder::<B>::from_pipeline_dir(&c.folder, &Default::default())
        .expect("the tiny Edit folder loads with its processor and vision tower");
    let flat: Vec<RgbImage> = c.images.iter().flatten().cloned().collect();
    let embeds = enc.image_embeds(&flat).expect("vision tower");
    let grids: Vec<i64> = embeds
        .iter()
        .flat_map(|e| e.grid_thw.map(|v| v as i64))
        .collect();
    assert_eq!(
        grids,
        g.i64(&format!("{name}.image_grid_thw")).0,
        "{name}: grids"
    );
    let ours: Vec<f32> = embeds.into_iter().flat_map(|e| values(e.embeds)).collect();
    let (want, _) = g.f32(&format!("{name}.image_embeds"));
    let err = max_rel_err(&ours, &want);
    eprintln!("{name} image embeddings: max relative error {err:.2e}");
    assert!(err <= TOLERANCE, "{name}: image embeddings {err}");

    let out = enc
        .encode_with_images(&c.prompts, &c.images, VisionPositions::Mrope)
        .expect("encodes");
    let (want, shape) = g.f32(&format!("{name}.encoded.prompt_embeds"));
    assert_eq!(out.embeds.dims().to_vec(), shape);
    let err = max_rel_err(&values(out.embeds), &want);
    eprintln!("{name} prompt embeddings: max relative error {err:.2e}");
    assert!(err <= TOLERANCE, "{name}: prompt embeddings {err}");
    assert_eq!(
        ints(out.mask),
        g.i64(&format!("{name}.encoded.prompt_embeds_mask")).0
    );
}

#[test]
fn an_edit_batch_from_an_rgb_and_an_rgba_file_matches_the_pipeline() {
    check("edit_batch");
}

#[test]
fn an_edit_plus_prompt_from_a_grayscale_and_an_rgb_file_matches_the_pipeline() {
    check("edit_plus");
}

#[test]
fn rgba_loses_its_alpha_and_grayscale_is_replicated_as_pil_converts_them() {
    let dir = testdata("text-encoder-mm");
    let rgba = image::open(dir.join("image_b.png"))
        .expect("png")
        .to_rgba8();
    let ours = load_image(dir.join("image_b.png")).expect("loads");
    assert!(
        rgba.pixels().any(|p| p.0[3] < 255),
        "the RGBA file has transparency"
    );
    assert!(
        ours.pixels()
            .zip(rgba.pixels())
            .all(|(o, p)| o.0 == [p.0[0], p.0[1], p.0[2]])
    );
    let grey = image::open(dir.join("image_c.png"))
        .expect("png")
        .to_luma8();
    let ours = load_image(dir.join("image_c.png")).expect("loads");
    assert!(
        ours.pixels()
            .zip(grey.pixels())
            .all(|(o, p)| o.0 == [p.0[0]; 3])
    );
    assert!(load_image(dir.join("missing.png")).is_err());
    assert!(load_image(dir.join("cases.json")).is_err(), "not an image");
}
