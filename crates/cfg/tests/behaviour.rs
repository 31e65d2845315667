//! The guidance decision (scale fallback, off cases) and the edge cases of the combination.

use burn::backend::Flex;
use burn::tensor::Tensor;
use cfg::{CfgError, Guidance};

type B = Flex;

fn t(values: [[f32; 4]; 2]) -> Tensor<B, 3> {
    Tensor::from_floats([values], &Default::default())
}

fn values(x: Tensor<B, 3>) -> Vec<f32> {
    x.into_data().to_vec::<f32>().unwrap()
}

#[test]
fn true_cfg_scale_wins_then_guidance_scale_is_the_fallback() {
    let on = |s| Guidance::TrueCfg { scale: s };
    assert_eq!(
        Guidance::from_settings(Some(4.0), Some(7.0), true).unwrap(),
        on(4.0)
    );
    assert_eq!(
        Guidance::from_settings(None, Some(7.0), true).unwrap(),
        on(7.0)
    );
    // An explicit true_cfg_scale ≤ 1 turns CFG off even if guidance_scale would enable it.
    assert_eq!(
        Guidance::from_settings(Some(1.0), Some(7.0), true).unwrap(),
        Guidance::Off
    );
}

#[test]
fn guidance_is_off_without_scale_without_negative_or_at_scale_1_or_below() {
    for (t, g, neg) in [
        (None, None, true),
        (Some(4.0), None, false),
        (None, Some(4.0), false),
        (Some(1.0), None, true),
        (Some(0.5), None, true),
        (None, Some(1.0), true),
    ] {
        let guidance = Guidance::from_settings(t, g, neg).unwrap();
        assert_eq!(guidance, Guidance::Off, "{t:?} {g:?} {neg}");
        assert!(!guidance.is_enabled());
        assert_eq!(guidance.scale(), None);
    }
    assert!(
        Guidance::from_settings(Some(1.0001), None, true)
            .unwrap()
            .is_enabled()
    );
}

