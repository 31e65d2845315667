//! Given latents and the official AutoencoderKLQwenImage / QwenImagePipeline outputs for them
//! (testdata/vae, made by xtask/reference/gen_vae.py with diffusers 0.42.1 on the tiny pipeline's
//! VAE in f32), our decoder, latent helpers and post-processing match: tensors within 1e-4 max
//! relative error, pixels exactly.

use std::path::{Path, PathBuf};

use burn::backend::Flex;
use burn::tensor::{Tensor, TensorData};
use parity_support::{max_rel_err, testdata};
use qwen_image_vae::{
    Error, QwenImageVae, VaeConfig, denormalize, pack_latents, to_rgb_images, unpack_latents,
};
use weights::Weights;

type B = Flex;

const TOLERANCE: f32 = 1e-4;

fn tiny_vae_dir() -> PathBuf {
    testdata("tiny-qwen-image/vae")
}

fn golden(name: &str) -> Weights {
    let path = testdata("vae").join(name);
    Weights::open(&path).unwrap_or_else(|e| panic!("{e}"))
}

fn tensor<const D: usize>(g: &Weights, name: &str) -> Tensor<B, D> {
    g.get_any(name, &Default::default())
        .unwrap_or_else(|e| panic!("{e}"))
}

fn ints(g: &Weights, name: &str) -> Vec<i64> {
    g.get_i64(name).unwrap_or_else(|e| panic!("{e}")).0
}

fn load_tiny() -> QwenImageVae<B> {
    QwenImageVae::load(tiny_vae_dir(), &Default::default()).unwrap_or_else(|e| panic!("{e}"))
}

/// Decode a golden's `latents`, comparing every hooked stage and the final sample.
fn assert_decode_matches(file: &str) {
    let g = golden(file);
    let vae = load_tiny();
    let mut stages = Vec::new();
    let sample = vae
        .decode_inspect(tensor(&g, "latents"), |name, x| {
            let err = max_rel_err(x, &tensor::<5>(&g, name));
            eprintln!("{file}: after {name}: max relative error {err:.2e}");
            stages.push((name.to_string(), err));
        })
        .unwrap();
    let expected_stages = [
        "post_quant_conv",
        "conv_in",
        "mid_block",
        "up_blocks.0",
        "up_blocks.1",
        "up_blocks.2",
        "up_blocks.3",
    ];
    let names: Vec<&str> = stages.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, expected_stages);
    // The first stage over tolerance is where the port diverges.
    for (name, err) in &stages {
        assert!(
            *err <= TOLERANCE,
            "{file}: after {name}: max relative error {err}"
        );
    }
    let err = max_rel_err(&sample, &tensor(&g, "sample"));
    assert!(err <= TOLERANCE, "{file}: sample: max relative error {err}");
}

#[test]
fn decode_of_non_square_latents_matches_diffusers_stage_by_stage() {
    assert_decode_matches("decode_6x10.safetensors");
}

#[test]
fn decode_of_a_square_batch_of_two_matches_diffusers_stage_by_stage() {
    assert_decode_matches("decode_8x8_b2.safetensors");
}

#[test]
fn pipeline_decode_block_matches_unpack_denormalize_decode_and_postprocess() {
    let g = golden("pipeline_decode.safetensors");
    let vae = load_tiny();
    let (height, width) = (
        ints(&g, "height")[0] as usize,
        ints(&g, "width")[0] as usize,
    );
    assert_eq!(
        (height, width),
        (52, 85),
        "a size that is not a multiple of 16"
    );

    let unpacked = unpack_latents(
        tensor(&g, "packed"),
        height,
        width,
        vae.config().scale_factor(),
    )
    .unwrap();
    // Pure data movement: exactly diffusers' _unpack_latents.
    assert_eq!(unpacked.dims(), [1, 16, 1, 6, 10]);
    assert_eq!(max_rel_err(&unpacked, &tensor(&g, "unpacked")), 0.0);
    assert_eq!(
        max_rel_err(
            &pack_latents(unpacked.clone()).unwrap(),
            &tensor(&g, "packed_again")
        ),
        0.0
    );

    let denormalized = denormalize(unpacked, vae.config()).unwrap();
    // Same f32 operations in the same order as the pipeline: bit-identical.
    assert_eq!(max_rel_err(&denormalized, &tensor(&g, "denormalized")), 0.0);

    let sample = vae.decode(denormalized).unwrap();
    let image: Tensor<B, 4> = tensor(&g, "image");
    let err = max_rel_err(&sample.clone().squeeze_dim::<4>(2), &image);
    assert!(err <= TOLERANCE, "decoded image: max relative error {err}");

    // Post-processing of the official decoded image is exact; of ours, within one LSB.
    let expected = ints(&g, "pixels");
    let official = to_rgb_images(image.unsqueeze_dim(2)).unwrap();
    assert_eq!(official.len(), 1);
    assert_eq!((official[0].width(), official[0].height()), (80, 48));
    let official: Vec<i64> = official[0].as_raw().iter().map(|&p| p as i64).collect();
    assert_eq!(official, expected);
    let ours = &to_rgb_images(sample).unwrap()[0];
    let worst = ours
        .as_raw()
        .iter()
        .zip(&expected)
        .map(|(&a, &b)| (a as i64 - b).abs())
        .max()
        .unwrap();
    assert!(worst <= 1, "our pixels differ by {worst} LSB");
}

