//! End to end on the tiny official Edit, Edit-Plus (2509) and Edit-2511 folders: from the oracle's
//! initial latents (or only its seed) and its input files (a JPEG; an RGBA and a grayscale PNG of
//! other sizes and aspect ratios), our image equals diffusers' `QwenImageEditPipeline` /
//! `QwenImageEditPlusPipeline` image with PSNR ≥ 40 dB and SSIM ≥ 0.99 for every case of
//! `testdata/cases/tiny_edit.toml`, and the latents after the first step equal the oracle's within
//! 1e-4; the images' VAE latents are checked on their own so that a failure is located. Goldens:
//! xtask/reference/gen_e2e_edit.py.

use burn::tensor::{Tensor, TensorData};
use cases::Case;
use pipeline::{
    InputImage, Pipeline, PipelineKind, QwenImageEditPipeline, QwenImagePipeline, Request,
};
use qwen_image_vae::QwenImageAutoencoder;

use crate::common::{B, assert_matches_official, load, max_rel_err, testdata};

/// The tiny Edit cases, read by the consistency runner's own parser.
fn cases() -> Vec<Case> {
    cases::load(&testdata().join("cases/tiny_edit.toml")).unwrap()
}

/// The case's request with its input images read from disk (the tiny cases use no URL).
fn request(c: &Case) -> Request {
    c.request_with_images(&mut |url| Err(format!("no network in this test: {url}")))
        .unwrap()
}

fn info() -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(testdata().join("e2e-edit/cases.json")).unwrap())
        .unwrap()
}

/// One case of `tiny_edit.toml` against diffusers' image and first-step latents. One test per
/// case (below) so that the four 1024²-area edits run on all test threads.
fn case_matches_the_official_diffusers_image(id: &str) -> PipelineKind {
    let dev = Default::default();
    let c = cases().into_iter().find(|c| c.id == id).unwrap();
    let info = info();
    let pipe = Pipeline::<B>::load(&c.model, &dev).unwrap();
    let want_class = info["cases"][&c.id]["pipeline"].as_str().unwrap();
    assert_eq!(pipe.kind().class_name(), want_class, "{}", c.id);
    let out = pipe.generate(&request(&c), &mut |_| {}).unwrap();
    let size = &info["cases"][&c.id]["output_size"];
    assert_eq!(
        [out.height as u64, out.width as u64],
        [size[0].as_u64().unwrap(), size[1].as_u64().unwrap()],
        "{}: output size",
        c.id
    );

    let kind = pipe.kind();
    assert_matches_official(&c.id, out, "e2e-edit");
    kind
}

/// The four tests below are every case of the file: Edit, Edit-Plus and Edit-2511 (Edit-Plus
/// with a zero_cond_t transformer).
#[test]
fn the_case_file_is_the_four_tested_cases() {
    let mut ids: Vec<String> = cases().into_iter().map(|c| c.id).collect();
    ids.sort();
    assert_eq!(
        ids,
        [
            "tiny_edit_2511",
            "tiny_edit_cfg",
            "tiny_edit_nocfg",
            "tiny_edit_plus"
        ]
    );
    let c = cases();
    let plus = c.iter().find(|c| c.id == "tiny_edit_2511").unwrap();
    assert!(plus.model.ends_with("tiny-qwen-image-edit-2511"));
}

#[test]
fn tiny_edit_cfg_matches_the_official_diffusers_image() {
    assert_eq!(
        case_matches_the_official_diffusers_image("tiny_edit_cfg"),
        PipelineKind::Edit
    );
}

#[test]
fn tiny_edit_nocfg_matches_the_official_diffusers_image() {
    assert_eq!(
        case_matches_the_official_diffusers_image("tiny_edit_nocfg"),
        PipelineKind::Edit
    );
}

#[test]
fn tiny_edit_plus_matches_the_official_diffusers_image() {
    assert_eq!(
        case_matches_the_official_diffusers_image("tiny_edit_plus"),
        PipelineKind::EditPlus
    );
}

#[test]
fn tiny_edit_2511_matches_the_official_diffusers_image() {
    assert_eq!(
        case_matches_the_official_diffusers_image("tiny_edit_2511"),
        PipelineKind::EditPlus
    );
}

