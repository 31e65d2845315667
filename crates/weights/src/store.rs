//! [`Weights`]: safetensors checkpoints (one file or shards) memory-mapped and handed out as burn
//! tensors by PyTorch name and expected shape, with a record of what was read.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::File;
use std::path::{Path, PathBuf};

use burn::module::Param;
use burn::nn::Linear;
use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use memmap2::Mmap;
use safetensors::{Dtype, SafeTensors};

use crate::Error;

/// The element type a tensor is stored with in its file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoredDType {
    F32,
    F16,
    BF16,
    F64,
    I64,
    Other,
}

impl From<Dtype> for StoredDType {
    fn from(d: Dtype) -> Self {
        match d {
            Dtype::F32 => Self::F32,
            Dtype::F16 => Self::F16,
            Dtype::BF16 => Self::BF16,
            Dtype::F64 => Self::F64,
            Dtype::I64 => Self::I64,
            _ => Self::Other,
        }
    }
}

struct Entry {
    file: usize,
    dtype: Dtype,
    shape: Vec<usize>,
    /// Byte range inside the mmap (header already skipped).
    start: usize,
    end: usize,
}

struct Shard {
    path: PathBuf,
    map: Mmap,
}

/// A read-only view of one checkpoint (one file or a set of shards), memory-mapped.
///
/// Tensors are looked up by their PyTorch state-dict name. Every successful lookup is recorded, so
/// that [`Weights::check_all_used`] can reject a checkpoint with tensors the model did not consume.
pub struct Weights {
    shards: Vec<Shard>,
    entries: HashMap<String, Entry>,
    used: RefCell<BTreeSet<String>>,
    progress: Option<indicatif::ProgressBar>,
    /// Random tensors of whatever shape is asked, made on the device: for timing full-size models
    /// without a 40 GB file (see [`Weights::synthetic`]).
    synthetic: bool,
}

impl std::fmt::Debug for Weights {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Weights")
            .field("files", &self.files())
            .field("tensors", &self.entries.len())
            .finish()
    }
}

/// Show a loading bar only for checkpoints big enough to make a user wait.
const PROGRESS_MIN_BYTES: u64 = 512 << 20;