#[test]
fn postprocess_equals_vae_image_processor_with_clamps_and_ties() {
    let g = golden("postprocess.safetensors");
    let image: Tensor<B, 4> = tensor(&g, "image");
    let [b, _, h, w] = image.dims();
    let images = to_rgb_images(image.unsqueeze_dim(2)).unwrap();
    assert_eq!(images.len(), b);
    let ours: Vec<i64> = images
        .iter()
        .flat_map(|im| {
            assert_eq!((im.width() as usize, im.height() as usize), (w, h));
            im.as_raw().iter().map(|&p| p as i64)
        })
        .collect();
    assert_eq!(ours, ints(&g, "pixels"));
}

#[test]
fn unpack_then_pack_round_trips_and_rejects_bad_shapes() {
    let dev = Default::default();
    let values: Vec<f32> = (0..2 * 12 * 64).map(|i| i as f32).collect();
    let packed = Tensor::<B, 3>::from_data(TensorData::new(values, [2, 12, 64]), &dev);
    // 64×96 pixels → an 8×12 latent grid → 4×6 = 24 tokens; 48×64 pixels → 6×8 → 12 tokens.
    let latents = unpack_latents(packed.clone(), 48, 64, 8).unwrap();
    assert_eq!(latents.dims(), [2, 16, 1, 6, 8]);
    let again = pack_latents(latents).unwrap();
    assert_eq!(again.into_data(), packed.clone().into_data());

    assert!(matches!(
        unpack_latents(packed, 64, 96, 8),
        Err(Error::Shape { .. })
    ));
    let odd = Tensor::<B, 5>::zeros([1, 16, 1, 5, 8], &dev);
    assert!(matches!(pack_latents(odd), Err(Error::Shape { .. })));
}

#[test]
fn config_is_read_from_the_released_layout() {
    let vae = load_tiny();
    let c = vae.config();
    assert_eq!((c.base_dim, c.z_dim, c.input_channels), (8, 16, 3));
    assert_eq!(c.scale_factor(), 8);
    assert_eq!(c.latents_mean.len(), 16);
    assert_eq!(c.latents_std[0], 2.4408);
    // Missing keys take the class defaults, which are the released Qwen/Qwen-Image values.
    let released = VaeConfig::default();
    assert_eq!((released.base_dim, released.latents_std[15]), (96, 1.9160));
}

#[test]
fn decode_rejects_latents_of_the_wrong_shape() {
    let vae = load_tiny();
    let two_frames = Tensor::<B, 5>::zeros([1, 16, 2, 4, 4], &Default::default());
    let err = vae.decode(two_frames).unwrap_err().to_string();
    assert!(
        err.contains("[1, 16, 2, 4, 4]") && err.contains("one frame"),
        "{err}"
    );
}

// ---- bad weights: every error names the tensor and the file ----------------------------------

/// A copy of the tiny VAE folder where `edit` rewrites the tensor list before saving.
fn tampered_vae(edit: impl FnOnce(&mut Vec<(String, Vec<usize>, Vec<u8>)>)) -> tempfile::TempDir {
    let src = tiny_vae_dir();
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(src.join("config.json"), dir.path().join("config.json")).unwrap();
    let bytes = std::fs::read(src.join("diffusion_pytorch_model.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut tensors: Vec<(String, Vec<usize>, Vec<u8>)> = st
        .tensors()
        .into_iter()
        .map(|(name, view)| (name, view.shape().to_vec(), view.data().to_vec()))
        .collect();
    edit(&mut tensors);
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = tensors
        .iter()
        .map(|(name, shape, data)| {
            let view =
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), data)
                    .unwrap();
            (name.clone(), view)
        })
        .collect();
    safetensors::serialize_to_file(
        views,
        None,
        &dir.path().join("diffusion_pytorch_model.safetensors"),
    )
    .unwrap();
    dir
}

fn load_error(dir: &Path) -> String {
    match QwenImageVae::<B>::load(dir, &Default::default()) {
        Ok(_) => panic!("tampered weights in {} loaded", dir.display()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn a_missing_tensor_is_named_with_the_file() {
    let dir = tampered_vae(|t| {
        t.retain(|(name, _, _)| name != "decoder.mid_block.attentions.0.proj.bias")
    });
    let err = load_error(dir.path());
    assert!(
        err.contains("decoder.mid_block.attentions.0.proj.bias")
            && err.contains("diffusion_pytorch_model.safetensors"),
        "{err}"
    );
}

#[test]
fn a_wrong_shape_is_named_with_the_file_and_both_shapes() {
    let dir = tampered_vae(|t| {
        let conv_in = t
            .iter_mut()
            .find(|(n, _, _)| n == "decoder.conv_in.weight")
            .unwrap();
        // Same bytes, reinterpreted as a 2-D kernel: [32, 16, 3, 3, 3] → [32, 48, 3, 3].
        conv_in.1 = vec![32, 48, 3, 3];
    });
    let err = load_error(dir.path());
    assert!(
        err.contains("decoder.conv_in.weight")
            && err.contains("[32, 48, 3, 3]")
            && err.contains("[32, 16, 3, 3, 3]")
            && err.contains("diffusion_pytorch_model.safetensors"),
        "{err}"
    );
}

#[test]
fn an_unexpected_decoder_tensor_is_rejected_but_encoder_and_time_conv_are_ignored() {
    // The untouched checkpoint holds encoder.*, quant_conv.* and up_blocks.{0,1} time_conv: fine.
    load_tiny();
    let dir = tampered_vae(|t| {
        t.push((
            "decoder.up_blocks.3.upsamplers.0.resample.1.bias".into(),
            vec![4],
            vec![0; 16],
        ))
    });
    let err = load_error(dir.path());
    assert!(
        err.contains("decoder.up_blocks.3.upsamplers.0.resample.1.bias")
            && err.contains("diffusion_pytorch_model.safetensors"),
        "{err}"
    );
}