/// The input images' normalised, packed VAE latents (what the pipeline appends after the noise)
/// against the first tokens of diffusers' `image_latents`, once per image file and pipeline class
/// (each is a 1024²-area VAE encode): locates a failure of the end-to-end test in the image
/// preparation or the VAE encoder.
#[test]
fn image_latents_match_diffusers() {
    let dev = Default::default();
    let vae =
        QwenImageAutoencoder::<B>::load(testdata().join("tiny-qwen-image/vae"), &dev).unwrap();
    let info = info();
    let mut seen = std::collections::HashSet::new();
    for c in cases() {
        let case = &info["cases"][&c.id];
        let edit = case["pipeline"] == "QwenImageEditPipeline";
        let golden =
            weights::Weights::open(testdata().join(format!("e2e-edit/{}.safetensors", c.id)))
                .unwrap();
        for (k, file) in case["images"].as_array().unwrap().iter().enumerate() {
            if !seen.insert((edit, file.as_str().unwrap().to_string())) {
                continue;
            }
            let img =
                InputImage::load(testdata().join("e2e-edit").join(file.as_str().unwrap())).unwrap();
            let p = if edit {
                image_io::qwen_edit_image(img.image())
            } else {
                image_io::qwen_edit_plus_image(img.image())
            }
            .unwrap();
            let [b, ch, h, w] = p.vae.shape;
            let x = Tensor::<B, 5>::from_data(TensorData::new(p.vae.data, [b, ch, 1, h, w]), &dev);
            let z = qwen_image_vae::normalize(vae.encode(x).unwrap(), vae.config()).unwrap();
            let tokens = qwen_image_vae::pack_latents(z).unwrap();
            let shape = &case["img_shapes"][k + 1];
            assert_eq!(
                tokens.dims()[1] as u64,
                shape[1].as_u64().unwrap() * shape[2].as_u64().unwrap(),
                "{} image {k}: tokens",
                c.id
            );
            let (want, wshape) = golden.get_f32(&format!("image_latents_head.{k}")).unwrap();
            let got = tokens
                .narrow(1, 0, wshape[0])
                .into_data()
                .to_vec::<f32>()
                .unwrap();
            let err = max_rel_err(&got, &want);
            assert!(
                err <= 1e-4,
                "{} image {k}: image latents max rel err {err:e}",
                c.id
            );
        }
    }
}

/// Without height/width the output follows the (last) input image at 1024² area, as diffusers
/// picked it for the same files.
#[test]
fn default_output_size_follows_the_last_image() {
    let dev = Default::default();
    let info = info();
    for folder in ["tiny-qwen-image-edit", "tiny-qwen-image-edit-plus"] {
        let d = &info["default_size"][folder];
        let pipe = load::<QwenImageEditPipeline<B>>(testdata().join(folder), &dev).unwrap();
        let images: Vec<InputImage> = d["images"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| {
                InputImage::load(testdata().join("e2e-edit").join(f.as_str().unwrap())).unwrap()
            })
            .collect();
        let (h, w, warning) = pipe.output_size(&images, None, None).unwrap();
        assert_eq!(
            [h as u64, w as u64],
            [
                d["size"][0].as_u64().unwrap(),
                d["size"][1].as_u64().unwrap()
            ],
            "{folder}"
        );
        assert!(warning.is_none());
        // A given side wins, floored to 16 with a warning; the other still follows the image.
        let (h2, w2, warning) = pipe.output_size(&images, Some(70), None).unwrap();
        assert_eq!((h2, w2), (64, w));
        assert!(warning.unwrap().contains("floored"));
    }
}

