//! In bf16 (weights and activations, as the CUDA build runs), the multimodal path — image rows
//! scattered in (cast to the model dtype, as upstream), M-RoPE tables kept in f32 and cast at
//! the rotation — stays close to the official f32 hidden states, within the tolerance of the
//! text path's bf16 test (tests/bf16.rs).

use crate::common;

use burn::module::Module;
use burn::tensor::{DType, FloatDType, Tensor, TensorData};
use common::{B, Goldens, batch, peak_rel_err, tiny_text_encoder, values};
use text_encoder::{MultimodalInputs, QwenTextEncoder, mrope_position_ids};
use weights::CastFloats;

#[test]
fn bf16_multimodal_hidden_states_stay_close_to_the_f32_reference() {
    let dev = Default::default();
    let model = QwenTextEncoder::<B>::load(tiny_text_encoder(), &dev)
        .unwrap()
        .map(&mut CastFloats(FloatDType::BF16));
    let g = Goldens::testdata("text-encoder-mm/mm_embeds.safetensors");
    for case in ["edit_batch", "edit_plus"] {
        let batch = batch(&g, &format!("{case}."));
        let (grid, _) = g.i64(&format!("{case}.image_grid_thw"));
        let grids: Vec<[usize; 3]> = grid
            .chunks_exact(3)
            .map(|r| [r[0] as usize, r[1] as usize, r[2] as usize])
            .collect();
        let (b, l) = (batch.batch_size, batch.seq_len);
        let ids = |v: &[u32]| {
            let v: Vec<i64> = v.iter().map(|&x| i64::from(x)).collect();
            Tensor::from_data(TensorData::new(v, [b, l]), &dev)
        };
        let positions = mrope_position_ids(&batch.ids, &batch.mask, b, l, &grids, 151_655, 2)
            .expect("positions");
        let (embeds, shape) = g.f32(&format!("{case}.image_embeds"));
        let out = model
            .forward_multimodal(MultimodalInputs {
                input_ids: ids(&batch.ids),
                attention_mask: ids(&batch.mask),
                image_embeds: Some(Tensor::from_data(
                    TensorData::new(embeds, [shape[0], shape[1]]),
                    &dev,
                )),
                position_ids: Some(Tensor::from_data(
                    TensorData::new(positions, [3, b, l]),
                    &dev,
                )),
            })
            .expect("forward");
        assert_eq!(out.dtype(), DType::BF16);
        let layers = model.config().num_hidden_layers;
        let (want, _) = g.f32(&format!("{case}.hidden_states.{layers}"));
        // Padding rows carry no meaning; compare the real ones.
        let d = out.dims()[2];
        let ours = values(out.cast(FloatDType::F32));
        let real = |v: &[f32]| -> Vec<f32> {
            v.chunks_exact(d)
                .zip(&batch.mask)
                .filter(|(_, m)| **m == 1)
                .flat_map(|(r, _)| r.to_vec())
                .collect()
        };
        let (ours, want) = (real(&ours), real(&want));
        let err = peak_rel_err(&ours, &want);
        eprintln!("{case}: bf16 max rel err {err:.3e}");
        assert!(
            err < 3e-2,
            "{case}: bf16 hidden states drift from the f32 reference: {err:e}"
        );
    }
}
