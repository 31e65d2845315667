//! In bf16 (weights and activations, as the CUDA build runs), the decoder keeps the reference's
//! f32 RMS-norm statistics and stays close to the official f32 decode.

use std::path::{Path, PathBuf};

use burn::backend::Flex;
use burn::module::Module;
use burn::tensor::{DType, FloatDType, Tensor};
use qwen_image_vae::QwenImageVae;
use weights::{CastFloats, Weights};

// burn Flex runs bf16 tensors inside its f32 backend type: parameters and input are cast to bf16.
type B = Flex;

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata")
}

#[test]
fn bf16_decode_stays_close_to_the_f32_reference() {
    let dev = Default::default();
    let vae = QwenImageVae::<B>::load(testdata().join("tiny-qwen-image/vae"), &dev)
        .unwrap()
        .map(&mut CastFloats(FloatDType::BF16));
    let g = Weights::open(testdata().join("vae/decode_6x10.safetensors")).unwrap();
    let latents: Tensor<B, 5> = g
        .get_any::<B, 5>("latents", &dev)
        .unwrap()
        .cast(FloatDType::BF16);
    let out = vae.decode(latents).unwrap();
    assert_eq!(out.dtype(), DType::BF16);
    let ours = out.into_data().convert::<f32>().to_vec::<f32>().unwrap();
    let (want, _) = g.get_f32("sample").unwrap();
    let scale = want.iter().fold(0f32, |m, v| m.max(v.abs()));
    let err = ours
        .iter()
        .zip(&want)
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()))
        / scale;
    eprintln!("bf16 max rel err {err:.3e}");
    assert!(
        err < 5e-2,
        "bf16 decode drifts from the f32 reference: {err:e}"
    );
}
