//! torch's random generators on the CPU: the same seeded noise as `torch.randn` and diffusers'
//! `randn_tensor` with a `torch.Generator(device="cpu")` (bit for bit) or a
//! `torch.Generator(device="cuda")` (to a few f32 ulps).
//!
//! * [`Generator`]: MT19937 seeded as torch seeds it (low 32 bits of the seed), f32 and f64
//!   uniforms, and `torch.randn` in f32, bf16 and f64, including the scalar path for fewer than 16
//!   values with its cached second value, and `normal_fill`'s blocks of 16 with the overlapping tail.
//! * [`CudaGenerator`]: Philox4x32-10 as curand runs it ([`philox4x32_10`]), `curand_normal4` /
//!   `curand_normal2_double`, and PyTorch's grid-stride launch layout, which depends on the GPU's
//!   SM count for large draws ([`CudaPlatform`]); f32, bf16, f16, f64.
//! * [`TorchGenerator`]: either of the two, chosen at run time ([`GeneratorDevice`]).
//! * [`randn_tensor`]: diffusers' helper (one stream, or one draw per batch item for a list of
//!   generators), e.g. for Qwen-Image's initial latents `(B, 1, 16, h, w)`.
//!
//! # Which torch this reproduces
//!
//! **torch 2.15 on x86-64 Linux** (the official wheel), checked bit for bit against it by this
//! crate's tests. Its kernel there is the AVX2 `NormalFill16<float>` (also used on AVX-512 CPUs),
//! whose Cephes `log`/`sincos` polynomials and fused multiply-adds this crate repeats with
//! [`f32::mul_add`]; the result does not depend on the CPU this crate runs on, nor on thread counts.
//! Other builds draw the same uniforms but differ in the last bits or more:
//!
//! * aarch64 and macOS builds use a generic kernel (libm `logf`/`cosf`/`sinf`, angle in f64);
//!   Windows builds come from another compiler. Their f32 values differ in the last ulp or so.
//! * torch before the April 2026 change (pytorch PR #179834, e.g. 2.7.1) computed bf16 noise in
//!   bf16 from 8-bit uniforms: entirely different bf16 values.
//! * f64 and the fewer-than-16 path use libm's f64 `log`/`log1p`/`sin`/`cos`; they match where
//!   Rust links the same libm as torch (glibc on Linux).
//!
//! The CUDA generator follows PyTorch's CUDA sources (`DistributionTemplates.h`,
//! `CUDAGeneratorImpl.cpp`) and curand's device headers; it cannot be bit-exact with a GPU
//! because curand takes sine and cosine from the GPU's approximate `__sincosf` (see
//! [`CudaGenerator`] and the README for the measured agreement).
//!
//! ```
//! use torch_rng::Generator;
//!
//! // torch.randn(3, generator=torch.Generator().manual_seed(0))
//! let x = Generator::new(0).randn_f32(3);
//! assert_eq!(x, [1.5409961, -0.2934289, -2.1787894]);
//! ```

mod cuda;
mod diffusers;
mod error;
mod generator;
mod mt19937;
mod normal_fill;
mod philox;
mod torch_generator;

pub use cuda::{BLOCK_SIZE, CudaGenerator, CudaPlatform, Launch};
pub use diffusers::randn_tensor;
pub use error::Error;
pub use generator::{Element, Generator};
pub use half::{bf16, f16};
pub use philox::philox4x32_10;
pub use torch_generator::{GeneratorDevice, NoiseGenerator, TorchGenerator};

/// Compiles and runs the README's example.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
