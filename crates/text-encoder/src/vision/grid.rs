//! Integer bookkeeping of the vision tower, computed on the host from `image_grid_thw`: which
//! patches attend together (per image, per window), the order windows put the patches in, and
//! each patch's (row, column) for the rotary embedding. transformers computes the same in
//! `transformers.vision_utils` (`get_vision_cu_seqlens`, `get_vision_window_index`,
//! `get_vision_position_ids`).

use crate::Error;

/// Check `image_grid_thw` against the tower and the patch count of `pixel_values`.
///
/// Every t, h, w must be positive, h and w multiples of `merge` (the merger joins merge×merge
/// patches), and Σ t·h·w must equal `num_patches`.
pub fn check_grid(grid_thw: &[[usize; 3]], merge: usize, num_patches: usize) -> Result<(), Error> {
    if grid_thw.is_empty() {
        return Err(Error::VisionInput("image_grid_thw has no image".into()));
    }
    for (i, &[t, h, w]) in grid_thw.iter().enumerate() {
        if t == 0 || h == 0 || w == 0 {
            return Err(Error::VisionInput(format!(
                "image {i}: grid (t, h, w) = ({t}, {h}, {w}) has an empty axis"
            )));
        }
        if !h.is_multiple_of(merge) || !w.is_multiple_of(merge) {
            return Err(Error::VisionInput(format!(
                "image {i}: grid h {h} × w {w} is not a multiple of spatial_merge_size {merge}"
            )));
        }
    }
    let total = grid_thw.iter().try_fold(0usize, |acc, g| {
        acc.checked_add(g[0].checked_mul(g[1])?.checked_mul(g[2])?)
    });
    match total {
        Some(n) if n == num_patches => Ok(()),
        Some(n) => Err(Error::VisionInput(format!(
            "image_grid_thw {grid_thw:?} describes {n} patches but pixel_values has {num_patches} rows"
        ))),
        None => Err(Error::VisionInput(format!(
            "image_grid_thw {grid_thw:?} overflows"
        ))),
    }
}

/// Boundaries of full attention: one segment per frame of each image (`cu_seqlens`), in patches.
pub fn cu_seqlens(grid_thw: &[[usize; 3]]) -> Vec<usize> {
    let mut cu = vec![0];
    for &[t, h, w] in grid_thw {
        for _ in 0..t {
            cu.push(cu[cu.len() - 1] + h * w);
        }
    }
    cu
}

/// The window permutation and window boundaries (`get_vision_window_index`).
///
/// Returns `window_index` (for each position in window order, the merged unit — a block of
/// merge² consecutive patches — that goes there) and `cu_window_seqlens` (window boundaries in
/// patches, in window order). Each frame's merged grid is cut into `window`×`window` squares
/// from the top-left; edge windows are partial; empty windows (upstream pads a full window when
/// a side is already a multiple) leave no boundary, as upstream's `unique_consecutive` removes
/// them.
pub fn window_index(
    grid_thw: &[[usize; 3]],
    merge: usize,
    window: usize,
) -> (Vec<usize>, Vec<usize>) {
    let unit = merge * merge;
    let mut index = Vec::new();
    let mut cu = vec![0usize];
    let mut offset = 0;
    for &[t, h, w] in grid_thw {
        let (lh, lw) = (h / merge, w / merge);
        for f in 0..t {
            let base = offset + f * lh * lw;
            for wy in (0..lh).step_by(window) {
                for wx in (0..lw).step_by(window) {
                    let before = index.len();
                    for y in wy..(wy + window).min(lh) {
                        for x in wx..(wx + window).min(lw) {
                            index.push(base + y * lw + x);
                        }
                    }
                    let n = index.len() - before;
                    if n > 0 {
                        cu.push(cu[cu.len() - 1] + n * unit);
                    }
                }
            }
        }
        offset += t * lh * lw;
    }
    (index, cu)
}

/// Each patch's (row, column) in its image, in `pixel_values` order (merge blocks row-major,
/// then the patches inside a block), repeated for every frame (`get_vision_position_ids`).
pub fn position_ids(grid_thw: &[[usize; 3]], merge: usize) -> Vec<[usize; 2]> {
    let mut pos = Vec::new();
    for &[t, h, w] in grid_thw {
        for _ in 0..t {
            for by in 0..h / merge {
                for bx in 0..w / merge {
                    for my in 0..merge {
                        for mx in 0..merge {
                            pos.push([by * merge + my, bx * merge + mx]);
                        }
                    }
                }
            }
        }
    }
    pos
}

/// The inverse of a permutation (`argsort` of a permutation of 0..n).
pub(crate) fn inverse(perm: &[usize]) -> Vec<usize> {
    let mut inv = vec![0; perm.len()];
    for (i, &p) in perm.iter().enumerate() {
        inv[p] = i;
    }
    inv
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_of_a_3x5_merged_grid_split_into_partial_squares() {
        // 6×10 patches, merge 2 → 3×5 merged units, windows of 2×2 units.
        let (idx, cu) = window_index(&[[1, 6, 10]], 2, 2);
        assert_eq!(idx.len(), 15);
        assert_eq!(&idx[..4], &[0, 1, 5, 6]);
        assert_eq!(cu, vec![0, 16, 32, 40, 48, 56, 60]);
        let mut sorted = idx.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..15).collect::<Vec<_>>());
    }

    #[test]
    fn grids_that_disagree_with_pixel_values_are_refused() {
        assert!(check_grid(&[[1, 4, 6]], 2, 24).is_ok());
        assert!(check_grid(&[[1, 4, 6]], 2, 25).is_err());
        assert!(check_grid(&[[1, 3, 6]], 2, 18).is_err());
        assert!(check_grid(&[[0, 4, 6]], 2, 0).is_err());
        assert!(check_grid(&[], 2, 0).is_err());
    }

    #[test]
    fn positions_follow_merge_blocks() {
        let p = position_ids(&[[1, 2, 4]], 2);
        assert_eq!(p[..5], [[0, 0], [0, 1], [1, 0], [1, 1], [0, 2]]);
    }
}
