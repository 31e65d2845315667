//! `torch.Generator(device="cuda")`: Philox4x32-10 through curand, in PyTorch's launch layout,
//! computed on the CPU.

use std::ops::Range;
use std::str::FromStr;

use half::{bf16, f16};

use crate::error::Error;
use crate::philox::CurandPhilox;

/// Threads per block of PyTorch's distribution kernels (`block_size_bound`).
pub const BLOCK_SIZE: u32 = 256;

/// Words the philox offset advances per thread and loop iteration: PyTorch reserves 4 (one
/// `curand4`, the most any curand call consumes) even for the 2-value double path.
const OFFSETS_PER_CALL: u64 = 4;

/// The two properties of a CUDA device that decide where each random value lands: its number of
/// streaming multiprocessors and the most resident threads one of them takes.
///
/// PyTorch caps the grid of its random kernels at `sm_count × (max_threads_per_sm / 256)`
/// blocks. Draws of up to `256 × that cap` values are the same on every GPU; larger draws wrap
/// around the grid and differ from one GPU model to another.
///
/// ```
/// use torch_rng::CudaPlatform;
///
/// let h100: CudaPlatform = "h100".parse()?;
/// assert_eq!((h100.sm_count(), h100.max_threads_per_sm()), (132, 2048));
/// assert_eq!(h100.max_grid(), 1056);
/// // A 1024x1024 Qwen-Image latent (262144 values) needs 1024 blocks: under the cap.
/// assert_eq!(h100.launch(262_144, 4).grid, 1024);
/// # Ok::<(), torch_rng::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CudaPlatform {
    sm_count: u32,
    max_threads_per_sm: u32,
}

impl CudaPlatform {
    /// NVIDIA H100 SXM (132 SMs, 2048 threads per SM). The PCIe card has 114 SMs: use
    /// [`CudaPlatform::new`] for it.
    pub const H100: Self = Self::preset(132, 2048);
    /// NVIDIA H200 (132 SMs, 2048 threads per SM): the same layout as the H100 SXM.
    pub const H200: Self = Self::preset(132, 2048);
    /// NVIDIA B200 (148 SMs, 2048 threads per SM).
    pub const B200: Self = Self::preset(148, 2048);
    /// NVIDIA GeForce RTX 5090 (170 SMs, 1536 threads per SM).
    pub const RTX_5090: Self = Self::preset(170, 1536);

    /// The preset names [`FromStr`] accepts, with their platforms.
    pub const PRESETS: [(&'static str, Self); 4] = [
        ("h100", Self::H100),
        ("h200", Self::H200),
        ("b200", Self::B200),
        ("5090", Self::RTX_5090),
    ];

    const fn preset(sm_count: u32, max_threads_per_sm: u32) -> Self {
        Self {
            sm_count,
            max_threads_per_sm,
        }
    }

    /// Any GPU, from `torch.cuda.get_device_properties(d).multi_processor_count` and
    /// `.max_threads_per_multi_processor`.
    ///
    /// Fails when no block of 256 threads fits on an SM (PyTorch would launch an empty grid)
    /// or when the grid cap does not fit in 32 bits.
    pub fn new(sm_count: u32, max_threads_per_sm: u32) -> Result<Self, Error> {
        let blocks_per_sm = max_threads_per_sm / BLOCK_SIZE;
        if sm_count == 0 || blocks_per_sm == 0 || sm_count.checked_mul(blocks_per_sm).is_none() {
            return Err(Error::InvalidPlatform {
                sm_count,
                max_threads_per_sm,
            });
        }
        Ok(Self::preset(sm_count, max_threads_per_sm))
    }

    /// Number of streaming multiprocessors.
    pub fn sm_count(&self) -> u32 {
        self.sm_count
    }

    /// Most resident threads per streaming multiprocessor.
    pub fn max_threads_per_sm(&self) -> u32 {
        self.max_threads_per_sm
    }

    /// The most blocks a random kernel is launched with on this GPU.
    pub fn max_grid(&self) -> u32 {
        self.sm_count * (self.max_threads_per_sm / BLOCK_SIZE)
    }

    /// `calc_execution_policy(numel, unroll)`: the grid PyTorch launches for `numel` values
    /// drawn `unroll` at a time (4 for f32/f16/bf16, 2 for f64), and how far the generator's
    /// philox offset moves.
    pub fn launch(&self, numel: u64, unroll: u32) -> Launch {
        let blocks = numel.div_ceil(u64::from(BLOCK_SIZE));
        // dim3 holds 32-bit sizes; only a grid of more than 2^32 blocks would be cut, far past
        // anything this crate can allocate.
        let grid = (blocks as u32).min(self.max_grid());
        let per_iteration = u64::from(BLOCK_SIZE) * u64::from(grid) * u64::from(unroll);
        let counter_offset = (numel.saturating_sub(1) / per_iteration + 1) * OFFSETS_PER_CALL;
        Launch {
            grid,
            counter_offset,
        }
    }
}

impl FromStr for CudaPlatform {
    type Err = Error;

