//! `torch.Generator(device="cpu")`: seeding, uniforms and `torch.randn`.

use half::bf16;

use crate::cuda::CudaGenerator;
use crate::mt19937::Mt19937;
use crate::normal_fill::{fill_blocks, fill_blocks_f64};

/// torch takes `normal_fill` (blocks of 16) only from this many elements on; fewer go through the
/// scalar `normal_distribution<double>` path.
const BLOCK: usize = 16;

/// A seeded CPU random generator that draws what `torch.Generator(device="cpu")` draws.
///
/// It is a stateful value like its torch counterpart: successive `randn_*` calls continue the
/// stream, and calls with fewer than 16 values share torch's cached second Box-Muller value.
///
/// ```
/// use torch_rng::Generator;
///
/// let mut g = Generator::new(42); // torch.Generator().manual_seed(42)
/// let first = g.randn_f32(4);     // torch.randn(4, generator=g)
/// let next = g.randn_f32(32);     // continues the same stream
/// assert_eq!((first.len(), next.len()), (4, 32));
/// ```
#[derive(Clone)]
pub struct Generator {
    seed: u64,
    engine: Mt19937,
    /// `CPUGeneratorImpl::next_double_normal_sample_`: the `r sin θ` half of the last scalar pair.
    next_double_normal: Option<f64>,
}

impl std::fmt::Debug for Generator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Generator")
            .field("seed", &self.seed)
            .field("next_double_normal", &self.next_double_normal)
            .finish_non_exhaustive()
    }
}

impl Generator {
    /// A generator seeded like `torch.Generator().manual_seed(seed)`.
    ///
    /// Only the low 32 bits of `seed` reach MT19937, so `seed` and `seed + 2^32` draw the same
    /// values (torch behaves the same); [`initial_seed`](Self::initial_seed) still returns `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            seed,
            engine: Mt19937::new(seed),
            next_double_normal: None,
        }
    }

    /// Reseeds in place, like `Generator.manual_seed`: restarts the stream and drops the cached
    /// normal value.
    pub fn manual_seed(&mut self, seed: u64) -> &mut Self {
        *self = Self::new(seed);
        self
    }

    /// The seed last given (`Generator.initial_seed()`).
    pub fn initial_seed(&self) -> u64 {
        self.seed
    }

    /// `torch.randn(n, generator=g, dtype=torch.float32)`.
    pub fn randn_f32(&mut self, n: usize) -> Vec<f32> {
        if n < BLOCK {
            return self.scalar_normals(n).map(|v| v as f32).collect();
        }
        // torch draws every uniform into the output first, then transforms it in place.
        let mut data = vec![0f32; n];
        self.engine.fill(&mut data, uniform_f32);
        fill_blocks(&mut data);
        if !n.is_multiple_of(BLOCK) {
            // 16 fresh uniforms recompute the last 16 outputs, overlapping the last full block.
            let tail = &mut data[n - BLOCK..];
            self.engine.fill(tail, uniform_f32);
            fill_blocks(tail);
        }
        data
    }

    /// `torch.randn(n, generator=g, dtype=torch.bfloat16)` as torch >= 2.15 computes it: f32
    /// Box-Muller block by block, each value rounded to nearest-even bf16.
    ///
    /// Unlike f32, the tail block uses the draws that follow the last full block, so this equals
    /// `bf16(randn_f32(n))` only when `n % 16 == 0` (as for every Qwen-Image latent).
    pub fn randn_bf16(&mut self, n: usize) -> Vec<bf16> {
        if n < BLOCK {
            // static_cast<BFloat16>(double) goes through float: two roundings.
            return self
                .scalar_normals(n)
                .map(|v| bf16::from_f32(v as f32))
                .collect();
        }
        // torch draws and transforms one block at a time; blocks are independent and consume
        // consecutive draws, so doing a few hundred blocks per step gives the same values faster.
        const CHUNK: usize = 256 * BLOCK;
        let mut out = Vec::with_capacity(n);
        let mut scratch = vec![0f32; CHUNK.min(n)];
        let mut full = n - n % BLOCK;
        while full > 0 {
            let chunk = &mut scratch[..CHUNK.min(full)];
            self.engine.fill(chunk, uniform_f32);
            fill_blocks(chunk);
            out.extend(chunk.iter().map(|&v| bf16::from_f32(v)));
            full -= chunk.len();
        }
        if !n.is_multiple_of(BLOCK) {
            let mut buf = [0f32; BLOCK];
            self.block_f32(&mut buf);
            for (o, &v) in out[n - BLOCK..].iter_mut().zip(&buf) {
                *o = bf16::from_f32(v);
            }
            out.extend(buf[BLOCK - n % BLOCK..].iter().map(|&v| bf16::from_f32(v)));
        }
        out
    }

    /// `torch.randn(n, generator=g, dtype=torch.float64)`: 53-bit uniforms and libm's f64 `log`,
    /// `cos`, `sin` (bit-exact where Rust and torch use the same libm, as on one Linux machine).
    pub fn randn_f64(&mut self, n: usize) -> Vec<f64> {
        if n < BLOCK {
            return self.scalar_normals(n).collect();
        }
        let mut data: Vec<f64> = (0..n).map(|_| self.uniform_f64()).collect();
        fill_blocks_f64(&mut data);
        if !n.is_multiple_of(BLOCK) {
            let tail = &mut data[n - BLOCK..];
            tail.iter_mut().for_each(|v| *v = self.uniform_f64());
            fill_blocks_f64(tail);
        }
        data
    }

    /// `torch.randn(n)` in the element type `T` (`f32`, `bf16` or `f64`).
    pub fn randn<T: Element>(&mut self, n: usize) -> Vec<T> {
        T::randn(self, n)
    }

    /// Draws 16 f32 uniforms into `buf` and turns them into 16 normals.
    fn block_f32(&mut self, buf: &mut [f32; BLOCK]) {
        self.engine.fill(buf, uniform_f32);
        fill_blocks(buf);
    }

    /// `uniform_real_distribution<double>(0, 1)`: two words (first one high), low 53 bits, times 2^-53.
    #[inline]
    fn uniform_f64(&mut self) -> f64 {
        let hi = u64::from(self.engine.next_u32());
        let lo = u64::from(self.engine.next_u32());
        (((hi << 32) | lo) & ((1u64 << 53) - 1)) as f64 * (1.0 / 9_007_199_254_740_992.0)
    }

    /// The scalar path (`normal_distribution<double>` per element, mean 0, std 1).
    fn scalar_normals(&mut self, n: usize) -> impl Iterator<Item = f64> + '_ {
        // `val * std + mean` with std 1, mean 0 is exact except that it maps -0.0 to +0.0.
        (0..n).map(|_| self.scalar_normal() + 0.0)
    }

    /// One `normal_distribution<double>` draw: the cached value if there is one, otherwise a new
    /// Box-Muller pair `(r cos θ, r sin θ)` whose second half is cached.
    fn scalar_normal(&mut self) -> f64 {
        if let Some(v) = self.next_double_normal.take() {
            return v;
        }
        let u1 = self.uniform_f64();
        let u2 = self.uniform_f64();
        // Note the roles: u2 feeds the radius through log1p(-u2), u1 the angle.
        let r = (-2.0 * (-u2).ln_1p()).sqrt();
        let theta = 2.0 * std::f64::consts::PI * u1;
        self.next_double_normal = Some(r * theta.sin());
        r * theta.cos()
    }
}

