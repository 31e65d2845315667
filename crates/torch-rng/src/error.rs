//! Errors of this crate.

/// Why a generator could not be made or [`randn_tensor`](crate::randn_tensor) could not draw a
/// tensor.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// No generator was passed (diffusers would fall back to torch's global generator).
    #[error("randn_tensor for shape {shape:?}: no generator given")]
    NoGenerator {
        /// The requested shape.
        shape: Vec<usize>,
    },
    /// The shape has no batch dimension to index.
    #[error("randn_tensor: shape {shape:?} has no batch dimension")]
    NoBatchDim {
        /// The requested shape.
        shape: Vec<usize>,
    },
    /// A list of generators shorter than the batch (diffusers raises IndexError).
    #[error("randn_tensor for shape {shape:?}: {given} generators for a batch of {batch}")]
    TooFewGenerators {
        /// The requested shape.
        shape: Vec<usize>,
        /// `shape[0]`.
        batch: usize,
        /// How many generators were passed.
        given: usize,
    },
    /// The number of elements does not fit in `usize`.
    #[error("randn_tensor: shape {shape:?} has more elements than usize can count")]
    TooLarge {
        /// The requested shape.
        shape: Vec<usize>,
    },
    /// A CUDA platform on which no 256-thread block fits, or whose grid cap overflows 32 bits.
    #[error(
        "CUDA platform with {sm_count} SMs and {max_threads_per_sm} threads per SM: \
         needs at least 1 SM and 256 threads per SM, and at most 2^32 blocks"
    )]
    InvalidPlatform {
        /// Streaming multiprocessors given.
        sm_count: u32,
        /// Threads per SM given.
        max_threads_per_sm: u32,
    },
    /// A platform name that is not a preset.
    #[error("unknown CUDA platform `{name}` (known: h100, h200, b200, 5090)")]
    UnknownPlatform {
        /// The name given.
        name: String,
    },
    /// A generator device that is neither `cpu` nor `cuda[:<platform>]`.
    #[error("unknown generator `{name}` (expected cpu, cuda or cuda:<h100|h200|b200|5090>)")]
    UnknownGenerator {
        /// The name given.
        name: String,
    },
    /// A philox offset that is not a multiple of 4 (torch refuses it too).
    #[error("philox offset {offset} is not a multiple of 4")]
    UnalignedOffset {
        /// The offset given.
        offset: u64,
    },
}