    /// `h100`, `h200`, `b200` or `5090` (also `rtx5090`), any case.
    fn from_str(s: &str) -> Result<Self, Error> {
        let lower = s.trim().to_ascii_lowercase();
        let name = lower.strip_prefix("rtx").unwrap_or(&lower);
        Self::PRESETS
            .iter()
            .find(|(preset, _)| *preset == name)
            .map(|&(_, p)| p)
            .ok_or_else(|| Error::UnknownPlatform { name: s.to_owned() })
    }
}

/// One launch of PyTorch's grid-stride random kernel (block size [`BLOCK_SIZE`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Launch {
    /// Blocks in the grid.
    pub grid: u32,
    /// How far this launch moves the generator's philox offset.
    pub counter_offset: u64,
}

impl Launch {
    /// Threads in the grid, `S = 256 × grid`: thread `t` writes elements `t + k·u·S + i·S`
    /// (loop iteration `k`, lane `i < u`, `u` the unroll factor).
    pub fn threads(&self) -> u64 {
        u64::from(BLOCK_SIZE) * u64::from(self.grid)
    }
}

/// A seeded CUDA random generator that draws what `torch.Generator(device="cuda")` draws, on
/// the CPU.
///
/// The philox offset advances with every call as PyTorch's does, so successive calls continue
/// the stream. Values depend on the GPU model for draws larger than `256 × max_grid` (see
/// [`CudaPlatform`]), and match a GPU to within a few f32 ulps, not bit for bit: curand's
/// device code takes sine and cosine from the GPU's approximate `__sincosf`, whose exact
/// outputs are not published (see the crate README for the measured agreement).
///
/// ```
/// use torch_rng::{CudaGenerator, CudaPlatform};
///
/// // torch.randn(4, generator=torch.Generator("cuda").manual_seed(42), device="cuda")
/// let mut g = CudaGenerator::new(42, CudaPlatform::H100);
/// let x = g.randn_f32(4);
/// let printed = [0.1940, 2.1614, -0.1721, 0.8491];
/// assert!(x.iter().zip(printed).all(|(a, b)| (a - b).abs() < 5e-5));
/// assert_eq!(g.offset(), 4); // the next call starts 4 philox words further
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CudaGenerator {
    seed: u64,
    offset: u64,
    platform: CudaPlatform,
}

impl CudaGenerator {
    /// `torch.Generator("cuda").manual_seed(seed)` on a GPU laid out like `platform`.
    pub fn new(seed: u64, platform: CudaPlatform) -> Self {
        Self {
            seed,
            offset: 0,
            platform,
        }
    }

    /// Reseeds in place like `Generator.manual_seed`: the whole 64-bit seed becomes the Philox
    /// key and the offset returns to 0.
    pub fn manual_seed(&mut self, seed: u64) -> &mut Self {
        self.seed = seed;
        self.offset = 0;
        self
    }

    /// The seed last given (`Generator.initial_seed()`).
    pub fn initial_seed(&self) -> u64 {
        self.seed
    }

