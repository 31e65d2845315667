//! Given the official diffusers tensors in testdata/dit-variants (written by
//! xtask/reference/gen_dit_variants.py from three tiny official transformers: Edit, Edit-2511 with
//! `zero_cond_t`, Layered with `use_layer3d_rope` + `use_additional_t_cond`), our transformer
//! matches them in f32 within a max relative error of 1e-4 (max|ours − theirs| / max|theirs|),
//! part by part in forward order (RoPE tables, timestep sinusoid and embedding, stems, block 0,
//! output), so a failure names the first part that drifts; and in bf16 it stays within the
//! tolerance of tests/bf16.rs of the same f32 goldens.

use std::path::{Path, PathBuf};

use burn::backend::Flex;
use burn::module::Module;
use burn::tensor::{DType, FloatDType, Int, Tensor, TensorData};
use parity_support::peak_rel_err as max_rel_err;
use qwen_image_dit::{AttentionImpl, DitInputs, ImageShape, QwenImageTransformer, Rope};
use weights::{CastFloats, Weights};

type B = Flex;
const TOL: f32 = 1e-4;
/// The bound tests/bf16.rs uses for a bf16 run against the f32 golden.
const BF16_TOL: f32 = 3e-2;

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/dit-variants")
}

fn model(name: &str, imp: AttentionImpl) -> QwenImageTransformer<B> {
    let dir = testdata().join(name);
    QwenImageTransformer::load(&dir, &Default::default())
        .unwrap_or_else(|e| panic!("loading {}: {e}", dir.display()))
        .with_attention(imp)
}

/// One golden file of testdata/dit-variants.
struct Golden(Weights);

