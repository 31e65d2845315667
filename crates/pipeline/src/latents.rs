use std::path::{Path, PathBuf};

use burn::tensor::backend::Backend;
use burn::tensor::{DType, Element, Tensor, TensorData};
use torch_rng::{Generator, bf16, randn_tensor};

use crate::Error;

/// Where the initial noise comes from.
#[derive(Debug, Clone)]
pub enum InitialLatents {
    /// torch-compatible CPU noise: what diffusers draws with `torch.Generator("cpu").manual_seed(seed)`.
    Seed(u64),
    /// Exact packed latents `[1, N, 4·z]` from a safetensors file (key `latents`).
    File(PathBuf),
    /// Exact packed latents given in memory: values (row-major) and shape `[1, N, 4·z]`.
    Packed(Vec<f32>, [usize; 3]),
}

impl InitialLatents {
    /// What a case or the CLI asks for: a latents file when given (it wins), else the seed, else
    /// seed 0.
    pub fn from_options(latents: Option<&Path>, seed: Option<u64>) -> Self {
        match (latents, seed) {
            (Some(p), _) => Self::File(p.to_path_buf()),
            (None, Some(s)) => Self::Seed(s),
            (None, None) => Self::Seed(0),
        }
    }

    /// The noise generator, for reports and GT manifests: `"torch-cpu"` for a seed.
    pub fn generator(&self) -> Option<&'static str> {
        matches!(self, Self::Seed(_)).then_some("torch-cpu")
    }

    /// A short description for reports and GT manifests (`"generator": "torch-cpu"` for seeds).
    pub fn describe(&self) -> String {
        match self {
            Self::Seed(s) => format!("seed {s} (generator torch-cpu)"),
            Self::File(p) => format!("latents file {}", p.display()),
            Self::Packed(..) => "latents given in memory".into(),
        }
    }
}

/// Read packed latents `[1, N, C]` (key `latents`, any float dtype) from a safetensors file.
pub fn load_latents_file(path: &Path) -> Result<(Vec<f32>, [usize; 3]), Error> {
    let w = weights::Weights::open(path).map_err(|e| Error::Latents {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    let (values, shape) = w.get_f32("latents").map_err(|e| Error::Latents {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    match shape.as_slice() {
        &[b, n, c] => Ok((values, [b, n, c])),
        other => Err(Error::Latents {
            path: path.to_path_buf(),
            reason: format!("`latents` has shape {other:?}, expected [1, N, 4·z]"),
        }),
    }
}

/// diffusers' `prepare_latents` for a seed: `randn_tensor((1, 1, z, h, w), generator, dtype)` on a
/// CPU generator, drawn directly in the pipeline dtype (bf16 draws differ from f32 draws rounded),
/// returned unpacked as `[1, z, 1, h, w]` (the same memory order: the frame axis has size 1).
pub fn seeded_latents<B: Backend>(
    seed: u64,
    z: usize,
    h: usize,
    w: usize,
    device: &B::Device,
) -> Result<Tensor<B, 5>, Error> {
    let shape = [1, 1, z, h, w];
    let mut generators = [Generator::new(seed)];
    let data = match <B::FloatElem as Element>::dtype() {
        DType::BF16 => {
            let v: Vec<bf16> = randn_tensor(&shape, &mut generators)?;
            TensorData::new(v, [1, z, 1, h, w])
        }
        _ => {
            let v: Vec<f32> = randn_tensor(&shape, &mut generators)?;
            TensorData::new(v, [1, z, 1, h, w])
        }
    };
    Ok(Tensor::from_data(data, device))
}