    /// The philox offset the next draw starts from (`Generator.get_offset()`).
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Moves the philox offset, like `Generator.set_offset`; it must be a multiple of 4.
    pub fn set_offset(&mut self, offset: u64) -> Result<&mut Self, Error> {
        if !offset.is_multiple_of(OFFSETS_PER_CALL) {
            return Err(Error::UnalignedOffset { offset });
        }
        self.offset = offset;
        Ok(self)
    }

    /// The GPU layout this generator reproduces.
    pub fn platform(&self) -> CudaPlatform {
        self.platform
    }

    /// `torch.randn(n, generator=g, device="cuda", dtype=torch.float32)`.
    pub fn randn_f32(&mut self, n: usize) -> Vec<f32> {
        let mut out = vec![0f32; n];
        for (range, launch, offset) in self.plan(n, 4, 4) {
            normal4_kernel(&mut out[range], self.seed, launch, offset, |v| v);
        }
        out
    }

    /// `torch.randn(n, ..., dtype=torch.bfloat16)` on CUDA: the f32 values (PyTorch computes in
    /// float), each rounded to nearest-even.
    pub fn randn_bf16(&mut self, n: usize) -> Vec<bf16> {
        let mut out = vec![bf16::ZERO; n];
        for (range, launch, offset) in self.plan(n, 2, 4) {
            normal4_kernel(&mut out[range], self.seed, launch, offset, bf16::from_f32);
        }
        out
    }

    /// `torch.randn(n, ..., dtype=torch.float16)` on CUDA: the f32 values rounded to
    /// nearest-even.
    pub fn randn_f16(&mut self, n: usize) -> Vec<f16> {
        let mut out = vec![f16::ZERO; n];
        for (range, launch, offset) in self.plan(n, 2, 4) {
            normal4_kernel(&mut out[range], self.seed, launch, offset, f16::from_f32);
        }
        out
    }

    /// `torch.randn(n, ..., dtype=torch.float64)` on CUDA: `curand_normal2_double`, two values
    /// per Philox output (53-bit uniforms from word pairs), so the grid-stride loop is unrolled
    /// twice instead of four times.
    pub fn randn_f64(&mut self, n: usize) -> Vec<f64> {
        let mut out = vec![0f64; n];
        for (range, launch, offset) in self.plan(n, 8, 2) {
            normal2_double_kernel(&mut out[range], self.seed, launch, offset);
        }
        out
    }

    /// `torch.randn(n)` on CUDA in the element type `T` (`f32`, `bf16` or `f64`).
    pub fn randn<T: crate::Element>(&mut self, n: usize) -> Vec<T> {
        T::randn_cuda(self, n)
    }

    /// `distribution_nullary_kernel`'s launches for `n` values of `elem_bytes` bytes: each
    /// element range with its grid and philox offset, advancing the generator as PyTorch does.
    fn plan(&mut self, n: usize, elem_bytes: u64, unroll: u32) -> Vec<(Range<usize>, Launch, u64)> {
        let mut launches = Vec::new();
        self.plan_range(0..n, elem_bytes, unroll, I32_MAX, &mut launches);
        launches
    }

    fn plan_range(
        &mut self,
        range: Range<usize>,
        elem_bytes: u64,
        unroll: u32,
        index_limit: u64,
        launches: &mut Vec<(Range<usize>, Launch, u64)>,
    ) {
        let numel = range.len() as u64;
        if numel == 0 {
            return;
        }
        // The offset is reserved before the 32-bit check, so a draw too large for 32-bit
        // indexing advances the generator once for the whole and again for every piece.
        let launch = self.platform.launch(numel, unroll);
        let offset = self.offset;
        self.offset = self.offset.wrapping_add(launch.counter_offset);
        if fits_32bit_indexing(numel, elem_bytes, index_limit) {
            launches.push((range, launch, offset));
            return;
        }
        for piece in split_until_32bit(range, elem_bytes, index_limit) {
            self.plan_range(piece, elem_bytes, unroll, index_limit, launches);
        }
    }
}

