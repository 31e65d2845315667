//! In bf16 (weights and activations, as the CUDA build runs), the model keeps the reference's f32
//! islands — norm statistics, RoPE, the timestep sinusoid, softmax — and so stays close to the
//! official f32 output; and the f32 islands really run in f32 (a bf16 sinusoid at t≈1000 would be
//! far off).

use std::path::{Path, PathBuf};

use burn::backend::Flex;
use burn::module::Module;
use burn::tensor::{DType, FloatDType, Int, Tensor, TensorData};
use parity_support::peak_rel_err as rel_err;
use qwen_image_dit::{AttentionImpl, DitInputs, ImageShape, QwenImageTransformer};
use weights::{CastFloats, Weights};

// burn Flex runs bf16 tensors inside its f32 backend type: every parameter and input is cast to
// bf16, as `Cuda<bf16>` holds them.
type Bf16 = Flex;

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata")
}

fn run(file: &str, imp: AttentionImpl) -> (Vec<f32>, Vec<f32>, DType) {
    let dev = Default::default();
    let model =
        QwenImageTransformer::<Bf16>::load(testdata().join("tiny-qwen-image/transformer"), &dev)
            .unwrap()
            .with_attention(imp)
            .map(&mut CastFloats(FloatDType::BF16));
    let g = Weights::open(testdata().join(format!("dit/{file}.safetensors"))).unwrap();
    let bf16 = FloatDType::BF16;
    let hidden: Tensor<Bf16, 3> = g
        .get_any::<Bf16, 3>("hidden_states", &dev)
        .unwrap()
        .cast(bf16);
    let enc: Tensor<Bf16, 3> = g
        .get_any::<Bf16, 3>("encoder_hidden_states", &dev)
        .unwrap()
        .cast(bf16);
    let t: Tensor<Bf16, 1> = g.get_any::<Bf16, 1>("timestep", &dev).unwrap().cast(bf16);
    let mask = g.contains("encoder_hidden_states_mask").then(|| {
        let (v, s) = g.get_i64("encoder_hidden_states_mask").unwrap();
        Tensor::<Bf16, 2, Int>::from_data(TensorData::new(v, s), &dev)
    });
    let (shapes, _) = g.get_i64("img_shapes").unwrap();
    let img = [ImageShape::new(
        shapes[0] as usize,
        shapes[1] as usize,
        shapes[2] as usize,
    )];
    let out = model
        .forward(DitInputs::new(hidden, enc, t, &img).encoder_mask(mask))
        .unwrap();
    let dtype = out.dtype();
    let ours = out.into_data().convert::<f32>().to_vec::<f32>().unwrap();
    let (want, _) = g.get_f32("sample").unwrap();
    (ours, want, dtype)
}

#[test]
fn bf16_activations_stay_close_to_the_f32_reference() {
    for file in ["b1_nomask", "b2_mask", "nonsquare"] {
        for imp in [AttentionImpl::Fused, AttentionImpl::Explicit] {
            let (ours, want, dtype) = run(file, imp);
            assert_eq!(dtype, DType::BF16, "the output stays in the model dtype");
            let err = rel_err(ours, &want);
            eprintln!("{file} {imp:?}: bf16 max rel err {err:.3e}");
            assert!(
                err < 3e-2,
                "{file} {imp:?}: bf16 output drifts from the f32 reference: {err:e}"
            );
        }
    }
}
