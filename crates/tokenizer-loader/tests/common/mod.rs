//! Paths and golden-file readers shared by the integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use safetensors::{Dtype, SafeTensors};

/// The workspace's testdata folder.
pub fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata")
}

/// The tiny official pipeline (tokenizer folder in the released slow layout).
pub fn tiny_pipeline() -> PathBuf {
    testdata().join("tiny-qwen-image")
}

/// The real Qwen2.5 vocab.json, merges.txt and tokenizer.json.
pub fn qwen25() -> PathBuf {
    testdata().join("qwen2.5-tokenizer")
}

/// A named i64 tensor of a golden safetensors file, as u32 ids.
pub fn read_i64(path: &Path, name: &str) -> Vec<i64> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let st = SafeTensors::deserialize(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let t = st
        .tensor(name)
        .unwrap_or_else(|e| panic!("{}: {name}: {e}", path.display()));
    assert_eq!(t.dtype(), Dtype::I64, "{name} in {}", path.display());
    t.data()
        .chunks_exact(8)
        .map(|c| i64::from_le_bytes(c.try_into().expect("8 bytes")))
        .collect()
}

/// Copy the files named in `files` from `from` into `to` (created).
pub fn copy_files(from: &Path, to: &Path, files: &[&str]) {
    std::fs::create_dir_all(to).expect("create temp folder");
    for f in files {
        std::fs::copy(from.join(f), to.join(f)).unwrap_or_else(|e| panic!("copy {f}: {e}"));
    }
}