impl Weights {
    /// Open a `.safetensors` file, or a folder with a `*.safetensors.index.json` (sharded) or with
    /// plain `*.safetensors` files.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, Error> {
        let path = path.as_ref();
        if path.is_file() {
            return Self::open_files(&[path.to_path_buf()]);
        }
        let read_dir = std::fs::read_dir(path).map_err(|error| Error::Io {
            path: path.to_path_buf(),
            error,
        })?;
        let mut indexes = Vec::new();
        let mut files = Vec::new();
        for e in read_dir.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.ends_with(".safetensors.index.json") {
                indexes.push(e.path());
            } else if name.ends_with(".safetensors") {
                files.push(e.path());
            }
        }
        indexes.sort();
        files.sort();
        if let Some(index) = indexes.first() {
            return Self::open_index(index);
        }
        if files.is_empty() {
            return Err(Error::NoWeights {
                path: path.to_path_buf(),
            });
        }
        Self::open_files(&files)
    }

    /// Open a sharded checkpoint from its `*.safetensors.index.json` (`{"weight_map": {name: shard}}`).
    /// Every shard the index names must exist and hold the tensors the index assigns to it.
    pub fn open_index(index: &Path) -> Result<Self, Error> {
        let json: serde_json::Value = config_file::read_json(index)?;
        let map = json
            .get("weight_map")
            .and_then(|m| m.as_object())
            .ok_or_else(|| Error::BadJson {
                path: index.to_path_buf(),
                reason: "no `weight_map` object".into(),
            })?;
        let dir = index.parent().unwrap_or(Path::new("."));
        let mut shard_names: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (name, shard) in map {
            let shard = shard.as_str().ok_or_else(|| Error::BadJson {
                path: index.to_path_buf(),
                reason: format!("weight_map entry for `{name}` is not a string"),
            })?;
            shard_names
                .entry(shard.to_string())
                .or_default()
                .push(name.clone());
        }
        let files: Vec<PathBuf> = shard_names.keys().map(|s| dir.join(s)).collect();
        let w = Self::open_files(&files)?;
        for (shard, names) in &shard_names {
            let file_idx = w
                .shards
                .iter()
                .position(|s| s.path == dir.join(shard))
                .unwrap_or(usize::MAX);
            for name in names {
                match w.entries.get(name) {
                    Some(e) if e.file == file_idx => {}
                    _ => {
                        return Err(Error::ShardMismatch {
                            path: index.to_path_buf(),
                            name: name.clone(),
                            shard: shard.clone(),
                        });
                    }
                }
            }
        }
        Ok(w)
    }

    /// Open an explicit list of safetensors files as one checkpoint.
    pub fn open_files(files: &[PathBuf]) -> Result<Self, Error> {
        let mut shards = Vec::new();
        let mut entries = HashMap::new();
        let mut total: u64 = 0;
        for (i, path) in files.iter().enumerate() {
            let file = File::open(path).map_err(|error| Error::Io {
                path: path.clone(),
                error,
            })?;
            // SAFETY: the map is read-only; a checkpoint modified while we read it is a user error
            // that at worst gives wrong numbers, as with any reader of memory-mapped files.
            let map = unsafe { Mmap::map(&file) }.map_err(|error| Error::Io {
                path: path.clone(),
                error,
            })?;
            let (header_len, meta) =
                SafeTensors::read_metadata(&map).map_err(|e| Error::BadFile {
                    path: path.clone(),
                    reason: e.to_string(),
                })?;
            let base = 8 + header_len;
            for (name, info) in meta.tensors() {
                let (s, e) = info.data_offsets;
                if base + e > map.len() {
                    return Err(Error::BadFile {
                        path: path.clone(),
                        reason: format!("tensor `{name}` runs past the end of the file"),
                    });
                }
                total += (e - s) as u64;
                entries.insert(
                    name,
                    Entry {
                        file: i,
                        dtype: info.dtype,
                        shape: info.shape.clone(),
                        start: base + s,
                        end: base + e,
                    },
                );
            }
            shards.push(Shard {
                path: path.clone(),
                map,
            });
        }
        let progress = (total >= PROGRESS_MIN_BYTES).then(|| {
            let pb = indicatif::ProgressBar::new(total);
            pb.set_style(
                indicatif::ProgressStyle::with_template(
                    "loading weights {bar:30} {binary_bytes}/{binary_total_bytes} {msg}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            pb
        });
        Ok(Self {
            shards,
            entries,
            used: RefCell::new(BTreeSet::new()),
            progress,
            synthetic: false,
        })
    }

    /// A checkpoint that answers every [`Weights::get`] with a random tensor of the requested
    /// shape, drawn on the device (normal, std 1/√fan_in; 1-D norm scales around 1). For speed
    /// measurements of full-size models with no file at hand; never for numbers that matter.
    pub fn synthetic() -> Self {
        Self {
            shards: Vec::new(),
            entries: HashMap::new(),
            used: RefCell::new(BTreeSet::new()),
            progress: None,
            synthetic: true,
        }
    }

    /// The files behind this checkpoint.
    pub fn files(&self) -> Vec<&Path> {
        self.shards.iter().map(|s| s.path.as_path()).collect()
    }

    fn files_display(&self) -> String {
        self.shards
            .iter()
            .map(|s| s.path.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Whether the checkpoint has a tensor with this name.
    pub fn contains(&self, name: &str) -> bool {
        self.entries.contains_key(name)
    }

    /// The stored shape of a tensor.
    pub fn shape(&self, name: &str) -> Option<&[usize]> {
        self.entries.get(name).map(|e| e.shape.as_slice())
    }

    /// The stored element type of a tensor.
    pub fn dtype(&self, name: &str) -> Option<StoredDType> {
        self.entries.get(name).map(|e| e.dtype.into())
    }

    /// All tensor names, sorted.
    pub fn names(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self.entries.keys().map(String::as_str).collect();
        v.sort_unstable();
        v
    }

    fn entry(&self, name: &str) -> Result<&Entry, Error> {
        self.entries.get(name).ok_or_else(|| Error::Missing {
            name: name.to_string(),
            files: self.files_display(),
        })
    }

    /// A float tensor as f32 values (converted from its stored dtype), with its shape.
    pub fn get_f32(&self, name: &str) -> Result<(Vec<f32>, Vec<usize>), Error> {
        let e = self.entry(name)?;
        let shard = &self.shards[e.file];
        let bytes = &shard.map[e.start..e.end];
        let values: Vec<f32> = match e.dtype {
            Dtype::F32 => bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            Dtype::BF16 => bytes
                .chunks_exact(2)
                .map(|c| half::bf16::from_bits(u16::from_le_bytes([c[0], c[1]])).to_f32())
                .collect(),
            Dtype::F16 => bytes
                .chunks_exact(2)
                .map(|c| half::f16::from_bits(u16::from_le_bytes([c[0], c[1]])).to_f32())
                .collect(),
            Dtype::F64 => bytes
                .chunks_exact(8)
                .map(|c| {
                    let mut b = [0u8; 8];
                    b.copy_from_slice(c);
                    f64::from_le_bytes(b) as f32
                })
                .collect(),
            other => {
                return Err(Error::DType {
                    name: name.to_string(),
                    path: shard.path.clone(),
                    dtype: format!("{other:?}"),
                });
            }
        };
        if let Some(pb) = &self.progress {
            pb.inc((e.end - e.start) as u64);
        }
        self.used.borrow_mut().insert(name.to_string());
        Ok((values, e.shape.clone()))
    }

    /// An integer tensor (i64/i32/u8/bool stored) as i64 values, with its shape.
    pub fn get_i64(&self, name: &str) -> Result<(Vec<i64>, Vec<usize>), Error> {
        let e = self.entry(name)?;
        let shard = &self.shards[e.file];
        let bytes = &shard.map[e.start..e.end];
        let values: Vec<i64> = match e.dtype {
            Dtype::I64 => bytes
                .chunks_exact(8)
                .map(|c| {
                    let mut b = [0u8; 8];
                    b.copy_from_slice(c);
                    i64::from_le_bytes(b)
                })
                .collect(),
            Dtype::I32 => bytes
                .chunks_exact(4)
                .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as i64)
                .collect(),
            Dtype::U8 | Dtype::BOOL => bytes.iter().map(|&b| b as i64).collect(),
            other => {
                return Err(Error::DType {
                    name: name.to_string(),
                    path: shard.path.clone(),
                    dtype: format!("{other:?} (expected an integer tensor)"),
                });
            }
        };
        self.used.borrow_mut().insert(name.to_string());
        Ok((values, e.shape.clone()))
    }

    /// A float tensor with the expected shape, on `device`, in the backend's float type.
    pub fn get<B: Backend, const D: usize>(
        &self,
        name: &str,
        shape: [usize; D],
        device: &B::Device,
    ) -> Result<Tensor<B, D>, Error> {
        if self.synthetic {
            use burn::tensor::Distribution;
            let fan_in: usize = shape.iter().skip(1).product::<usize>().max(1);
            let dist = if D == 1 && name.contains("norm") {
                Distribution::Normal(1.0, 0.05)
            } else if D == 1 {
                Distribution::Normal(0.0, 0.05)
            } else {
                Distribution::Normal(0.0, 1.0 / (fan_in as f64).sqrt())
            };
            return Ok(Tensor::random(shape, dist, device));
        }
        let e = self.entry(name)?;
        if e.shape.as_slice() != shape.as_slice() {
            return Err(Error::Shape {
                name: name.to_string(),
                path: self.shards[e.file].path.clone(),
                found: e.shape.clone(),
                expected: shape.to_vec(),
            });
        }
        Ok(Tensor::from_data(self.tensor_data(name)?, device))
    }

    /// A float tensor with whatever rank-`D` shape the file has.
    pub fn get_any<B: Backend, const D: usize>(
        &self,
        name: &str,
        device: &B::Device,
    ) -> Result<Tensor<B, D>, Error> {
        let e = self.entry(name)?;
        if e.shape.len() != D {
            return Err(Error::Shape {
                name: name.to_string(),
                path: self.shards[e.file].path.clone(),
                found: e.shape.clone(),
                expected: vec![0; D],
            });
        }
        Ok(Tensor::from_data(self.tensor_data(name)?, device))
    }

    /// The stored bytes as `TensorData` in their own dtype (f32, bf16, f16), so that the backend
    /// converts once to its float type — a bf16 checkpoint on a bf16 backend is never widened to
    /// f32 on the way. f64 is narrowed to f32 here.
    fn tensor_data(&self, name: &str) -> Result<TensorData, Error> {
        let e = self.entry(name)?;
        let dtype = match e.dtype {
            Dtype::F32 => burn::tensor::DType::F32,
            Dtype::BF16 => burn::tensor::DType::BF16,
            Dtype::F16 => burn::tensor::DType::F16,
            _ => {
                let (values, shape) = self.get_f32(name)?;
                return Ok(TensorData::new(values, shape));
            }
        };
        let bytes = self.shards[e.file].map[e.start..e.end].to_vec();
        if let Some(pb) = &self.progress {
            pb.inc((e.end - e.start) as u64);
        }
        self.used.borrow_mut().insert(name.to_string());
        Ok(TensorData::from_bytes_vec(bytes, e.shape.clone(), dtype))
    }

    /// A `burn::nn::Linear` from PyTorch's `prefix.weight` `[out, in]` (+ `prefix.bias` `[out]`).
    /// burn stores the weight as [in, out], so it is transposed once here.
    pub fn linear<B: Backend>(
        &self,
        prefix: &str,
        d_in: usize,
        d_out: usize,
        bias: bool,
        device: &B::Device,
    ) -> Result<Linear<B>, Error> {
        let w: Tensor<B, 2> = self.get(&format!("{prefix}.weight"), [d_out, d_in], device)?;
        let b = if bias {
            Some(Param::from_tensor(self.get::<B, 1>(
                &format!("{prefix}.bias"),
                [d_out],
                device,
            )?))
        } else {
            None
        };
        Ok(Linear {
            weight: Param::from_tensor(w.transpose()),
            bias: b,
        })
    }

    /// Names that were never read and do not start with one of `ignored_prefixes`.
    pub fn unused(&self, ignored_prefixes: &[&str]) -> Vec<String> {
        let used = self.used.borrow();
        let mut v: Vec<String> = self
            .entries
            .keys()
            .filter(|k| !used.contains(*k))
            .filter(|k| !ignored_prefixes.iter().any(|p| k.starts_with(p)))
            .cloned()
            .collect();
        v.sort();
        v
    }

    /// Strict loading: error if the checkpoint holds tensors the model never read (other than
    /// those under `ignored_prefixes`, e.g. an unused vision tower). Also ends the progress bar.
    pub fn check_all_used(&self, ignored_prefixes: &[&str]) -> Result<(), Error> {
        if let Some(pb) = &self.progress {
            pb.finish_and_clear();
        }
        let unused = self.unused(ignored_prefixes);
        if unused.is_empty() {
            return Ok(());
        }
        let mut names = unused
            .iter()
            .take(20)
            .cloned()
            .collect::<Vec<_>>()
            .join(", ");
        if unused.len() > 20 {
            names.push_str(", …");
        }
        Err(Error::Unexpected {
            count: unused.len(),
            names: format!("{names} (in {})", self.files_display()),
        })
    }
}
