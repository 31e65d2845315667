//! Either generator behind one type, for callers that take the device from a case file or flag.

use std::fmt;
use std::str::FromStr;

use crate::cuda::{CudaGenerator, CudaPlatform};
use crate::error::Error;
use crate::generator::{Element, Generator};

/// Which `torch.Generator` to imitate: `cpu`, or `cuda` laid out like a given GPU.
///
/// Parses from `cpu`, `cuda` (an H100 SXM layout) or `cuda:<platform>` with a
/// [`CudaPlatform`] preset name (`cuda:h200`, `cuda:b200`, `cuda:5090`).
///
/// ```
/// use torch_rng::{CudaPlatform, GeneratorDevice};
///
/// assert_eq!("cpu".parse::<GeneratorDevice>()?, GeneratorDevice::Cpu);
/// assert_eq!("cuda".parse::<GeneratorDevice>()?, GeneratorDevice::Cuda(CudaPlatform::H100));
/// assert_eq!("cuda:b200".parse::<GeneratorDevice>()?, GeneratorDevice::Cuda(CudaPlatform::B200));
/// assert!("tpu".parse::<GeneratorDevice>().is_err());
/// # Ok::<(), torch_rng::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GeneratorDevice {
    /// `torch.Generator("cpu")`: MT19937, the same on every x86-64 Linux machine.
    Cpu,
    /// `torch.Generator("cuda")` on a GPU with this layout.
    Cuda(CudaPlatform),
}

impl GeneratorDevice {
    /// `"cpu"` or `"cuda"`, torch's device type.
    pub fn device_type(&self) -> &'static str {
        match self {
            Self::Cpu => "cpu",
            Self::Cuda(_) => "cuda",
        }
    }
}

impl FromStr for GeneratorDevice {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        let unknown = || Error::UnknownGenerator { name: s.to_owned() };
        let lower = s.trim().to_ascii_lowercase();
        match lower.split_once(':') {
            None if lower == "cpu" => Ok(Self::Cpu),
            None if lower == "cuda" => Ok(Self::Cuda(CudaPlatform::H100)),
            Some(("cuda", platform)) => Ok(Self::Cuda(platform.parse()?)),
            _ => Err(unknown()),
        }
    }
}

impl fmt::Display for GeneratorDevice {
    /// `cpu`, or `cuda` followed by the platform's preset name when it has one
    /// (`cuda:h100`; `h200` prints as `h100`, its identical layout), else its numbers.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Cpu => f.write_str("cpu"),
            Self::Cuda(p) => match CudaPlatform::PRESETS.iter().find(|(_, q)| q == p) {
                Some((name, _)) => write!(f, "cuda:{name}"),
                None => write!(
                    f,
                    "cuda({} SMs x {} threads)",
                    p.sm_count(),
                    p.max_threads_per_sm()
                ),
            },
        }
    }
}

/// A seeded `torch.Generator` on either device: what diffusers' `randn_tensor` is handed.
///
/// ```
/// use torch_rng::{TorchGenerator, bf16, randn_tensor};
///
/// // generator = torch.Generator("cuda").manual_seed(42), as SGLang's GT uses:
/// let mut generators = [TorchGenerator::new(42, "cuda".parse()?)];
/// let latents: Vec<bf16> = randn_tensor(&[1, 1, 16, 128, 128], &mut generators)?;
/// assert_eq!(latents.len(), 262_144);
/// # Ok::<(), torch_rng::Error>(())
/// ```
#[derive(Debug, Clone)]
// The CPU variant carries MT19937's 2.5 KB state inline: one generator per image, not worth a box
// that every match would have to see through.
#[allow(clippy::large_enum_variant)]
pub enum TorchGenerator {
    /// `torch.Generator("cpu")`.
    Cpu(Generator),
    /// `torch.Generator("cuda")`.
    Cuda(CudaGenerator),
}

impl TorchGenerator {
    /// `torch.Generator(device).manual_seed(seed)`.
    pub fn new(seed: u64, device: GeneratorDevice) -> Self {
        match device {
            GeneratorDevice::Cpu => Self::Cpu(Generator::new(seed)),
            GeneratorDevice::Cuda(platform) => Self::Cuda(CudaGenerator::new(seed, platform)),
        }
    }

    /// The device this generator imitates.
    pub fn device(&self) -> GeneratorDevice {
        match self {
            Self::Cpu(_) => GeneratorDevice::Cpu,
            Self::Cuda(g) => GeneratorDevice::Cuda(g.platform()),
        }
    }

    /// The seed last given (`Generator.initial_seed()`).
    pub fn initial_seed(&self) -> u64 {
        match self {
            Self::Cpu(g) => g.initial_seed(),
            Self::Cuda(g) => g.initial_seed(),
        }
    }

    /// `torch.randn(n, generator=g, dtype=T)` on the generator's device.
    pub fn randn<T: Element>(&mut self, n: usize) -> Vec<T> {
        match self {
            Self::Cpu(g) => g.randn(n),
            Self::Cuda(g) => g.randn(n),
        }
    }
}

impl From<Generator> for TorchGenerator {
    fn from(g: Generator) -> Self {
        Self::Cpu(g)
    }
}

impl From<CudaGenerator> for TorchGenerator {
    fn from(g: CudaGenerator) -> Self {
        Self::Cuda(g)
    }
}

/// A generator [`randn_tensor`](crate::randn_tensor) can draw from: [`Generator`] (CPU),
/// [`CudaGenerator`] or [`TorchGenerator`] (either).
pub trait NoiseGenerator: sealed::Sealed {
    /// `torch.randn(n, generator=self, dtype=T)`.
    fn draw<T: Element>(&mut self, n: usize) -> Vec<T>;
}

impl NoiseGenerator for Generator {
    fn draw<T: Element>(&mut self, n: usize) -> Vec<T> {
        self.randn(n)
    }
}

impl NoiseGenerator for CudaGenerator {
    fn draw<T: Element>(&mut self, n: usize) -> Vec<T> {
        self.randn(n)
    }
}

impl NoiseGenerator for TorchGenerator {
    fn draw<T: Element>(&mut self, n: usize) -> Vec<T> {
        self.randn(n)
    }
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for crate::Generator {}
    impl Sealed for crate::CudaGenerator {}
    impl Sealed for crate::TorchGenerator {}
}