/// `std::numeric_limits<int32_t>::max()`: the bound of `TensorIterator`'s 32-bit indexing.
const I32_MAX: u64 = i32::MAX as u64;

/// `TensorIteratorBase::can_use_32bit_indexing` for a contiguous 1-D output: the element count
/// and the largest byte offset (plus one) must stay within `limit`.
fn fits_32bit_indexing(numel: u64, elem_bytes: u64, limit: u64) -> bool {
    numel <= limit
        && (numel - 1)
            .checked_mul(elem_bytes)
            .and_then(|b| b.checked_add(1))
            .is_some_and(|max_offset| max_offset <= limit)
}

/// `SplitUntil32Bit`: halves the range (first half `len / 2`) depth first until every piece
/// fits, and yields the pieces in memory order.
fn split_until_32bit(range: Range<usize>, elem_bytes: u64, limit: u64) -> Vec<Range<usize>> {
    let mut stack = vec![range];
    let mut pieces = Vec::new();
    while let Some(top) = stack.pop() {
        if fits_32bit_indexing(top.len() as u64, elem_bytes, limit) {
            pieces.push(top);
            continue;
        }
        let mid = top.start + top.len() / 2;
        // The second half waits below the first, which is examined next.
        stack.push(mid..top.end);
        stack.push(top.start..mid);
    }
    pieces
}

/// `distribution_elementwise_grid_stride_kernel` with `curand_normal4` (unroll 4): thread `t`
/// writes lane `i` of its `k`-th draw to element `t + 4kS + iS`, the lanes being
/// `(x, y)` and `(z, w)` Box-Muller pairs of one Philox output.
fn normal4_kernel<T>(
    out: &mut [T],
    seed: u64,
    launch: Launch,
    offset: u64,
    cast: impl Fn(f32) -> T,
) {
    let n = out.len();
    let threads = launch.threads() as usize;
    // Threads at or past n write nothing in any iteration.
    for t in 0..threads.min(n) {
        let mut state = CurandPhilox::new(seed, t as u64, offset);
        let mut base = t;
        while base < n {
            let w = state.next4();
            for pair in 0..2 {
                // Lanes 2·pair and 2·pair + 1; a pair with no element in range is skipped (the
                // device computes it and drops it, which changes nothing).
                let first = base + 2 * pair * threads;
                if first >= n {
                    break;
                }
                let values = box_muller(w[2 * pair], w[2 * pair + 1]);
                for (lane, value) in values.into_iter().enumerate() {
                    if let Some(slot) = out.get_mut(first + lane * threads) {
                        // transformation::normal: value * std + mean with std 1, mean 0 (it
                        // maps a -0.0 to +0.0).
                        *slot = cast(value + 0.0);
                    }
                }
            }
            base += 4 * threads;
        }
    }
}

/// The same kernel with `curand_normal2_double` (unroll 2).
fn normal2_double_kernel(out: &mut [f64], seed: u64, launch: Launch, offset: u64) {
    let n = out.len();
    let threads = launch.threads() as usize;
    for t in 0..threads.min(n) {
        let mut state = CurandPhilox::new(seed, t as u64, offset);
        let mut base = t;
        while base < n {
            let pair = box_muller_double(state.next4());
            for (lane, value) in pair.into_iter().enumerate() {
                if let Some(slot) = out.get_mut(base + lane * threads) {
                    *slot = value + 0.0;
                }
            }
            base += 2 * threads;
        }
    }
}

/// `CURAND_2POW32_INV`: 2^-32.
const TWO_POW32_INV: f32 = 1.0 / 4_294_967_296.0;
/// `CURAND_2POW32_INV_2PI`: 2^-32 × float(2π), exact in f32.
const TWO_POW32_INV_2PI: f32 = TWO_POW32_INV * std::f32::consts::TAU;

