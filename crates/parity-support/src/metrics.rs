//! The error metrics the parity tests bound, over anything that can give its `f32` values.

/// Something with `f32` values to compare: a slice, a `Vec`, an array, a `(values, shape)` pair
/// as golden readers return it, and (feature `burn`) a burn tensor.
pub trait Values {
    /// What it can be compared with: `[f32]` for every flat list, `Tensor<B, D>` for a tensor (so
    /// that the other side's rank and backend are inferred from this one).
    type Kind: ?Sized;
    /// The shape, where known (`None` for a flat slice or `Vec`: only its length is checked).
    fn shape(&self) -> Option<Vec<usize>>;
    /// The values, row-major.
    fn values(&self) -> Vec<f32>;
}

impl<T: Values + ?Sized> Values for &T {
    type Kind = T::Kind;
    fn shape(&self) -> Option<Vec<usize>> {
        (**self).shape()
    }
    fn values(&self) -> Vec<f32> {
        (**self).values()
    }
}

impl Values for [f32] {
    type Kind = [f32];
    fn shape(&self) -> Option<Vec<usize>> {
        None
    }
    fn values(&self) -> Vec<f32> {
        self.to_vec()
    }
}

impl<const N: usize> Values for [f32; N] {
    type Kind = [f32];
    fn shape(&self) -> Option<Vec<usize>> {
        None
    }
    fn values(&self) -> Vec<f32> {
        self.to_vec()
    }
}

impl Values for Vec<f32> {
    type Kind = [f32];
    fn shape(&self) -> Option<Vec<usize>> {
        None
    }
    fn values(&self) -> Vec<f32> {
        self.clone()
    }
}

/// `(values, shape)`, as [`Goldens::f32`](crate::Goldens::f32) returns a tensor.
impl Values for (Vec<f32>, Vec<usize>) {
    type Kind = [f32];
    fn shape(&self) -> Option<Vec<usize>> {
        Some(self.1.clone())
    }
    fn values(&self) -> Vec<f32> {
        self.0.clone()
    }
}

#[cfg(feature = "burn")]
impl<B: burn::tensor::backend::Backend, const D: usize> Values for burn::tensor::Tensor<B, D> {
    type Kind = Self;
    fn shape(&self) -> Option<Vec<usize>> {
        Some(self.dims().to_vec())
    }
    /// Any float dtype, read as f32 (a bf16 tensor's values exactly).
    fn values(&self) -> Vec<f32> {
        self.clone()
            .into_data()
            .convert::<f32>()
            .to_vec::<f32>()
            .expect("f32 data")
    }
}

/// Both value lists, after checking that the shapes (where both are known) and the element counts
/// agree.
fn pair<O: Values, T: Values<Kind = O::Kind>>(ours: O, theirs: T) -> (Vec<f32>, Vec<f32>) {
    if let (Some(a), Some(b)) = (ours.shape(), theirs.shape()) {
        assert_eq!(a, b, "shapes differ");
    }
    let (a, b) = (ours.values(), theirs.values());
    assert_eq!(a.len(), b.len(), "element counts differ");
    (a, b)
}

/// The largest value, NaN as soon as one is NaN (`f32::max` would drop it and let a NaN
/// output pass a bound).
fn nan_max(values: impl IntoIterator<Item = f32>) -> f32 {
    values
        .into_iter()
        .fold(0.0, |m, v| if v.is_nan() || v > m { v } else { m })
}

/// max over elements of |ours − theirs| / max(|theirs|, 1): relative for values above 1,
/// absolute below. Panics when the shapes or element counts differ; NaN when an element is NaN.
pub fn max_rel_err<O: Values, T: Values<Kind = O::Kind>>(ours: O, theirs: T) -> f32 {
    let (a, b) = pair(ours, theirs);
    nan_max(
        a.iter()
            .zip(&b)
            .map(|(x, y)| (x - y).abs() / y.abs().max(1.0)),
    )
}

/// max|ours − theirs| / max|theirs|: the largest error relative to the reference's peak
/// (an all-zero reference counts as a peak of 1e-12). Panics when the shapes or element counts
/// differ; NaN when an element is NaN.
pub fn peak_rel_err<O: Values, T: Values<Kind = O::Kind>>(ours: O, theirs: T) -> f32 {
    let (a, b) = pair(ours, theirs);
    let diff = nan_max(a.iter().zip(&b).map(|(x, y)| (x - y).abs()));
    let peak = nan_max(b.iter().map(|y| y.abs())).max(1e-12);
    diff / peak
}

/// The largest |a − b| of two u8 buffers (images) of the same length.
pub fn max_abs_diff_u8(a: &[u8], b: &[u8]) -> u8 {
    assert_eq!(a.len(), b.len(), "lengths differ");
    a.iter()
        .zip(b)
        .map(|(x, y)| x.abs_diff(*y))
        .max()
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_relative_above_one_and_absolute_below() {
        assert_eq!(max_rel_err(&[0.0f32, 0.0], &[0.0f32, 0.0]), 0.0);
        assert_eq!(max_rel_err(&[0.25f32], &[0.5f32]), 0.25);
        assert_eq!(max_rel_err(&[3.0f32], &[4.0f32]), 0.25);
        assert_eq!(peak_rel_err(&[0.25f32, 4.0], &[0.5f32, 4.0]), 0.25 / 4.0);
    }

    #[test]
    fn a_nan_is_never_within_a_bound() {
        assert!(max_rel_err(&[f32::NAN, 1.0], &[1.0f32, 1.0]).is_nan());
        assert!(peak_rel_err(&[1.0, f32::NAN], &[1.0f32, 1.0]).is_nan());
    }

    #[test]
    #[should_panic(expected = "shapes differ")]
    fn shapes_must_agree() {
        max_rel_err((vec![0.0f32; 4], vec![2, 2]), (vec![0.0f32; 4], vec![4]));
    }

    #[test]
    #[should_panic(expected = "element counts differ")]
    fn lengths_must_agree() {
        max_rel_err(&[0.0f32; 3], &[0.0f32; 4]);
    }

    #[test]
    fn a_shaped_value_list_compares_with_a_flat_one_of_its_length() {
        assert_eq!(
            max_rel_err((vec![1.0f32; 4], vec![2, 2]), &[1.0f32; 4]),
            0.0
        );
    }

    #[test]
    fn u8_buffers() {
        assert_eq!(max_abs_diff_u8(&[0, 255, 7], &[3, 250, 7]), 5);
    }
}
