//! Given cond/uncond predictions and the pipeline's true-CFG block evaluated by torch on them
//! (testdata/cfg, made by xtask/reference/gen_scheduler_cfg.py), our combination matches.

use std::path::PathBuf;

use burn::backend::Flex;
use burn::tensor::{Tensor, TensorData};
use cfg::Guidance;
use safetensors::{Dtype, SafeTensors};

type B = Flex;

fn golden_bytes() -> Vec<u8> {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testdata/cfg/true_cfg.safetensors");
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn tensor(st: &SafeTensors, name: &str) -> Tensor<B, 3> {
    let t = st.tensor(name).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(t.dtype(), Dtype::F32, "{name}");
    let values: Vec<f32> = t
        .data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect();
    Tensor::from_data(
        TensorData::new(values, t.shape().to_vec()),
        &Default::default(),
    )
}

fn max_rel_err(ours: Tensor<B, 3>, theirs: Tensor<B, 3>) -> f32 {
    let a = ours.into_data().to_vec::<f32>().unwrap();
    let b = theirs.into_data().to_vec::<f32>().unwrap();
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs() / y.abs().max(1.0))
        .fold(0.0, f32::max)
}

#[test]
fn true_cfg_matches_diffusers_for_every_scale() {
    let bytes = golden_bytes();
    let (_, meta) = SafeTensors::read_metadata(&bytes).unwrap();
    let scales: Vec<f64> =
        serde_json::from_str(&meta.metadata().as_ref().unwrap()["scales"]).unwrap();
    assert!(scales.len() >= 4);
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let (cond, uncond) = (tensor(&st, "cond"), tensor(&st, "uncond"));
    assert_eq!(cond.dims(), [2, 24, 64]);
    for scale in scales {
        // Python's repr of the scale is the golden's key (e.g. "combined.4.0").
        let expected = tensor(&st, &format!("combined.{scale:?}"));
        let guidance = Guidance::from_settings(Some(scale as f32), None, true).unwrap();
        assert_eq!(
            guidance,
            Guidance::TrueCfg {
                scale: scale as f32
            }
        );
        let ours = guidance
            .combine(cond.clone(), Some(uncond.clone()))
            .unwrap();
        let err = max_rel_err(ours, expected);
        assert!(err <= 1e-5, "scale {scale}: max relative error {err}");
    }
}
