//! Token ids and masks a hostile caller hands the language model (issue 29 item 5): ids outside
//! the vocabulary, mask values other than 0/1, empty or mismatched shapes are an `Error::Tokens`
//! naming the input, never a panic in the embedding lookup; and a fuzzer over small shapes and
//! values finds no panic either.

use std::sync::OnceLock;

use burn::tensor::{Int, Tensor, TensorData};
use proptest::prelude::*;
use text_encoder::{Error, MultimodalInputs, QwenTextEncoder};

use crate::common::{B, tiny_text_encoder};

fn model() -> &'static QwenTextEncoder<B> {
    static MODEL: OnceLock<QwenTextEncoder<B>> = OnceLock::new();
    MODEL.get_or_init(|| {
        QwenTextEncoder::load(tiny_text_encoder(), &Default::default()).expect("tiny model")
    })
}

fn ints(v: Vec<i64>, shape: [usize; 2]) -> Tensor<B, 2, Int> {
    Tensor::from_data(TensorData::new(v, shape), &Default::default())
}

fn tokens_error<T: std::fmt::Debug>(r: Result<T, Error>) -> String {
    match r {
        Err(e @ Error::Tokens(_)) => e.to_string(),
        other => panic!("expected a token error, got {other:?}"),
    }
}

#[test]
fn ids_outside_the_vocabulary_are_refused() {
    let m = model();
    let vocab = m.config().vocab_size as i64;
    for bad in [-1i64, vocab, i64::from(i32::MAX)] {
        let e = tokens_error(m.forward(ints(vec![1, bad], [1, 2]), ints(vec![1, 1], [1, 2])));
        assert!(
            e.contains(&format!("input_ids value {bad} at flat index 1")) && e.contains("vocab"),
            "{e}"
        );
        // The prompt-with-images path and its lookup too.
        let inputs = MultimodalInputs {
            input_ids: ints(vec![bad], [1, 1]),
            attention_mask: ints(vec![1], [1, 1]),
            image_embeds: None,
            position_ids: None,
        };
        let e = tokens_error(m.forward_multimodal(inputs));
        assert!(e.contains(&format!("input_ids value {bad}")), "{e}");
        let e = tokens_error(m.embed_multimodal(ints(vec![bad], [1, 1]), None));
        assert!(e.contains(&format!("input_ids value {bad}")), "{e}");
    }
    // 2^40 does not fit this backend's i32: a caller checks the i64 values before making the
    // tensor (what `forward text-encoder` does with its file).
    let e = m
        .config()
        .check_tokens(&[1 << 40], &[1], [1, 1])
        .unwrap_err();
    assert!(
        e.to_string().contains("input_ids value 1099511627776"),
        "{e}"
    );
}

#[test]
fn mask_values_other_than_0_or_1_are_refused() {
    let m = model();
    for bad in [2i64, -1] {
        let e = tokens_error(m.forward(ints(vec![1, 2], [1, 2]), ints(vec![bad, 1], [1, 2])));
        assert!(
            e.contains(&format!("attention_mask value {bad} at flat index 0")),
            "{e}"
        );
    }
    let e = m.config().check_tokens(&[1, 2], &[1, 1 << 62], [1, 2]);
    let e = e.unwrap_err().to_string();
    assert!(
        e.contains("attention_mask value 4611686018427387904"),
        "{e}"
    );
}

#[test]
fn empty_or_mismatched_inputs_are_refused() {
    let m = model();
    for shape in [[1, 0], [0, 1], [0, 0]] {
        let e = tokens_error(m.forward(ints(vec![], shape), ints(vec![], shape)));
        assert!(e.contains("is empty"), "{shape:?}: {e}");
        let e = tokens_error(m.forward_hidden_states(ints(vec![], shape), ints(vec![], shape)));
        assert!(e.contains("is empty"), "{shape:?}: {e}");
    }
    let e = tokens_error(m.forward(ints(vec![1, 2], [1, 2]), ints(vec![1], [1, 1])));
    assert!(
        e.contains("attention mask [1, 1] for [1, 2] token ids"),
        "{e}"
    );
    let e = m.config().check_tokens(&[1, 2], &[1], [1, 2]).unwrap_err();
    assert!(e.to_string().contains("2 ids and 1 mask values"), "{e}");
    assert!(m.config().check_tokens(&[0, 1], &[1, 0], [2, 1]).is_ok());
}

/// The tiny model's `vocab_size`.
const TINY_VOCAB: i64 = 151_680;

/// An id: mostly a real one, else at or past either end of the vocabulary.
fn id(vocab: i64) -> impl Strategy<Value = i64> {
    prop_oneof![
        6 => 0..vocab,
        1 => Just(-1i64),
        1 => Just(vocab),
        1 => Just(i64::from(i32::MAX)),
    ]
}

proptest! {
    #![proptest_config(fuzz_support::config(64))]

    /// Any small batch of ids and mask values, of matching shapes or not: hidden states of the
    /// right shape or a token error, never a panic.
    #[test]
    fn hostile_tokens_never_panic(
        (b, l) in (0usize..3, 0usize..4),
        mask_shape in prop_oneof![4 => Just(None), 1 => (0usize..3, 0usize..4).prop_map(Some)],
        ids in prop::collection::vec(id(TINY_VOCAB), 12),
        mask in prop::collection::vec(prop_oneof![6 => Just(1i64), 3 => Just(0), 1 => Just(2)], 12),
    ) {
        let m = model();
        prop_assert_eq!(m.config().vocab_size as i64, TINY_VOCAB);
        let [mb, ml] = mask_shape.map_or([b, l], |(mb, ml)| [mb, ml]);
        let ids = ints(ids[..b * l].to_vec(), [b, l]);
        let mask = ints(mask[..mb * ml].to_vec(), [mb, ml]);
        match m.forward(ids, mask) {
            Ok(out) => prop_assert_eq!(out.dims(), [b, l, m.config().hidden_size]),
            Err(e) => prop_assert!(matches!(e, Error::Tokens(_)), "{e}"),
        }
    }
}