#[test]
fn a_nan_or_infinite_scale_is_an_error() {
    let err = Guidance::from_settings(Some(f32::NAN), Some(4.0), true).unwrap_err();
    assert!(
        matches!(
            err,
            CfgError::InvalidScale {
                setting: "true_cfg_scale",
                ..
            }
        ),
        "{err}"
    );
    let err = Guidance::from_settings(None, Some(f32::INFINITY), true).unwrap_err();
    assert!(
        matches!(
            err,
            CfgError::InvalidScale {
                setting: "guidance_scale",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn off_returns_the_conditional_prediction_unchanged() {
    let cond = t([[1.0, -2.0, 3.0, 0.5], [0.0, 0.25, -7.0, 1.0]]);
    let uncond = t([[9.0; 4], [9.0; 4]]);
    let off = Guidance::from_settings(Some(1.0), None, true).unwrap();
    assert_eq!(
        values(off.combine(cond.clone(), Some(uncond)).unwrap()),
        values(cond.clone())
    );
    assert_eq!(
        values(off.combine(cond.clone(), None).unwrap()),
        values(cond)
    );
}

#[test]
fn scale_exactly_one_in_the_formula_gives_back_cond() {
    // comb = cond, so the rescale factor is 1 up to rounding.
    let cond = t([[1.0, -2.0, 3.0, 0.5], [0.1, 0.25, -7.0, 1.0]]);
    let uncond = t([[-3.0, 2.0, 0.0, 4.0], [1.0, 1.0, 1.0, 1.0]]);
    let out = Guidance::TrueCfg { scale: 1.0 }
        .combine(cond.clone(), Some(uncond))
        .unwrap();
    for (a, b) in values(out).iter().zip(values(cond)) {
        assert!((a - b).abs() <= 1e-6 * b.abs().max(1.0), "{a} vs {b}");
    }
}

#[test]
fn the_rescale_keeps_each_tokens_cond_norm() {
    let cond = t([[3.0, 4.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0]]);
    let uncond = t([[1.0, 0.0, 0.0, 0.0], [0.0, 2.0, 0.0, 0.0]]);
    let out = values(
        Guidance::TrueCfg { scale: 4.0 }
            .combine(cond, Some(uncond))
            .unwrap(),
    );
    // token 0: comb = [9, 16, 0, 0] → ×5/√337; token 1: comb = [0, -6, 4, 0] → ×1/√52.
    let (k0, k1) = (5.0 / 337f32.sqrt(), 1.0 / 52f32.sqrt());
    let expected = [9.0 * k0, 16.0 * k0, 0.0, 0.0, 0.0, -6.0 * k1, 4.0 * k1, 0.0];
    for (a, b) in out.iter().zip(expected) {
        assert!((a - b).abs() < 1e-6, "{out:?}");
    }
}

#[test]
fn zero_vectors_give_zero_not_nan() {
    // diffusers divides 0 by 0 here; the 1e-12 floor (SGLang) makes these tokens zero.
    let guidance = Guidance::TrueCfg { scale: 2.0 };
    let zero = t([[0.0; 4], [0.0; 4]]);
    let out = guidance.combine(zero.clone(), Some(zero.clone())).unwrap();
    assert_eq!(values(out), vec![0.0; 8]);

    // comb = 2·cond − uncond = 0 with a non-zero cond; and a zero cond with a non-zero uncond.
    let cond = t([[1.0, 2.0, 3.0, 4.0], [0.0; 4]]);
    let uncond = t([[2.0, 4.0, 6.0, 8.0], [1.0, -1.0, 1.0, -1.0]]);
    let out = guidance.combine(cond, Some(uncond)).unwrap();
    assert_eq!(values(out), vec![0.0; 8]);
}

#[test]
fn nan_or_inf_inputs_are_errors_naming_the_tensor() {
    let good = t([[1.0, 2.0, 3.0, 4.0], [0.5; 4]]);
    let bad = t([[1.0, f32::NAN, 3.0, 4.0], [0.5; 4]]);
    let inf = t([[1.0, 2.0, 3.0, 4.0], [f32::INFINITY, 0.5, 0.5, 0.5]]);
    let on = Guidance::TrueCfg { scale: 4.0 };
    let name = |r: Result<Tensor<B, 3>, CfgError>| match r {
        Err(CfgError::NonFinite { tensor }) => tensor,
        other => panic!("expected NonFinite, got {other:?}"),
    };
    assert_eq!(name(on.combine(bad.clone(), Some(good.clone()))), "cond");
    assert_eq!(name(on.combine(good.clone(), Some(bad.clone()))), "uncond");
    assert_eq!(name(on.combine(good.clone(), Some(inf))), "uncond");
    assert_eq!(name(Guidance::Off.combine(bad, None)), "cond");
    // Finite inputs whose combination overflows f32.
    let huge = t([[3e38; 4], [3e38; 4]]);
    let neg_huge = t([[-3e38; 4], [-3e38; 4]]);
    assert_eq!(name(on.combine(huge.clone(), Some(neg_huge))), "guided");
    // Finite values whose sum overflows are still accepted (the fast check falls back to the exact one).
    assert_eq!(
        values(Guidance::Off.combine(huge.clone(), None).unwrap()),
        values(huge)
    );
}

#[test]
fn missing_or_mismatched_uncond_is_an_error() {
    let on = Guidance::TrueCfg { scale: 4.0 };
    let cond = t([[1.0; 4], [1.0; 4]]);
    assert!(matches!(
        on.combine(cond.clone(), None),
        Err(CfgError::MissingUncond { .. })
    ));
    let other = Tensor::<B, 3>::ones([1, 3, 4], &Default::default());
    let err = on.combine(cond, Some(other)).unwrap_err();
    assert!(matches!(err, CfgError::ShapeMismatch { .. }), "{err}");
    assert!(err.to_string().contains("[1, 3, 4]"), "{err}");
}

#[test]
fn without_the_rescale_the_combination_is_returned_as_is() {
    // QwenImageLayeredPipeline with cfg_normalize=False: comb = uncond + s·(cond − uncond).
    let cond = t([[3.0, 4.0, 0.0, 0.0], [0.0, 0.0, 1.0, 0.0]]);
    let uncond = t([[1.0, 0.0, 0.0, 0.0], [0.0, 2.0, 0.0, 0.0]]);
    let plain = Guidance::from_settings(Some(4.0), None, true)
        .unwrap()
        .with_norm_rescale(false);
    assert_eq!(plain, Guidance::TrueCfgPlain { scale: 4.0 });
    assert!(plain.is_enabled() && !plain.rescales());
    assert_eq!(plain.scale(), Some(4.0));
    let out = values(plain.combine(cond.clone(), Some(uncond.clone())).unwrap());
    assert_eq!(out, vec![9.0, 16.0, 0.0, 0.0, 0.0, -6.0, 4.0, 0.0]);

    // cfg_normalize=True is the rescaled combination; Off stays off either way.
    assert_eq!(
        plain.with_norm_rescale(true),
        Guidance::TrueCfg { scale: 4.0 }
    );
    assert!(Guidance::TrueCfg { scale: 4.0 }.rescales());
    assert_eq!(Guidance::Off.with_norm_rescale(false), Guidance::Off);
    assert_eq!(Guidance::Off.with_norm_rescale(true), Guidance::Off);

    // The same checks as the rescaled form: finite inputs, a present uncond of the same shape.
    assert!(matches!(
        plain.combine(cond.clone(), None),
        Err(CfgError::MissingUncond { .. })
    ));
    let bad = t([[f32::NAN, 0.0, 0.0, 0.0], [0.0; 4]]);
    assert!(matches!(
        plain.combine(cond, Some(bad)),
        Err(CfgError::NonFinite { tensor: "uncond" })
    ));
}
