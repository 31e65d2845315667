//! `cargo xtask randn`: torch's seeded noise as a safetensors file, for porters checking their own
//! `torch.randn` against ours (CPU generator bit for bit, CUDA generator to a few ulps).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::ValueEnum;
use safetensors::Dtype;
use torch_rng::{CudaGenerator, CudaPlatform, Generator, GeneratorDevice, bf16, f16};

/// Refuse draws beyond this many values (8 GiB in f32): a typo in `--shape` should be an error,
/// not an attempt to allocate terabytes.
const MAX_VALUES: u64 = 1 << 31;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Which torch.Generator to imitate: `cpu` (MT19937, bit for bit) or `cuda` (Philox, GPU layout).
    #[arg(long, value_enum)]
    pub generator: GeneratorArg,
    /// The seed given to `manual_seed`.
    #[arg(long)]
    pub seed: u64,
    /// Tensor shape, comma-separated, e.g. `1,16,1,128,128`.
    #[arg(long, value_delimiter = ',', num_args = 1.., required = true)]
    pub shape: Vec<u64>,
    /// Element type drawn (as `torch.randn(..., dtype=...)`; f16 only on the CUDA generator).
    #[arg(long, value_enum, default_value_t = DtypeArg::F32)]
    pub dtype: DtypeArg,
    /// GPU layout for `--generator cuda` (decides draws larger than one grid): h100, h200,
    /// b200 or 5090, or any card as `SMSxTHREADS` (its SM count and max threads per SM, e.g.
    /// `114x2048` for an H100 PCIe). Default h100.
    #[arg(long, value_parser = parse_platform)]
    pub platform: Option<CudaPlatform>,
    /// Successive draws of `--shape` from the one generator (as calling `torch.randn` that many
    /// times); with more than one, `sample` is `[calls, *shape]`, row k the k-th call.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=1024))]
    pub calls: u64,
    /// Output safetensors file; the tensor is `sample`.
    #[arg(long)]
    pub output: PathBuf,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum GeneratorArg {
    Cpu,
    Cuda,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DtypeArg {
    F32,
    Bf16,
    F16,
    F64,
}

fn parse_platform(s: &str) -> Result<CudaPlatform, String> {
    // `SMSxTHREADS`: a card without a preset, as torch.cuda.get_device_properties reports it.
    if let Some((sms, threads)) = s.trim().to_ascii_lowercase().split_once('x')
        && let (Ok(sms), Ok(threads)) = (sms.parse::<u32>(), threads.parse::<u32>())
    {
        return CudaPlatform::new(sms, threads).map_err(|e| e.to_string());
    }
    s.parse().map_err(|e: torch_rng::Error| e.to_string())
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let numel = args
        .shape
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d))
        .filter(|&n| n.saturating_mul(args.calls) <= MAX_VALUES)
        .with_context(|| {
            format!(
                "--shape {:?} × --calls {}: more than 2^31 values",
                args.shape, args.calls
            )
        })?;
    let n = usize::try_from(numel).context("--shape: too many values for this machine")?;
    let (bytes, dtype, label) = match args.generator {
        GeneratorArg::Cpu => {
            if args.platform.is_some() {
                bail!("--platform applies to --generator cuda only");
            }
            let mut g = Generator::new(args.seed);
            let c = args.calls;
            let (bytes, dtype) = match args.dtype {
                DtypeArg::F32 => (
                    successive(c, || le_bytes(&g.randn_f32(n), f32::to_le_bytes)),
                    Dtype::F32,
                ),
                DtypeArg::Bf16 => (
                    successive(c, || le_bytes(&g.randn_bf16(n), bf16::to_le_bytes)),
                    Dtype::BF16,
                ),
                DtypeArg::F64 => (
                    successive(c, || le_bytes(&g.randn_f64(n), f64::to_le_bytes)),
                    Dtype::F64,
                ),
                DtypeArg::F16 => bail!(
                    "--dtype f16 with --generator cpu: torch's CPU float16 path is not reproduced \
                     (use f32, bf16 or f64, or --generator cuda)"
                ),
            };
            (bytes, dtype, "cpu".to_owned())
        }
        GeneratorArg::Cuda => {
            let platform = args.platform.unwrap_or(CudaPlatform::H100);
            let mut g = CudaGenerator::new(args.seed, platform);
            let c = args.calls;
            let (bytes, dtype) = match args.dtype {
                DtypeArg::F32 => (
                    successive(c, || le_bytes(&g.randn_f32(n), f32::to_le_bytes)),
                    Dtype::F32,
                ),
                DtypeArg::Bf16 => (
                    successive(c, || le_bytes(&g.randn_bf16(n), bf16::to_le_bytes)),
                    Dtype::BF16,
                ),
                DtypeArg::F16 => (
                    successive(c, || le_bytes(&g.randn_f16(n), f16::to_le_bytes)),
                    Dtype::F16,
                ),
                DtypeArg::F64 => (
                    successive(c, || le_bytes(&g.randn_f64(n), f64::to_le_bytes)),
                    Dtype::F64,
                ),
            };
            (bytes, dtype, GeneratorDevice::Cuda(platform).to_string())
        }
    };
    let calls = (args.calls > 1).then_some(args.calls as usize);
    let shape: Vec<usize> = calls
        .into_iter()
        .chain(args.shape.iter().map(|&d| d as usize))
        .collect();
    let metadata = HashMap::from([
        ("generator".to_owned(), label.clone()),
        ("seed".to_owned(), args.seed.to_string()),
    ]);
    write_sample(&args.output, dtype, shape, &bytes, metadata)?;
    eprintln!(
        "wrote sample {:?} {dtype:?} ({label} generator, seed {}) to {}",
        args.shape,
        args.seed,
        args.output.display()
    );
    Ok(ExitCode::SUCCESS)
}

/// `calls` successive draws from one generator, concatenated (row k of `[calls, *shape]`).
fn successive(calls: u64, mut draw: impl FnMut() -> Vec<u8>) -> Vec<u8> {
    (0..calls).flat_map(|_| draw()).collect()
}

/// The values as safetensors stores them (little-endian).
fn le_bytes<T: Copy, const N: usize>(values: &[T], to_le: fn(T) -> [u8; N]) -> Vec<u8> {
    values.iter().flat_map(|&v| to_le(v)).collect()
}

/// Writes tensor `sample` beside `path` under a temporary name, then renames it into place.
fn write_sample(
    path: &Path,
    dtype: Dtype,
    shape: Vec<usize>,
    bytes: &[u8],
    metadata: HashMap<String, String>,
) -> anyhow::Result<()> {
    let view = safetensors::tensor::TensorView::new(dtype, shape, bytes)?;
    crate::util::write_safetensors(path, [("sample", view)], Some(metadata))
}
