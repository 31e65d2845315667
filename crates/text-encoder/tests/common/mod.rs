//! Shared helpers: golden files made by xtask/reference/gen_text_encoder.py, error metric, and
//! edited copies of the tiny checkpoint.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use burn::backend::Flex;
use burn::tensor::{Int, Tensor};
use safetensors::{Dtype, SafeTensors};
use tokenizer_loader::Batch;

pub type B = Flex;

pub fn testdata(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata")
        .join(rel)
}

pub fn tiny_pipeline() -> PathBuf {
    testdata("tiny-qwen-image")
}

pub fn tiny_text_encoder() -> PathBuf {
    tiny_pipeline().join("text_encoder")
}

/// One golden safetensors file held in memory.
pub struct Goldens {
    path: PathBuf,
    bytes: Vec<u8>,
}

impl Goldens {
    pub fn open(rel: &str) -> Self {
        let path = testdata(rel);
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        Self { path, bytes }
    }

    fn st(&self) -> SafeTensors<'_> {
        SafeTensors::deserialize(&self.bytes)
            .unwrap_or_else(|e| panic!("{}: {e}", self.path.display()))
    }

    /// The JSON in the file's single `info` metadata entry.
    pub fn info(&self) -> serde_json::Value {
        let (_, meta) = SafeTensors::read_metadata(&self.bytes).expect("metadata");
        let info = &meta.metadata().as_ref().expect("metadata map")["info"];
        serde_json::from_str(info).expect("info is JSON")
    }

    pub fn f32(&self, name: &str) -> (Vec<f32>, Vec<usize>) {
        let st = self.st();
        let t = st.tensor(name).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(t.dtype(), Dtype::F32, "{name}");
        let v = t
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        (v, t.shape().to_vec())
    }

    pub fn i64(&self, name: &str) -> (Vec<i64>, Vec<usize>) {
        let st = self.st();
        let t = st.tensor(name).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(t.dtype(), Dtype::I64, "{name}");
        let v = t
            .data()
            .chunks_exact(8)
            .map(|b| i64::from_le_bytes(b.try_into().expect("8 bytes")))
            .collect();
        (v, t.shape().to_vec())
    }

    /// `<prefix>input_ids` / `<prefix>attention_mask` as the tokenizer crate's batch.
    pub fn batch(&self, prefix: &str) -> Batch {
        let (ids, shape) = self.i64(&format!("{prefix}input_ids"));
        let (mask, _) = self.i64(&format!("{prefix}attention_mask"));
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

/// max |ours − theirs| / max(|theirs|, 1), elementwise: relative for values above 1, absolute
/// below (as the other crates' parity tests measure it).
pub fn max_rel_err(ours: &[f32], theirs: &[f32]) -> f32 {
    assert_eq!(ours.len(), theirs.len(), "element counts differ");
    ours.iter()
        .zip(theirs)
        .map(|(a, b)| (a - b).abs() / b.abs().max(1.0))
        .fold(0.0, f32::max)
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
