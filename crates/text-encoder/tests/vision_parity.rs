//! Given the official tensors in testdata/vision (transformers 5.24's `Qwen2VLImageProcessor`
//! with its torchvision backend, and `Qwen2_5_VisionTransformerPretrainedModel` on a tiny
//! checkpoint with split windows; see xtask/reference/gen_vision.py), our image processor is
//! exact and our vision tower matches within 1e-4 max relative error at every stage.

use crate::common;

use burn::tensor::{Tensor, TensorData};
use common::{B, Goldens, max_rel_err, testdata, values};
use image::RgbImage;
use text_encoder::image_processor::open_rgb;
use text_encoder::{Error, ImageProcessor, QwenTextEncoder, VisionTower, smart_resize};

const TOLERANCE: f32 = 1e-4;
const IMAGES: [&str; 2] = ["rgba_61x79.png", "gray_100x160.png"];

fn tower_dir() -> std::path::PathBuf {
    testdata("vision/text_encoder")
}

fn processor() -> ImageProcessor {
    ImageProcessor::from_preprocessor_config(testdata("vision/processor/preprocessor_config.json"))
        .expect("tiny processor config")
}

fn images() -> Vec<RgbImage> {
    IMAGES
        .iter()
        .map(|f| open_rgb(testdata("vision/inputs").join(f)).expect("test image decodes"))
        .collect()
}

/// A `[3, h, w]` u8 golden (channel-first, as torch holds it) as an RGB image.
fn u8_image(g: &Goldens, name: &str) -> RgbImage {
    let (hwc, (w, h)) = g.u8_image_hwc(name);
    RgbImage::from_raw(w, h, hwc).unwrap_or_else(|| panic!("{name}: not 3 channels"))
}

fn max_abs_diff_u8(a: &RgbImage, b: &RgbImage) -> u8 {
    assert_eq!(a.dimensions(), b.dimensions());
    parity_support::max_abs_diff_u8(a.as_raw(), b.as_raw())
}

fn grid(g: &Goldens) -> Vec<[usize; 3]> {
    let (v, shape) = g.i64("image_grid_thw");
    assert_eq!(shape[1], 3);
    v.chunks(3)
        .map(|r| [r[0] as usize, r[1] as usize, r[2] as usize])
        .collect()
}

fn pixel_values(g: &Goldens) -> Tensor<B, 2> {
    let (v, shape) = g.f32("pixel_values");
    Tensor::from_data(
        TensorData::new(v, [shape[0], shape[1]]),
        &Default::default(),
    )
}

#[test]
fn smart_resize_matches_transformers_on_every_case() {
    let info = Goldens::testdata("vision/processor.safetensors").info();
    let cases = info["smart_resize_cases"].as_array().expect("cases");
    assert!(cases.len() >= 10);
    for c in cases {
        let n = |i: usize| c[i].as_u64().expect("int") as usize;
        let ours = smart_resize(n(0), n(1), 28, n(2), n(3));
        match c[4].as_array() {
            Some(hw) => {
                let want = (
                    hw[0].as_u64().unwrap() as usize,
                    hw[1].as_u64().unwrap() as usize,
                );
                assert_eq!(ours.expect("resizable"), want, "case {c}");
            }
            None => assert!(matches!(ours, Err(Error::Image(_))), "case {c}: {ours:?}"),
        }
    }
}

#[test]
fn each_image_is_converted_and_resized_exactly_as_torchvision() {
    let st = Goldens::testdata("vision/resize.safetensors");
    let p = processor();
    for (i, img) in images().iter().enumerate() {
        let want = u8_image(&st, &format!("resized.{i}"));
        let ours = p.resize(img).expect("resizes");
        assert_eq!(
            max_abs_diff_u8(&ours, &want),
            0,
            "image {i} ({})",
            IMAGES[i]
        );
    }
}

