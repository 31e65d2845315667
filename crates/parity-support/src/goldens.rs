//! [`Goldens`]: one safetensors file of the oracle's outputs, read whole into memory.

use std::path::{Path, PathBuf};

use safetensors::{Dtype, SafeTensors};

/// One golden safetensors file (as `xtask/reference/gen_*.py` write them) held in memory. Every
/// reader panics with the tensor's name when it is missing or of another dtype: goldens are test
/// fixtures, and a test should stop there.
pub struct Goldens {
    path: PathBuf,
    bytes: Vec<u8>,
}

impl Goldens {
    /// Read the file at `path`.
    pub fn open(path: impl AsRef<Path>) -> Self {
        let path = path.as_ref().to_path_buf();
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        Self { path, bytes }
    }

    /// Read `testdata/<rel>` ([`testdata`](crate::testdata)).
    pub fn testdata(rel: &str) -> Self {
        Self::open(crate::testdata(rel))
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The parsed file, to walk its tensors directly.
    pub fn safetensors(&self) -> SafeTensors<'_> {
        SafeTensors::deserialize(&self.bytes)
            .unwrap_or_else(|e| panic!("{}: {e}", self.path.display()))
    }

    /// Whether the file holds a tensor called `name`.
    pub fn contains(&self, name: &str) -> bool {
        self.safetensors().tensor(name).is_ok()
    }

    /// The string metadata entry `key` (the oracle stores its case lists and settings there).
    pub fn metadata(&self, key: &str) -> String {
        let (_, meta) = SafeTensors::read_metadata(&self.bytes)
            .unwrap_or_else(|e| panic!("{}: {e}", self.path.display()));
        meta.metadata()
            .as_ref()
            .and_then(|m| m.get(key))
            .unwrap_or_else(|| panic!("{}: no metadata `{key}`", self.path.display()))
            .clone()
    }

    /// The metadata entry `key`, parsed as JSON.
    pub fn metadata_json(&self, key: &str) -> serde_json::Value {
        serde_json::from_str(&self.metadata(key)).unwrap_or_else(|e| {
            panic!("{}: metadata `{key}` is not JSON: {e}", self.path.display())
        })
    }

    /// The JSON in the file's `info` metadata entry.
    pub fn info(&self) -> serde_json::Value {
        self.metadata_json("info")
    }

    /// Tensor `name`'s raw little-endian bytes and shape, after checking its dtype.
    fn raw(&self, name: &str, dtype: Dtype) -> (Vec<u8>, Vec<usize>) {
        let st = self.safetensors();
        let t = st.tensor(name).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(t.dtype(), dtype, "{name}");
        (t.data().to_vec(), t.shape().to_vec())
    }

    /// An f32 tensor: values (row-major) and shape.
    pub fn f32(&self, name: &str) -> (Vec<f32>, Vec<usize>) {
        let (b, shape) = self.raw(name, Dtype::F32);
        let v = b
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]));
        (v.collect(), shape)
    }

    /// An f64 tensor: values and shape.
    pub fn f64(&self, name: &str) -> (Vec<f64>, Vec<usize>) {
        let (b, shape) = self.raw(name, Dtype::F64);
        let v = b
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")));
        (v.collect(), shape)
    }

    /// An i64 tensor: values and shape.
    pub fn i64(&self, name: &str) -> (Vec<i64>, Vec<usize>) {
        let (b, shape) = self.raw(name, Dtype::I64);
        let v = b
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes(c.try_into().expect("8 bytes")));
        (v.collect(), shape)
    }

    /// A u8 tensor: values and shape.
    pub fn u8(&self, name: &str) -> (Vec<u8>, Vec<usize>) {
        self.raw(name, Dtype::U8)
    }

    /// A `[C, H, W]` u8 image (channel-first, as torch holds it) as interleaved row-major pixels
    /// (`[H, W, C]`, as the `image` crate holds them) and `(width, height)`.
    pub fn u8_image_hwc(&self, name: &str) -> (Vec<u8>, (u32, u32)) {
        let (chw, shape) = self.u8(name);
        let [c, h, w] = shape[..] else {
            panic!("{name}: shape {shape:?} is not [C, H, W]")
        };
        let mut hwc = vec![0u8; chw.len()];
        for ch in 0..c {
            for i in 0..h * w {
                hwc[i * c + ch] = chw[ch * h * w + i];
            }
        }
        (hwc, (w as u32, h as u32))
    }
}