/// `uniform_real_distribution<float>(0, 1)`: the low 24 bits of one word, times 2^-24.
#[inline(always)]
fn uniform_f32(word: u32) -> f32 {
    (word & 0x00ff_ffff) as f32 * (1.0 / 16_777_216.0)
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for half::bf16 {}
    impl Sealed for f64 {}
}

/// An element type `torch.randn` can produce here on both generators: `f32`, [`bf16`] or
/// `f64` (`f16` only on [`CudaGenerator`], through [`CudaGenerator::randn_f16`]).
pub trait Element: sealed::Sealed + Copy + Send + Sync + 'static {
    /// The torch dtype name (`"float32"`, `"bfloat16"`, `"float64"`).
    const TORCH_DTYPE: &'static str;

    /// `torch.randn(n, generator=g, dtype=Self)` with a CPU generator.
    fn randn(generator: &mut Generator, n: usize) -> Vec<Self>;

    /// `torch.randn(n, generator=g, dtype=Self, device="cuda")` with a CUDA generator.
    fn randn_cuda(generator: &mut CudaGenerator, n: usize) -> Vec<Self>;
}

impl Element for f32 {
    const TORCH_DTYPE: &'static str = "float32";
    fn randn(generator: &mut Generator, n: usize) -> Vec<Self> {
        generator.randn_f32(n)
    }
    fn randn_cuda(generator: &mut CudaGenerator, n: usize) -> Vec<Self> {
        generator.randn_f32(n)
    }
}

impl Element for bf16 {
    const TORCH_DTYPE: &'static str = "bfloat16";
    fn randn(generator: &mut Generator, n: usize) -> Vec<Self> {
        generator.randn_bf16(n)
    }
    fn randn_cuda(generator: &mut CudaGenerator, n: usize) -> Vec<Self> {
        generator.randn_bf16(n)
    }
}

impl Element for f64 {
    const TORCH_DTYPE: &'static str = "float64";
    fn randn(generator: &mut Generator, n: usize) -> Vec<Self> {
        generator.randn_f64(n)
    }
    fn randn_cuda(generator: &mut CudaGenerator, n: usize) -> Vec<Self> {
        generator.randn_f64(n)
    }
}
