//! Backend choice for the commands that run a model: burn's `Flex` (pure Rust) on the CPU in f32,
//! `Cuda` (with fusion and autotune) in f32 or bf16 when built with `--features cuda`, and `Wgpu`
//! (the same burn-cubecl kernels, fusion and autotune, on any Vulkan driver) in f32 when built
//! with `--features wgpu`.
//!
//! Model crates are generic over the backend; this is the one place that names concrete types.
//! Each concrete type instantiates every model again, so the set is kept minimal (CPU bf16 is not
//! offered: it would double CPU build times for a configuration nobody runs).

use anyhow::bail;

/// The CPU backend: what `--device cpu` runs, and where the CLIP tower of the metrics always
/// runs (it is small, and a score must not depend on the generation device).
pub type Cpu = burn::backend::Flex<f32>;

/// Where to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Device {
    Cpu,
    Cuda,
    /// burn's wgpu backend (Vulkan on Linux; Mesa's software lavapipe in CI). f32 only: WGSL has
    /// no bf16. It exists to run the burn-cubecl code path CUDA shares before a GPU is at hand.
    Wgpu,
}

/// The float type of weights and activations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precision {
    F32,
    Bf16,
}

/// Parse `--device` and `--dtype`, rejecting combinations this binary cannot run.
pub fn parse(device: &str, dtype: &str) -> anyhow::Result<(Device, Precision)> {
    let d = match device.to_ascii_lowercase().as_str() {
        "cpu" => Device::Cpu,
        "cuda" | "gpu" => Device::Cuda,
        "wgpu" | "vulkan" => Device::Wgpu,
        other => bail!("unknown --device `{other}` (expected cpu, cuda or wgpu)"),
    };
    let p = match dtype.to_ascii_lowercase().as_str() {
        "f32" | "fp32" | "float32" => Precision::F32,
        "bf16" | "bfloat16" => Precision::Bf16,
        other => bail!("unknown --dtype `{other}` (expected f32 or bf16)"),
    };
    if d == Device::Cpu && p == Precision::Bf16 {
        bail!("--dtype bf16 runs on CUDA only; use --dtype f32 on the CPU");
    }
    if d == Device::Wgpu && p == Precision::Bf16 {
        bail!("--dtype bf16 runs on CUDA only; use --dtype f32 with --device wgpu");
    }
    if d == Device::Wgpu && !cfg!(feature = "wgpu") {
        bail!(
            "this binary was built without wgpu support: rebuild with `--features wgpu` \
             (see docs/gpu.md)"
        );
    }
    if d == Device::Cuda && !cfg!(feature = "cuda") {
        bail!(
            "this binary was built without CUDA support: rebuild with \
             `CUDARC_CUDA_VERSION=13000 cargo build --release --features cuda` (see docs/gpu.md)"
        );
    }
    Ok((d, p))
}

/// What a caught panic said (its `String` or `&str` payload).
#[cfg(any(feature = "cuda", feature = "wgpu"))]
fn panic_message(payload: &(dyn std::any::Any + Send)) -> &str {
    payload
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| payload.downcast_ref::<&str>().copied())
        .unwrap_or("unknown panic")
}

/// Run CUDA work, turning a panic of the CUDA runtime (no driver, no device, no CUDA headers for
/// NVRTC) into an error that says what to check, instead of a crash with a bare `RecvError`.
#[cfg(feature = "cuda")]
pub fn cuda_guard<T>(f: impl FnOnce() -> anyhow::Result<T>) -> anyhow::Result<T> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(p) => {
            let what = panic_message(p.as_ref());
            anyhow::bail!(
                "the CUDA backend failed ({what}). Check that an NVIDIA driver and GPU are present \
                 (nvidia-smi), and that the CUDA headers are found for NVRTC (CUDA_PATH, \
                 /usr/local/cuda or nvcc on PATH); see docs/gpu.md"
            )
        }
    }
}

/// Run wgpu work, turning a panic of the wgpu runtime (no Vulkan driver or adapter, a shader the
/// driver rejects) into an error that says what to check.
#[cfg(feature = "wgpu")]
pub fn wgpu_guard<T>(f: impl FnOnce() -> anyhow::Result<T>) -> anyhow::Result<T> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(p) => {
            let what = panic_message(p.as_ref());
            anyhow::bail!(
                "the wgpu backend failed ({what}). Check that a Vulkan driver is installed \
                 (vulkaninfo; on Debian `mesa-vulkan-drivers` gives the software lavapipe); \
                 see docs/gpu.md"
            )
        }
    }
}

/// Run `$body` with `$B` bound to the concrete backend type and `$dev` to its device.
///
/// ```ignore
/// with_backend!(device, precision, |B, dev| run_model::<B>(&dev))
/// ```
#[macro_export]
macro_rules! with_backend {
    ($device:expr, $precision:expr, |$B:ident, $dev:ident| $body:expr) => {{
        #[allow(unreachable_patterns)]
        match ($device, $precision) {
            ($crate::backend::Device::Cpu, _) => {
                type $B = $crate::backend::Cpu;
                let $dev: burn::tensor::Device<$B> = Default::default();
                $body
            }
            #[cfg(feature = "cuda")]
            ($crate::backend::Device::Cuda, $crate::backend::Precision::F32) => {
                type $B = burn::backend::Cuda<f32>;
                $crate::backend::cuda_guard(|| {
                    let $dev: burn::tensor::Device<$B> = Default::default();
                    $body
                })
            }
            #[cfg(feature = "cuda")]
            ($crate::backend::Device::Cuda, $crate::backend::Precision::Bf16) => {
                type $B = burn::backend::Cuda<half::bf16>;
                $crate::backend::cuda_guard(|| {
                    let $dev: burn::tensor::Device<$B> = Default::default();
                    $body
                })
            }
            #[cfg(feature = "wgpu")]
            ($crate::backend::Device::Wgpu, $crate::backend::Precision::F32) => {
                type $B = burn::backend::Wgpu<f32>;
                $crate::backend::wgpu_guard(|| {
                    let $dev: burn::tensor::Device<$B> = Default::default();
                    $body
                })
            }
            _ => anyhow::bail!(
                "this binary was built without support for that device (see docs/gpu.md)"
            ),
        }
    }};
}
