//! In bf16 (weights and activations, as the CUDA build runs), the vision tower keeps the
//! reference's f32 islands — RMSNorm statistics and the rotary embedding (computed and applied
//! in f32, then cast back) — and stays close to the official f32 image embeddings.

use burn::backend::Flex;
use burn::module::Module;
use burn::tensor::{DType, FloatDType, Tensor, TensorData};
use text_encoder::VisionTower;

use crate::common::{peak_rel_err, testdata};
use weights::{CastFloats, Weights};

// burn Flex runs bf16 tensors inside its f32 backend type: every parameter is cast to bf16, as
// `Cuda<bf16>` holds them.
type B = Flex;

#[test]
fn bf16_image_embeds_stay_close_to_the_f32_reference() {
    let dev = Default::default();
    let tower = VisionTower::<B>::load(testdata("vision/text_encoder"), &dev)
        .unwrap()
        .map(&mut CastFloats(FloatDType::BF16));
    let inputs = Weights::open(testdata("vision/processor.safetensors")).unwrap();
    let (pixels, shape) = inputs.get_f32("pixel_values").unwrap();
    let (grid, _) = inputs.get_i64("image_grid_thw").unwrap();
    let grid: Vec<[usize; 3]> = grid
        .chunks(3)
        .map(|g| [g[0] as usize, g[1] as usize, g[2] as usize])
        .collect();
    // pixel_values arrive in f32; the patch embedding casts them to the weights' dtype, as
    // upstream's `pixel_values.type(self.visual.dtype)` does.
    let pixels = Tensor::<B, 2>::from_data(TensorData::new(pixels, [shape[0], shape[1]]), &dev);
    let out = tower.forward(pixels, &grid).unwrap();
    assert_eq!(out.dtype(), DType::BF16);
    let ours = out.into_data().convert::<f32>().to_vec::<f32>().unwrap();
    let (want, _) = Weights::open(testdata("vision/tower.safetensors"))
        .unwrap()
        .get_f32("image_embeds")
        .unwrap();
    let err = peak_rel_err(&ours, &want);
    eprintln!("bf16 image_embeds max rel err {err:.3e}");
    assert!(
        err < 3e-2,
        "bf16 image embeds drift from the f32 reference: {err:e}"
    );
}