#[test]
fn kinds_and_image_counts_are_checked() {
    let dev = Default::default();
    let img = InputImage::load(testdata().join("e2e-edit/edit_input.jpg")).unwrap();
    for (folder, kind) in [
        ("tiny-qwen-image", PipelineKind::TextToImage),
        ("tiny-qwen-image-edit", PipelineKind::Edit),
        ("tiny-qwen-image-edit-plus", PipelineKind::EditPlus),
        ("tiny-qwen-image-edit-2511", PipelineKind::EditPlus),
    ] {
        let dir = weights::PipelineDir::open(testdata().join(folder)).unwrap();
        assert_eq!(PipelineKind::of(&dir).unwrap(), kind, "{folder}");
    }

    // An Edit folder is not a text-to-image pipeline, and vice versa.
    let msg = load::<QwenImagePipeline<B>>(testdata().join("tiny-qwen-image-edit"), &dev)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("QwenImageEditPipeline") && msg.contains("model_index.json"),
        "{msg}"
    );
    let msg = load::<QwenImageEditPipeline<B>>(testdata().join("tiny-qwen-image"), &dev)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("QwenImagePipeline"), "{msg}");

    // Text to image refuses images; Edit takes exactly one; Edit-Plus at least one.
    let t2i = Pipeline::<B>::load(testdata().join("tiny-qwen-image"), &dev).unwrap();
    let req = Request::new("a", 32, 32).steps(1).images(vec![img.clone()]);
    let msg = t2i.generate(&req, &mut |_| {}).unwrap_err().to_string();
    assert!(msg.contains("text-to-image"), "{msg}");
    let edit = Pipeline::<B>::load(testdata().join("tiny-qwen-image-edit"), &dev).unwrap();
    let two = Request::edit("a", vec![img.clone(), img.clone()]).steps(1);
    let msg = edit.generate(&two, &mut |_| {}).unwrap_err().to_string();
    assert!(
        msg.contains("exactly one") && msg.contains("got 2"),
        "{msg}"
    );
    let none = Request::edit("a", vec![]).steps(1);
    let msg = edit.generate(&none, &mut |_| {}).unwrap_err().to_string();
    assert!(
        msg.contains("exactly one") && msg.contains("got 0"),
        "{msg}"
    );
    let plus = Pipeline::<B>::load(testdata().join("tiny-qwen-image-edit-plus"), &dev).unwrap();
    let msg = plus.generate(&none, &mut |_| {}).unwrap_err().to_string();
    assert!(msg.contains("at least one"), "{msg}");

    // An unknown class names the file and the classes this crate runs.
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("model_index.json"),
        r#"{"_class_name": "QwenImageInpaintPipeline"}"#,
    )
    .unwrap();
    let dir = weights::PipelineDir::open(tmp.path()).unwrap();
    let msg = PipelineKind::of(&dir).unwrap_err().to_string();
    assert!(
        msg.contains("QwenImageInpaintPipeline")
            && msg.contains("model_index.json")
            && msg.contains("QwenImageEditPlusPipeline"),
        "{msg}"
    );
}

/// `VisionPositions::Sequential` reproduces diffusers 0.42.1 + transformers 5 exactly as pinned
/// (no `mm_token_type_ids`, so sequential text-encoder positions: diffusers#14194), which gives
/// another image than the model's 3-D M-RoPE.
#[test]
fn sequential_positions_reproduce_the_pinned_pipeline() {
    let dev = Default::default();
    let c = cases()
        .into_iter()
        .find(|c| c.id == "tiny_edit_nocfg")
        .unwrap();
    let pipe = Pipeline::<B>::load(&c.model, &dev).unwrap();
    let req = request(&c).vision_positions(text_encoder::VisionPositions::Sequential);
    let out = pipe.generate(&req, &mut |_| {}).unwrap();
    let as_is = metrics::load_rgb(&testdata().join("e2e-edit/tiny_edit_nocfg.as_is.png")).unwrap();
    let psnr = metrics::psnr(&out.image, &as_is).unwrap();
    eprintln!("tiny_edit_nocfg, sequential positions: psnr {psnr:.2} dB");
    assert!(psnr >= 40.0, "PSNR {psnr} < 40 dB");
    let mrope =
        metrics::load_rgb(&testdata().join("gt/official_generated/tiny_edit_nocfg_1gpu.png"))
            .unwrap();
    assert_ne!(out.image, mrope, "the position choice must matter");
}

/// A JPEG with EXIF orientation 6 is transposed as `load_image` (PIL's `exif_transpose`) does.
#[test]
fn exif_orientation_is_applied_as_load_image_does() {
    let img = InputImage::load(testdata().join("e2e-edit/exif_rotated.jpg")).unwrap();
    let want = image_io::load(testdata().join("e2e-edit/exif_rotated.loaded.png")).unwrap();
    assert_eq!(img.size(), (13, 21));
    assert_eq!(img.image(), &want);
}
