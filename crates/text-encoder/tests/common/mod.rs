//! Shared helpers: the tiny checkpoint's paths, golden batches, and edited copies of the
//! checkpoint (golden files and error metrics are parity-support's).
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use burn::backend::Flex;
use burn::tensor::{Int, Tensor};
use safetensors::{Dtype, SafeTensors};
use tokenizer_loader::Batch;

pub use parity_support::{Goldens, max_rel_err, peak_rel_err, testdata};

pub type B = Flex;

pub fn tiny_pipeline() -> PathBuf {
    testdata("tiny-qwen-image")
}

pub fn tiny_text_encoder() -> PathBuf {
    tiny_pipeline().join("text_encoder")
}

/// `<prefix>input_ids` / `<prefix>attention_mask` as the tokenizer crate's batch.
pub fn batch(g: &Goldens, prefix: &str) -> Batch {
    let (ids, shape) = g.i64(&format!("{prefix}input_ids"));
    let (mask, _) = g.i64(&format!("{prefix}attention_mask"));
    let mask: Vec<u32> = mask.iter().map(|&m| m as u32).collect();
    let lens = mask
        .chunks_exact(shape[1])
        .map(|r| r.iter().sum::<u32>() as usize)
        .collect();
    Batch {
        ids: ids.iter().map(|&i| i as u32).collect(),
        mask,
        lens,
        batch_size: shape[0],
        seq_len: shape[1],
    }
}

pub fn values<const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .to_vec::<f32>()
        .expect("f32 data")
}

pub fn ints<const D: usize>(t: Tensor<B, D, Int>) -> Vec<i64> {
    t.into_data()
        .convert::<i64>()
        .to_vec::<i64>()
        .expect("int data")
}

/// One tensor of a checkpoint being rewritten.
pub struct Entry {
    pub name: String,
    pub dtype: Dtype,
    pub shape: Vec<usize>,
    pub data: Vec<u8>,
}

/// Read every tensor of a safetensors file.
pub fn read_entries(path: &Path) -> Vec<Entry> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let st = SafeTensors::deserialize(&bytes).expect("safetensors");
    let mut v: Vec<Entry> = st
        .tensors()
        .into_iter()
        .map(|(name, t)| Entry {
            name,
            dtype: t.dtype(),
            shape: t.shape().to_vec(),
            data: t.data().to_vec(),
        })
        .collect();
    v.sort_by(|a, b| a.name.cmp(&b.name));
    v
}

pub fn write_entries(path: &Path, entries: &[Entry]) {
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = entries
        .iter()
        .map(|e| {
            let view = safetensors::tensor::TensorView::new(e.dtype, e.shape.clone(), &e.data)
                .expect("view");
            (e.name.clone(), view)
        })
        .collect();
    safetensors::serialize_to_file(views, None, path).expect("write safetensors");
}

/// A copy of the tiny text encoder in a temp folder, its tensors passed through `edit`.
pub fn edited_copy(edit: impl FnOnce(&mut Vec<Entry>)) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::copy(
        tiny_text_encoder().join("config.json"),
        dir.path().join("config.json"),
    )
    .expect("copy config");
    let mut entries = read_entries(&tiny_text_encoder().join("model.safetensors"));
    edit(&mut entries);
    write_entries(&dir.path().join("model.safetensors"), &entries);
    dir
}