/// curand's `_curand_box_muller` on two words, as its device branch computes it: f32 uniforms
/// `u = x·2^-32 + 2^-33` (radius) and `v = y·(2^-32·2π) + 2^-32·π` (angle, one fused
/// multiply-add as nvcc contracts it; `x` and `y` are first rounded to f32), `s = sqrtf(-2
/// logf(u))`, then `(s·sin v, s·cos v)`: sine first.
///
/// `logf` and `sqrtf` are the device's accurate functions. Sine and cosine come from
/// `__sincosf`, which compiles to a multiply by `1/2π` rounded toward zero (`FMUL.RZ`) feeding
/// the special-function unit (`MUFU.SIN`/`MUFU.COS`, which evaluate `sin 2πt`, `cos 2πt`). The
/// rounding toward zero is repeated here; the unit's own approximation (absolute error about
/// 2^-22, tables unpublished) is replaced by the correctly rounded value. What remains is the
/// difference from a GPU: about 1e-7 (see the README).
#[inline]
fn box_muller(x: u32, y: u32) -> [f32; 2] {
    let u = (x as f32).mul_add(TWO_POW32_INV, TWO_POW32_INV / 2.0);
    let v = (y as f32).mul_add(TWO_POW32_INV_2PI, TWO_POW32_INV_2PI / 2.0);
    let log_u = f64::from(u).ln() as f32;
    let s = (-2.0 * log_u).sqrt();
    let turns = f64::from(mul_round_toward_zero(v, INV_2PI));
    let (sin, cos) = (std::f64::consts::TAU * turns).sin_cos();
    [(sin as f32) * s, (cos as f32) * s]
}

/// `float(1/2π)`, the constant `__sinf`/`__cosf` multiply their argument by.
const INV_2PI: f32 = 0.159_154_94;

/// `a·b` in f32, rounded toward zero (`FMUL.RZ`): the f64 product of two f32 is exact, so
/// rounding it to nearest and stepping back when that went outward gives the truncated value.
#[inline]
fn mul_round_toward_zero(a: f32, b: f32) -> f32 {
    let exact = f64::from(a) * f64::from(b);
    let nearest = exact as f32;
    if f64::from(nearest).abs() > exact.abs() {
        f32::from_bits(nearest.to_bits() - 1)
    } else {
        nearest
    }
}

/// 2^-53 (`CURAND_2POW53_INV_DOUBLE`).
const TWO_POW53_INV: f64 = 1.0 / 9_007_199_254_740_992.0;

/// `_curand_box_muller_double(x0, x1, y0, y1)`: 53-bit uniforms `x0 ^ (x1 << 21)`, radius from
/// `u = z·2^-53 + 2^-54`, angle `π·v` with `v = z·2^-52 + 2^-53` through `sincospi`.
#[inline]
fn box_muller_double(w: [u32; 4]) -> [f64; 2] {
    let zx = u64::from(w[0]) ^ (u64::from(w[1]) << 21);
    let zy = u64::from(w[2]) ^ (u64::from(w[3]) << 21);
    let u = (zx as f64).mul_add(TWO_POW53_INV, TWO_POW53_INV / 2.0);
    let v = (zy as f64).mul_add(2.0 * TWO_POW53_INV, TWO_POW53_INV);
    let s = (-2.0 * u.ln()).sqrt();
    let (sin, cos) = sincospi(v);
    [sin * s, cos * s]
}

