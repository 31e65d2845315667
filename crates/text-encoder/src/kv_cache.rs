//! The language model's key/value cache for incremental decoding (transformers' `DynamicCache`).
//!
//! Each decoder layer keeps the keys (after the rotary embedding) and values of every token seen
//! so far, `[B, kv_heads, T, head_dim]`, before the grouped-query repetition, so a decode step
//! projects only its new tokens and attends over the stored ones.

use burn::tensor::Tensor;
use burn::tensor::backend::Backend;

/// Keys and values of every token the language model has processed, per decoder layer.
///
/// Made empty with [`KvCache::new`], filled by
/// [`QwenTextEncoder::forward_cached`](crate::QwenTextEncoder::forward_cached); one cache serves
/// one sequence (batch rows advance together).
#[derive(Debug, Clone)]
pub struct KvCache<B: Backend> {
    layers: Vec<Option<LayerCache<B>>>,
    len: usize,
}

/// One layer's stored keys and values, `[B, kv_heads, T, head_dim]` each.
#[derive(Debug, Clone)]
struct LayerCache<B: Backend> {
    k: Tensor<B, 4>,
    v: Tensor<B, 4>,
}

impl<B: Backend> KvCache<B> {
    /// An empty cache for a model of `num_layers` decoder layers.
    pub fn new(num_layers: usize) -> Self {
        Self {
            layers: vec![None; num_layers],
            len: 0,
        }
    }

    /// Tokens stored (the same in every layer once a forward pass is complete).
    pub fn len(&self) -> usize {
        self.len
    }

    /// True before the first forward pass.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Number of layers the cache was made for.
    pub fn num_layers(&self) -> usize {
        self.layers.len()
    }

    /// Append layer `layer`'s new keys and values `[B, kv_heads, n, head_dim]` and return all of
    /// them, old then new (`DynamicCache.update`).
    pub(crate) fn append(
        &mut self,
        layer: usize,
        k: Tensor<B, 4>,
        v: Tensor<B, 4>,
    ) -> (Tensor<B, 4>, Tensor<B, 4>) {
        let slot = &mut self.layers[layer];
        let (k, v) = match slot.take() {
            None => (k, v),
            Some(old) => (
                Tensor::cat(vec![old.k, k], 2),
                Tensor::cat(vec![old.v, v], 2),
            ),
        };
        *slot = Some(LayerCache {
            k: k.clone(),
            v: v.clone(),
        });
        (k, v)
    }

    /// Record that a forward pass of `n` tokens went through every layer.
    pub(crate) fn advance(&mut self, n: usize) {
        self.len += n;
    }
}
