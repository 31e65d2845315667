//! [`InitialLatents`]: where a generation's starting noise comes from, drawn as torch draws it
//! ([`torch_noise`]) or given exactly (a latents file, values in memory).

use std::path::{Path, PathBuf};

use burn::tensor::backend::Backend;
use burn::tensor::{DType, Element, Tensor, TensorData};
use torch_rng::{GeneratorDevice, TorchGenerator, bf16, randn_tensor};

use crate::error::Error;

/// Where the initial noise comes from.
#[derive(Debug, Clone)]
pub enum InitialLatents {
    /// torch-compatible CPU noise: what diffusers draws with `torch.Generator("cpu").manual_seed(seed)`.
    Seed(u64),
    /// torch-compatible noise from `torch.Generator(device).manual_seed(seed)`: the CUDA
    /// generator in a GPU's launch layout (what upstream's official GT and SGLang draw), or the
    /// CPU one (then the same as [`InitialLatents::Seed`]). Build it with
    /// [`InitialLatents::seeded`].
    Seeded(u64, GeneratorDevice),
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

    /// A seed on `generator`: [`InitialLatents::Seed`] for the CPU generator (one spelling of
    /// it), [`InitialLatents::Seeded`] otherwise.
    pub fn seeded(seed: u64, generator: GeneratorDevice) -> Self {
        match generator {
            GeneratorDevice::Cpu => Self::Seed(seed),
            g => Self::Seeded(seed, g),
        }
    }

    /// The seed and the generator it is drawn on (the CPU one for [`InitialLatents::Seed`]);
    /// `None` for given latents.
    pub(crate) fn seed(&self) -> Option<(u64, GeneratorDevice)> {
        match self {
            Self::Seed(s) => Some((*s, GeneratorDevice::Cpu)),
            Self::Seeded(s, g) => Some((*s, *g)),
            Self::File(_) | Self::Packed(..) => None,
        }
    }

    /// The noise generator, for reports and GT manifests: `"torch-cpu"` or `"torch-cuda:h100"`
    /// (the CUDA layout's platform) for a seed; `None` for given latents.
    pub fn generator(&self) -> Option<String> {
        match self {
            Self::Seed(_) => Some("torch-cpu".into()),
            Self::Seeded(_, g) => Some(format!("torch-{g}")),
            Self::File(_) | Self::Packed(..) => None,
        }
    }

    /// A short description for reports and GT manifests (`"generator": "torch-cpu"` for seeds).
    pub fn describe(&self) -> String {
        match self {
            Self::Seed(s) => format!("seed {s} (generator torch-cpu)"),
            Self::Seeded(s, g) => format!("seed {s} (generator torch-{g})"),
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

/// Latents given exactly (a file or values in memory) as a tensor on `device`, checked to have
/// the packed shape `expected`; `needs` names what needs that shape in the error ("this size
/// needs"). A seed is refused: its noise is drawn, not given.
pub(crate) fn given_latents<B: Backend>(
    source: &InitialLatents,
    expected: [usize; 3],
    needs: &str,
    device: &B::Device,
) -> Result<Tensor<B, 3>, Error> {
    let (values, shape, path) = match source {
        InitialLatents::File(path) => {
            let (v, shape) = load_latents_file(path)?;
            (v, shape, Some(path))
        }
        InitialLatents::Packed(v, shape) => (v.clone(), *shape, None),
        InitialLatents::Seed(_) | InitialLatents::Seeded(..) => {
            return Err(Error::Request(format!(
                "{} gives no latents to read",
                source.describe()
            )));
        }
    };
    if shape != expected {
        let reason = format!("latents have shape {shape:?}, but {needs} {expected:?} (packed)");
        return Err(match path {
            Some(p) => Error::Latents {
                path: p.clone(),
                reason,
            },
            None => Error::Request(reason),
        });
    }
    Ok(Tensor::from_data(TensorData::new(values, shape), device))
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
    Ok(
        torch_noise::<B>(seed, GeneratorDevice::Cpu, [1, 1, z, h, w], device)?
            .reshape([1, z, 1, h, w]),
    )
}

/// One `randn_tensor(shape, generator=torch.Generator(device).manual_seed(seed), dtype=…)` as
/// diffusers' `prepare_latents` calls it, in `shape` (`(1, 1, z, h, w)` for text-to-image, Edit
/// and Edit-Plus; `(1, layers + 1, z, h, w)` for Layered). The dtype is the pipeline's, as
/// diffusers passes `prompt_embeds.dtype`: bf16 on a bf16 backend (drawn as bf16, which for the
/// CPU generator is not f32 rounded, and for the CUDA one is), f32 otherwise.
pub fn torch_noise<B: Backend>(
    seed: u64,
    generator: GeneratorDevice,
    shape: [usize; 5],
    device: &B::Device,
) -> Result<Tensor<B, 5>, Error> {
    let mut generators = [TorchGenerator::new(seed, generator)];
    let data = match <B::FloatElem as Element>::dtype() {
        DType::BF16 => {
            let v: Vec<bf16> = randn_tensor(&shape, &mut generators)?;
            TensorData::new(v, shape)
        }
        _ => {
            let v: Vec<f32> = randn_tensor(&shape, &mut generators)?;
            TensorData::new(v, shape)
        }
    };
    Ok(Tensor::from_data(data, device))
}

#[cfg(test)]
mod tests {
    use burn::backend::Flex;
    use torch_rng::{CudaGenerator, CudaPlatform, Generator};

    use super::*;

    #[test]
    fn noise_is_torch_randn_of_the_chosen_generator_in_diffusers_shape() {
        let dev = Default::default();
        let cuda = GeneratorDevice::Cuda(CudaPlatform::B200);
        let got = torch_noise::<Flex>(42, cuda, [1, 2, 16, 6, 10], &dev).unwrap();
        assert_eq!(got.dims(), [1, 2, 16, 6, 10]);
        let want = CudaGenerator::new(42, CudaPlatform::B200).randn_f32(2 * 16 * 6 * 10);
        assert_eq!(got.into_data().to_vec::<f32>().unwrap(), want);

        let cpu = seeded_latents::<Flex>(7, 16, 6, 10, &dev).unwrap();
        assert_eq!(cpu.dims(), [1, 16, 1, 6, 10]);
        let want = Generator::new(7).randn_f32(16 * 6 * 10);
        assert_eq!(cpu.into_data().to_vec::<f32>().unwrap(), want);
    }

    #[test]
    fn a_seed_names_its_generator() {
        let cpu = InitialLatents::seeded(5, GeneratorDevice::Cpu);
        assert!(matches!(cpu, InitialLatents::Seed(5)));
        assert_eq!(cpu.generator().as_deref(), Some("torch-cpu"));
        let cuda = InitialLatents::seeded(5, GeneratorDevice::Cuda(CudaPlatform::RTX_5090));
        assert_eq!(cuda.generator().as_deref(), Some("torch-cuda:5090"));
        assert_eq!(cuda.describe(), "seed 5 (generator torch-cuda:5090)");
        assert_eq!(InitialLatents::File("x".into()).generator(), None);
    }
}
