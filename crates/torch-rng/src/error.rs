//! Errors of this crate.

/// Why [`randn_tensor`](crate::randn_tensor) could not draw a tensor.
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
}
