//! diffusers' `randn_tensor`.

use crate::error::Error;
use crate::generator::Element;
use crate::torch_generator::NoiseGenerator;

/// `diffusers.utils.torch_utils.randn_tensor(shape, generator, dtype=T)`: the values in
/// row-major order of `shape`, from CPU ([`Generator`](crate::Generator)), CUDA
/// ([`CudaGenerator`](crate::CudaGenerator)) or either ([`TorchGenerator`](crate::TorchGenerator))
/// generators.
///
/// * One generator: a single `torch.randn(shape)` (so the whole tensor is one stream).
/// * Several: one `torch.randn((1, *shape[1:]))` per batch item, item `i` from `generators[i]`,
///   concatenated; generators beyond `shape[0]` are left untouched, as in diffusers.
///
/// The noise is drawn directly in `T`, as torch draws it in the requested dtype on the
/// generator's device (a CPU generator's bf16 is not its f32 rounded; a CUDA generator's is).
/// Every generator used advances, as its torch counterpart would.
///
/// ```
/// use half::bf16;
/// use torch_rng::{Generator, randn_tensor};
///
/// // Qwen-Image latents for 1024x1024: (B, 1, z=16, 128, 128), drawn in bf16.
/// let mut generators = [Generator::new(42)];
/// let latents: Vec<bf16> = randn_tensor(&[1, 1, 16, 128, 128], &mut generators)?;
/// assert_eq!(latents.len(), 16 * 128 * 128);
/// # Ok::<(), torch_rng::Error>(())
/// ```
pub fn randn_tensor<T: Element>(
    shape: &[usize],
    generators: &mut [impl NoiseGenerator],
) -> Result<Vec<T>, Error> {
    let numel = shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| Error::TooLarge {
            shape: shape.to_vec(),
        })?;
    let Some(&batch) = shape.first() else {
        return Err(Error::NoBatchDim {
            shape: shape.to_vec(),
        });
    };
    match generators {
        [] => Err(Error::NoGenerator {
            shape: shape.to_vec(),
        }),
        // diffusers unwraps a list of one generator: one draw for the whole batch.
        [single] => Ok(single.draw(numel)),
        many if many.len() < batch => Err(Error::TooFewGenerators {
            shape: shape.to_vec(),
            batch,
            given: many.len(),
        }),
        many => {
            let per_item = numel.checked_div(batch).unwrap_or(0);
            let mut out = Vec::with_capacity(numel);
            for generator in &mut many[..batch] {
                out.extend(generator.draw::<T>(per_item));
            }
            Ok(out)
        }
    }
}