#[test]
fn pixel_values_and_grid_equal_the_processors() {
    let g = Goldens::testdata("vision/processor.safetensors");
    let out = processor().preprocess(&images()).expect("preprocesses");
    assert_eq!(out.grid_thw, grid(&g));
    assert_eq!(out.grid_thw, vec![[1, 4, 6], [1, 6, 8]]);
    let (want, shape) = g.f32("pixel_values");
    assert_eq!(shape, vec![out.num_patches(), out.patch_dim]);
    assert_eq!(out.patch_dim, 1176);
    let diff = out
        .pixel_values
        .iter()
        .zip(&want)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    eprintln!("pixel_values max |diff| {diff:e}");
    assert_eq!(diff, 0.0, "pixel_values max |diff| {diff}");
    // What Qwen2VLProcessor expands `<|image_pad|>` to.
    assert_eq!(out.merged_tokens(2), vec![6, 12]);
}

#[test]
fn the_vision_tower_matches_transformers_at_every_stage() {
    let p = Goldens::testdata("vision/processor.safetensors");
    let g = Goldens::testdata("vision/tower.safetensors");
    let tower = VisionTower::<B>::load(tower_dir(), &Default::default()).expect("tiny tower loads");
    let out = tower
        .forward_intermediates(pixel_values(&p), &grid(&p))
        .expect("runs");

    let ints = |name: &str| -> Vec<usize> { g.i64(name).0.iter().map(|&v| v as usize).collect() };
    assert_eq!(out.window_index, ints("window_index"), "window_index");
    assert_eq!(
        out.cu_window_seqlens,
        ints("cu_window_seqlens"),
        "cu_window_seqlens"
    );
    assert_eq!(out.cu_seqlens, ints("cu_seqlens"), "cu_seqlens");
    // The windows really split (partial windows on both images).
    assert_eq!(out.cu_window_seqlens, vec![0, 16, 24, 40, 56, 64, 72]);

    let check = |what: &str, ours: Tensor<B, 2>, name: &str| {
        let (theirs, shape) = g.f32(name);
        assert_eq!(ours.dims().to_vec(), shape, "{what} shape");
        let err = max_rel_err(&values(ours), &theirs);
        eprintln!("{what}: max relative error {err:.2e}");
        assert!(
            err <= TOLERANCE,
            "{what} vs `{name}`: max relative error {err}"
        );
    };
    check("patch embedding", out.patch_embeds, "patch_embeds");
    check("rotary cos", out.cos, "rotary.cos");
    check("rotary sin", out.sin, "rotary.sin");
    assert_eq!(out.blocks.len(), 4);
    for (i, b) in out.blocks.into_iter().enumerate() {
        check(&format!("block {i}"), b, &format!("blocks.{i}"));
    }
    check("merger", out.merger, "merger");
    check("image_embeds", out.image_embeds, "image_embeds");
}

#[test]
fn one_image_at_a_time_gives_the_rows_of_the_batched_call() {
    let p = Goldens::testdata("vision/processor.safetensors");
    let g = Goldens::testdata("vision/tower.safetensors");
    let dev = Default::default();
    let tower = VisionTower::<B>::load(tower_dir(), &dev).expect("tiny tower loads");
    let out = processor()
        .preprocess(&images()[1..])
        .expect("preprocesses");
    let embeds = tower
        .forward(out.pixel_values_tensor::<B>(&dev), &out.grid_thw)
        .expect("runs");
    let (theirs, shape) = g.f32("image_embeds");
    // Image 1 is the last 12 of the 18 merged tokens.
    let tail = &theirs[6 * shape[1]..];
    let err = max_rel_err(&values(embeds), tail);
    assert!(err <= TOLERANCE, "second image alone: {err}");
    let _ = p;
}

#[test]
fn grids_that_do_not_fit_pixel_values_are_errors_not_panics() {
    let p = Goldens::testdata("vision/processor.safetensors");
    let tower = VisionTower::<B>::load(tower_dir(), &Default::default()).expect("tiny tower loads");
    for bad in [
        vec![[1, 4, 6]],             // too few patches
        vec![[1, 4, 6], [1, 6, 9]],  // odd width: cannot merge 2×2
        vec![[1, 4, 6], [1, 6, 10]], // too many patches
        vec![[0, 4, 6], [1, 6, 8]],  // empty axis
        vec![],
    ] {
        let err = tower.forward(pixel_values(&p), &bad).expect_err("refused");
        assert!(matches!(err, Error::VisionInput(_)), "{bad:?}: {err}");
    }
    let narrow = pixel_values(&p).narrow(1, 0, 588);
    assert!(matches!(
        tower.forward(narrow, &grid(&p)),
        Err(Error::VisionInput(_))
    ));
}

