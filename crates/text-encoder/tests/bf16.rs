//! In bf16 (weights and activations, as the CUDA build runs), the text encoder keeps the
//! reference's f32 islands — RMSNorm statistics and the RoPE angles (positions up to 1058 are not
//! exact in bf16) — and stays close to the official f32 hidden states.

use burn::backend::Flex;
use burn::module::Module;
use burn::tensor::{DType, FloatDType, Int, Tensor, TensorData};
use text_encoder::QwenTextEncoder;

use crate::common::{peak_rel_err, testdata};
use weights::{CastFloats, Weights};

// burn Flex runs bf16 tensors inside its f32 backend type: every parameter is cast to bf16, as
// `Cuda<bf16>` holds them.
type B = Flex;

#[test]
fn bf16_hidden_states_stay_close_to_the_f32_reference() {
    let dev = Default::default();
    let model = QwenTextEncoder::<B>::load(testdata("tiny-qwen-image/text_encoder"), &dev)
        .unwrap()
        .map(&mut CastFloats(FloatDType::BF16));
    let g = Weights::open(testdata("text-encoder/hidden_states.safetensors")).unwrap();
    let ids = |name: &str| {
        let (v, s) = g.get_i64(name).unwrap();
        Tensor::<B, 2, Int>::from_data(TensorData::new(v, s), &dev)
    };
    let out = model
        .forward(ids("input_ids"), ids("attention_mask"))
        .expect("forward");
    assert_eq!(out.dtype(), DType::BF16);
    let ours = out.into_data().convert::<f32>().to_vec::<f32>().unwrap();
    let (want, _) = g.get_f32("hidden_states.2").unwrap();
    let err = peak_rel_err(&ours, &want);
    eprintln!("bf16 max rel err {err:.3e}");
    assert!(
        err < 3e-2,
        "bf16 hidden states drift from the f32 reference: {err:e}"
    );
}
