//! diffusers' `randn_tensor` for CPU generators.

use crate::error::Error;
use crate::generator::{Element, Generator};

/// `diffusers.utils.torch_utils.randn_tensor(shape, generator, dtype=T)` with CPU generator(s):
/// the values in row-major order of `shape`.
///
/// * One generator: a single `torch.randn(shape)` (so the whole tensor is one stream).
/// * Several: one `torch.randn((1, *shape[1:]))` per batch item, item `i` from `generators[i]`,
///   concatenated; generators beyond `shape[0]` are left untouched, as in diffusers.
///
/// The noise is drawn directly in `T` (with a CPU generator diffusers samples in the requested
/// dtype, not f32-then-cast). Every generator used advances, as its torch counterpart would.
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
    generators: &mut [Generator],
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
        [single] => Ok(single.randn(numel)),
        many if many.len() < batch => Err(Error::TooFewGenerators {
            shape: shape.to_vec(),
            batch,
            given: many.len(),
        }),
        many => {
            let per_item = numel.checked_div(batch).unwrap_or(0);
            let mut out = Vec::with_capacity(numel);
            for generator in &mut many[..batch] {
                out.extend(generator.randn::<T>(per_item));
            }
            Ok(out)
        }
    }
}