#[test]
fn the_tiny_pipelines_one_block_tower_and_the_language_model_load_from_the_same_folders() {
    let dev = Default::default();
    let t = VisionTower::<B>::load(testdata("tiny-qwen-image/text_encoder"), &dev)
        .expect("tiny pipeline's tower loads");
    assert_eq!(t.config().depth, 1);
    assert_eq!(t.config().out_hidden_size, 32);
    // The vision test checkpoint is a whole Qwen2_5_VLForConditionalGeneration: its language
    // model loads too, skipping the tower.
    let lm = QwenTextEncoder::<B>::load(tower_dir(), &dev).expect("language model loads");
    assert_eq!(lm.config().hidden_size, 40);
}

mod loading {
    use super::*;
    use common::{Entry, read_entries, write_entries};

    fn copy_with(edit: impl FnOnce(&mut Vec<Entry>)) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::copy(
            tower_dir().join("config.json"),
            dir.path().join("config.json"),
        )
        .expect("config");
        let mut e = read_entries(&tower_dir().join("model.safetensors"));
        edit(&mut e);
        write_entries(&dir.path().join("model.safetensors"), &e);
        dir
    }

    #[test]
    fn the_transformers_5_layout_loads_to_the_same_tower() {
        let dir = copy_with(|e| {
            for x in e.iter_mut() {
                if let Some(rest) = x.name.strip_prefix("visual.") {
                    x.name = format!("model.visual.{rest}");
                }
            }
        });
        let p = Goldens::testdata("vision/processor.safetensors");
        let g = Goldens::testdata("vision/tower.safetensors");
        let tower = VisionTower::<B>::load(dir.path(), &Default::default()).expect("loads");
        let out = tower.forward(pixel_values(&p), &grid(&p)).expect("runs");
        let err = max_rel_err(&values(out), &g.f32("image_embeds").0);
        assert!(err <= TOLERANCE, "{err}");
    }

    #[test]
    fn a_missing_or_extra_vision_tensor_is_named_in_the_error() {
        let dir = copy_with(|e| e.retain(|x| x.name != "visual.blocks.2.mlp.up_proj.bias"));
        let err = VisionTower::<B>::load(dir.path(), &Default::default()).expect_err("missing");
        assert!(
            err.to_string().contains("visual.blocks.2.mlp.up_proj.bias"),
            "{err}"
        );

        let dir = copy_with(|e| {
            let extra = Entry {
                name: "visual.blocks.4.norm1.weight".into(),
                ..e.iter()
                    .find(|x| x.name == "visual.blocks.0.norm1.weight")
                    .map(|x| Entry {
                        name: String::new(),
                        dtype: x.dtype,
                        shape: x.shape.clone(),
                        data: x.data.clone(),
                    })
                    .expect("norm1")
            };
            e.push(extra);
        });
        let err = VisionTower::<B>::load(dir.path(), &Default::default()).expect_err("extra");
        let msg = err.to_string();
        assert!(
            msg.contains("visual.blocks.4.norm1.weight") && msg.contains("model.safetensors"),
            "{msg}"
        );
    }

    #[test]
    fn a_wrong_shape_is_named_in_the_error() {
        let dir = copy_with(|e| {
            let x = e
                .iter_mut()
                .find(|x| x.name == "visual.merger.ln_q.weight")
                .expect("ln_q");
            x.shape = vec![x.shape[0] / 2, 2];
        });
        let err = VisionTower::<B>::load(dir.path(), &Default::default()).expect_err("shape");
        assert!(
            err.to_string().contains("visual.merger.ln_q.weight"),
            "{err}"
        );
    }
}