impl Golden {
    fn open(name: &str) -> Self {
        let path = testdata().join(name);
        Self(Weights::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
    }
    fn float<const D: usize>(&self, name: &str) -> Tensor<B, D> {
        let (v, shape) = self.0.get_f32(name).unwrap_or_else(|e| panic!("{e}"));
        Tensor::from_data(TensorData::new(v, shape), &Default::default())
    }
    fn int<const D: usize>(&self, name: &str) -> Tensor<B, D, Int> {
        let (v, shape) = self.0.get_i64(name).unwrap_or_else(|e| panic!("{e}"));
        Tensor::from_data(TensorData::new(v, shape), &Default::default())
    }
    fn t_cond(&self) -> Option<Tensor<B, 1, Int>> {
        self.0
            .contains("additional_t_cond")
            .then(|| self.int("additional_t_cond"))
    }
    /// `img_shapes` `[B, K, 3]`: every sample of a golden batch has the same list; the model
    /// takes one sample's list (as upstream, which reads the first).
    fn img_shapes(&self, key: &str) -> Vec<ImageShape> {
        let (v, shape) = self.0.get_i64(key).unwrap_or_else(|e| panic!("{e}"));
        let k = shape[shape.len() - 2];
        let rows: Vec<ImageShape> = v
            .chunks(3)
            .map(|r| ImageShape::new(r[0] as usize, r[1] as usize, r[2] as usize))
            .collect();
        assert!(
            rows.chunks(k).all(|s| s == &rows[..k]),
            "golden samples share img_shapes"
        );
        rows[..k].to_vec()
    }
}

fn assert_close<const D: usize>(part: &str, ours: Tensor<B, D>, theirs: Tensor<B, D>) {
    let err = max_rel_err(ours, theirs);
    eprintln!("{part}: max rel err {err:.2e}");
    assert!(
        err <= TOL,
        "{part}: max relative error {err:e} exceeds {TOL:e}"
    );
}

fn assert_tables(case: &str, rope: &Rope<B>, g: &Golden, prefix: &str) {
    for (part, ours) in [
        ("img_cos", rope.img_cos()),
        ("img_sin", rope.img_sin()),
        ("txt_cos", rope.txt_cos()),
        ("txt_sin", rope.txt_sin()),
    ] {
        assert_close(
            &format!("{case}: rope {part}"),
            ours.clone(),
            g.float(&format!("{prefix}{part}")),
        );
    }
}

/// Run one golden case through `model_name` and compare every recorded part.
fn check_case(model_name: &str, file: &str, imp: AttentionImpl) {
    let g = Golden::open(file);
    let m = model(model_name, imp);
    let enc: Tensor<B, 3> = g.float("encoder_hidden_states");
    let rope = m
        .rope(
            &g.img_shapes("img_shapes"),
            enc.dims()[1],
            &Default::default(),
        )
        .expect("golden shapes are valid");
    assert_tables(file, &rope, &g, "rope_");

    let (sample, parts) = m
        .forward_traced(
            DitInputs::new(g.float("hidden_states"), enc, g.float("timestep"), &rope)
                .encoder_mask(Some(g.int("encoder_hidden_states_mask")))
                .additional_t_cond(g.t_cond()),
        )
        .expect("golden inputs are valid");
    assert_close(
        &format!("{file}: timestep sinusoid"),
        parts.time_proj,
        g.float("time_proj"),
    );
    assert_close(
        &format!("{file}: timestep embedding"),
        parts.temb,
        g.float("temb"),
    );
    assert_close(&format!("{file}: img_in"), parts.img_in, g.float("img_in"));
    assert_close(&format!("{file}: txt_in"), parts.txt_in, g.float("txt_in"));
    let (img0, txt0) = parts.blocks[0].clone();
    assert_close(
        &format!("{file}: block 0 image stream"),
        img0,
        g.float("block0_img"),
    );
    assert_close(
        &format!("{file}: block 0 text stream"),
        txt0,
        g.float("block0_txt"),
    );
    assert_close(&format!("{file}: sample"), sample, g.float("sample"));
}

#[test]
fn edit_with_two_images_per_sample_matches_diffusers() {
    check_case("edit", "edit_k2.safetensors", AttentionImpl::Fused);
}

#[test]
fn edit_plus_with_three_images_per_sample_matches_diffusers() {
    check_case("edit", "edit_k3.safetensors", AttentionImpl::Fused);
}

#[test]
fn edit_2511_zero_cond_t_matches_diffusers() {
    check_case("edit-2511", "edit2511_k3.safetensors", AttentionImpl::Fused);
}

#[test]
fn layered_with_layer3d_rope_and_additional_t_cond_matches_diffusers() {
    check_case("layered", "layered.safetensors", AttentionImpl::Fused);
}

#[test]
fn explicit_softmax_attention_matches_diffusers_in_every_variant() {
    for (m, file) in [
        ("edit", "edit_k3.safetensors"),
        ("edit-2511", "edit2511_k3.safetensors"),
        ("layered", "layered.safetensors"),
    ] {
        check_case(m, file, AttentionImpl::Explicit);
    }
}

#[test]
fn rope_tables_for_several_frames_and_layer3d_match_diffusers() {
    let g = Golden::open("rope_tables.safetensors");
    let (axes, _) = g.0.get_i64("axes_dims").expect("axes");
    let axes = [axes[0] as usize, axes[1] as usize, axes[2] as usize];
    let dev = Default::default();
    for (prefix, layer3d) in [("video_", false), ("layer_", true), ("layers6_", true)] {
        let shapes = g.img_shapes(&format!("{prefix}img_shapes"));
        let (l, _) = g.0.get_i64(&format!("{prefix}txt_len")).expect("txt_len");
        let rope = if layer3d {
            Rope::<B>::new_layer3d(axes, &shapes, l[0] as usize, &dev)
        } else {
            Rope::<B>::new(axes, &shapes, l[0] as usize, &dev)
        }
        .expect("golden shapes are valid");
        assert_tables(prefix, &rope, &g, prefix);
    }
}

#[test]
fn zero_cond_t_modulates_exactly_the_condition_tokens_with_t_zero() {
    let g = Golden::open("edit2511_k3.safetensors");
    let m = model("edit-2511", AttentionImpl::Fused);
    let rope = m
        .rope(&g.img_shapes("img_shapes"), 8, &Default::default())
        .expect("golden shapes are valid");
    // Upstream's modulate_index: 0 for the output image's tokens, 1 for the condition images'.
    let (index, shape) = g.0.get_i64("modulate_index").expect("modulate_index");
    let n = shape[1];
    for sample in index.chunks(n) {
        let first = sample.iter().take_while(|&&v| v == 0).count();
        assert_eq!(first, rope.num_first_image_tokens());
        assert!(sample[first..].iter().all(|&v| v == 1), "{sample:?}");
    }
    // The variant really changes the output: diffusers' plain model on the same inputs differs.
    let plain = model("edit", AttentionImpl::Fused)
        .forward(
            DitInputs::new(
                g.float("hidden_states"),
                g.float("encoder_hidden_states"),
                g.float("timestep"),
                &g.img_shapes("img_shapes"),
            )
            .encoder_mask(Some(g.int("encoder_hidden_states_mask"))),
        )
        .expect("golden inputs are valid");
    assert_close(
        "plain model on the 2511 inputs",
        plain,
        g.float("sample_plain"),
    );
    assert!(max_rel_err(g.float::<3>("sample_plain"), g.float("sample")) > 1e-2);
}

#[test]
fn zero_cond_t_with_only_the_output_image_equals_the_plain_model() {
    // With a single image there are no condition tokens, so upstream's modulate_index is all 0
    // and the doubled timestep batch changes nothing: edit-2511 (same weights) = edit.
    let g = Golden::open("edit_k2.safetensors");
    let first = g.img_shapes("img_shapes")[0];
    let n = first.num_tokens();
    let hidden: Tensor<B, 3> = g.float::<3>("hidden_states").narrow(1, 0, n);
    let run = |name: &str| {
        model(name, AttentionImpl::Fused)
            .forward(
                DitInputs::new(
                    hidden.clone(),
                    g.float("encoder_hidden_states"),
                    g.float("timestep"),
                    &[first],
                )
                .encoder_mask(Some(g.int("encoder_hidden_states_mask"))),
            )
            .expect("valid inputs")
    };
    assert_close(
        "edit-2511 with one image vs edit",
        run("edit-2511"),
        run("edit"),
    );
}

#[test]
fn layered_additional_t_cond_selects_the_embedding_row() {
    let g = Golden::open("layered.safetensors");
    let m = model("layered", AttentionImpl::Fused);
    let shapes = g.img_shapes("img_shapes");
    let run = |cond: Option<Tensor<B, 1, Int>>| {
        m.forward(
            DitInputs::new(
                g.float("hidden_states"),
                g.float("encoder_hidden_states"),
                g.float("timestep"),
                &shapes,
            )
            .encoder_mask(Some(g.int("encoder_hidden_states_mask")))
            .additional_t_cond(cond),
        )
    };
    let golden = run(g.t_cond()).expect("golden inputs are valid");
    assert_close(
        "layered sample via forward with additional_t_cond",
        golden.clone(),
        g.float("sample"),
    );
    // The golden uses classes [0, 1]; [0, 0] changes the second sample only.
    let zeros = Tensor::<B, 1, Int>::zeros([2], &Default::default());
    let rgb = run(Some(zeros)).expect("valid class");
    assert_close(
        "sample 0 with class 0 either way",
        rgb.clone().narrow(0, 0, 1),
        golden.clone().narrow(0, 0, 1),
    );
    assert!(max_rel_err(rgb.narrow(0, 1, 1), golden.narrow(0, 1, 1)) > 1e-3);
    // Missing or out-of-range classes are errors naming the input, not panics.
    let err = run(None).unwrap_err().to_string();
    assert!(err.contains("additional_t_cond"), "{err}");
    let two =
        Tensor::<B, 1, Int>::from_data(TensorData::new(vec![0i64, 2], [2]), &Default::default());
    let err = run(Some(two)).unwrap_err().to_string();
    assert!(
        err.contains("additional_t_cond") && err.contains('2'),
        "{err}"
    );
}

/// bf16 weights and activations (as the CUDA build runs) against the f32 golden.
fn bf16_err(model_name: &str, file: &str, imp: AttentionImpl) -> f32 {
    let m = model(model_name, imp).map(&mut CastFloats(FloatDType::BF16));
    let g = Golden::open(file);
    let bf16 = |t: Tensor<B, 3>| t.cast(FloatDType::BF16);
    let out = m
        .forward(
            DitInputs::new(
                bf16(g.float("hidden_states")),
                bf16(g.float("encoder_hidden_states")),
                g.float::<1>("timestep").cast(FloatDType::BF16),
                &g.img_shapes("img_shapes"),
            )
            .encoder_mask(Some(g.int("encoder_hidden_states_mask")))
            .additional_t_cond(g.t_cond()),
        )
        .expect("golden inputs are valid");
    assert_eq!(
        out.dtype(),
        DType::BF16,
        "the output stays in the model dtype"
    );
    max_rel_err(out.cast(FloatDType::F32), g.float("sample"))
}

#[test]
fn bf16_variants_stay_close_to_the_f32_reference() {
    for (m, file) in [
        ("edit", "edit_k2.safetensors"),
        ("edit", "edit_k3.safetensors"),
        ("edit-2511", "edit2511_k3.safetensors"),
        ("layered", "layered.safetensors"),
    ] {
        for imp in [AttentionImpl::Fused, AttentionImpl::Explicit] {
            let err = bf16_err(m, file, imp);
            eprintln!("{file} {imp:?}: bf16 max rel err {err:.3e}");
            assert!(
                err < BF16_TOL,
                "{file} {imp:?}: bf16 output drifts from the f32 reference: {err:e}"
            );
        }
    }
}
