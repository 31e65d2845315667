//! Given cond/uncond predictions and the pipeline's true-CFG block evaluated by torch on them
//! (testdata/cfg, made by xtask/reference/gen_scheduler_cfg.py), our combination matches.

use burn::backend::Flex;
use burn::tensor::{Tensor, TensorData};
use cfg::Guidance;
use parity_support::{Goldens, max_rel_err};

type B = Flex;

fn tensor(g: &Goldens, name: &str) -> Tensor<B, 3> {
    let (values, shape) = g.f32(name);
    Tensor::from_data(TensorData::new(values, shape), &Default::default())
}

#[test]
fn true_cfg_matches_diffusers_for_every_scale() {
    let st = Goldens::testdata("cfg/true_cfg.safetensors");
    let scales: Vec<f64> = serde_json::from_value(st.metadata_json("scales")).unwrap();
    assert!(scales.len() >= 4);
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