/// `(sin πv, cos πv)` for `0 < v < 2`, accurate to about an ulp: reduced exactly to
/// `r ∈ [-1/4, 1/4]` around the nearest multiple of 1/2, with `π·r` carried in two doubles so
/// that values near a zero of sine or cosine keep their relative accuracy.
fn sincospi(v: f64) -> (f64, f64) {
    // π = PI_HI + PI_LO to about 107 bits.
    const PI_HI: f64 = std::f64::consts::PI;
    const PI_LO: f64 = 1.224_646_799_147_353_2e-16;
    let quadrant = (2.0 * v).round();
    let r = v - 0.5 * quadrant; // exact: v and quadrant/2 share an exponent range
    let hi = PI_HI * r;
    let lo = PI_HI.mul_add(r, -hi) + PI_LO * r;
    let (s_hi, c_hi) = hi.sin_cos();
    let (s, c) = (lo.mul_add(c_hi, s_hi), (-lo).mul_add(s_hi, c_hi));
    match quadrant as i64 & 3 {
        0 => (s, c),
        1 => (c, -s),
        2 => (-s, -c),
        _ => (-c, s),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_until_32bit_halves_depth_first_in_memory_order() {
        // Limit 100 bytes, 4-byte elements: a piece fits up to 25 elements (1 + 24·4 = 97).
        assert!(fits_32bit_indexing(25, 4, 100));
        assert!(!fits_32bit_indexing(26, 4, 100));
        // 100 → 50 → 25 | 25, then 50 → 25 | 25.
        assert_eq!(
            split_until_32bit(0..100, 4, 100),
            [0..25, 25..50, 50..75, 75..100]
        );
        // 61 → 30 (→ 15 | 15) | 31 (→ 15 | 16).
        assert_eq!(
            split_until_32bit(0..61, 4, 100),
            [0..15, 15..30, 30..45, 45..61]
        );
    }

    #[test]
    fn a_draw_too_large_for_32bit_indexing_advances_once_more_and_per_piece() {
        let platform = CudaPlatform::new(1, 256).unwrap(); // S = 256 threads
        let mut g = CudaGenerator::new(3, platform);
        // 2000 f32 with a 4000-byte limit: pieces of 1000 (1 + 999·4 = 3997).
        let mut launches = Vec::new();
        g.plan_range(0..2000, 4, 4, 4000, &mut launches);
        let whole = platform.launch(2000, 4).counter_offset; // (1999/1024 + 1)·4 = 8
        let piece = platform.launch(1000, 4).counter_offset; // (999/1024 + 1)·4 = 4
        assert_eq!((whole, piece), (8, 4));
        let got: Vec<_> = launches
            .iter()
            .map(|(r, _, off)| (r.clone(), *off))
            .collect();
        assert_eq!(got, [(0..1000, 8), (1000..2000, 12)]);
        assert_eq!(g.offset(), 16);
    }

    #[test]
    fn sincospi_matches_sin_cos_of_pi_v() {
        for i in 1..2000 {
            let v = f64::from(i) / 1000.0 + 1e-7;
            let (s, c) = sincospi(v);
            let (s_ref, c_ref) = (std::f64::consts::PI * v).sin_cos();
            assert!(
                (s - s_ref).abs() < 1e-15 && (c - c_ref).abs() < 1e-15,
                "v = {v}"
            );
        }
        // Exact zeros and ones where π·v is a multiple of π/2.
        assert_eq!(sincospi(0.5), (1.0, 0.0));
        assert_eq!(sincospi(1.0).0, 0.0);
    }

    #[test]
    fn multiplying_toward_zero_truncates() {
        // An exact product is unchanged.
        assert_eq!(mul_round_toward_zero(1.0, 1.0 / 3.0), 1.0 / 3.0);
        // 3·float(1/9) = 0.33333333582: nearest is 0x3eaaaaab, toward zero 0x3eaaaaaa.
        assert_eq!(mul_round_toward_zero(3.0, 1.0 / 9.0).to_bits(), 0x3eaa_aaaa);
        assert_eq!((3.0f32 * (1.0 / 9.0)).to_bits(), 0x3eaa_aaab);
        assert_eq!(
            mul_round_toward_zero(-3.0, 1.0 / 9.0).to_bits(),
            0xbeaa_aaaa
        );
        assert_eq!(INV_2PI.to_bits(), 0x3e22_f983);
    }

    #[test]
    fn curand_constants_are_the_float_values() {
        assert_eq!(TWO_POW32_INV.to_bits(), 0x2f80_0000);
        // 2^-32 · 6.2831855f, as curand's CURAND_2POW32_INV_2PI.
        assert_eq!(TWO_POW32_INV_2PI, 2.328_306_4e-10_f32 * 6.283_185_5_f32);
    }
}
