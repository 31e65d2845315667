//! What the language model needs to take images: the processor's `<|image_pad|>` expansion
//! (`Qwen2VLProcessor`), the 3-D M-RoPE positions (`Qwen2_5_VLModel.get_rope_index`), and the
//! vision tower's output split per image.

use std::path::Path;

use burn::tensor::Tensor;
use burn::tensor::backend::Backend;
use image::{DynamicImage, ImageDecoder, ImageReader, RgbImage};

use crate::Error;
use crate::template::IMAGE_PAD;

/// transformers' `mrope_section` when a config names none (Qwen2.5-VL-7B's split of its 64
/// rotary frequencies).
pub const DEFAULT_MROPE_SECTION: [usize; 3] = [16, 24, 24];

/// How the language model numbers the tokens of a prompt with images.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum VisionPositions {
    /// Qwen2.5-VL's 3-D M-RoPE positions ([`mrope_position_ids`]): the model as trained,
    /// transformers 4.x, and diffusers once it passes the processor's `mm_token_type_ids` on
    /// (diffusers PR #14189).
    #[default]
    Mrope,
    /// Every token numbered 0, 1, 2, … on all three axes, image tokens like text: what diffusers
    /// ≤ 0.42.1 computes with transformers ≥ 5.15, which drops `mm_token_type_ids` and falls back
    /// to 1-D positions (diffusers issue #14194). For parity with that pinned pairing only.
    Sequential,
}

/// Tokens one image becomes: `t · h · w / merge²` for its patch grid `[t, h, w]`
/// (`image_grid_thw`). The processor always makes `h` and `w` multiples of `merge`.
pub fn image_token_count(grid_thw: [usize; 3], spatial_merge_size: usize) -> Result<usize, Error> {
    let [t, h, w] = grid_thw;
    let m = spatial_merge_size;
    if t == 0 || h == 0 || w == 0 || m == 0 || h % m != 0 || w % m != 0 {
        return Err(Error::Images(format!(
            "image grid {grid_thw:?} is not a non-empty grid of {m}×{m} merged patches"
        )));
    }
    Ok(t * h * w / (m * m))
}

/// One image as the language model takes it.
#[derive(Debug, Clone)]
pub struct ImageEmbeds<B: Backend> {
    /// `image_grid_thw`: patches along time, height and width, before the merge.
    pub grid_thw: [usize; 3],
    /// `[t·h·w / merge², D]`: the vision tower's output for this image, in its token order.
    pub embeds: Tensor<B, 2>,
}

impl<B: Backend> ImageEmbeds<B> {
    /// Split the vision tower's output for several images (`[N, D]`, images in order, as
    /// `get_image_features` returns them concatenated) by their grids.
    pub fn split(
        embeds: Tensor<B, 2>,
        grids: &[[usize; 3]],
        spatial_merge_size: usize,
    ) -> Result<Vec<Self>, Error> {
        let counts = grids
            .iter()
            .map(|&g| image_token_count(g, spatial_merge_size))
            .collect::<Result<Vec<_>, _>>()?;
        let rows = embeds.dims()[0];
        let total: usize = counts.iter().sum();
        if rows != total {
            return Err(Error::Images(format!(
                "{rows} image embedding rows for grids {grids:?} ({total} tokens)"
            )));
        }
        let mut start = 0;
        Ok(grids
            .iter()
            .zip(counts)
            .map(|(&grid_thw, n)| {
                let part = embeds.clone().narrow(0, start, n);
                start += n;
                Self {
                    grid_thw,
                    embeds: part,
                }
            })
            .collect())
    }
}

/// Read an image file as diffusers' `load_image` does for a path: decode (PNG, JPEG, WebP),
/// apply the EXIF orientation (`ImageOps.exif_transpose`), convert with PIL's `convert("RGB")`:
/// alpha dropped (not composited), grey replicated. 16-bit images are reduced to 8 bits by the
/// `image` crate's rounding, where PIL would clip; the Edit pipelines are fed 8-bit pictures.
pub fn load_image(path: impl AsRef<Path>) -> Result<RgbImage, Error> {
    let path = path.as_ref();
    let decode_err = |error| Error::ImageDecode {
        path: path.to_path_buf(),
        error,
    };
    let reader = ImageReader::open(path)
        .map_err(|error| Error::Io {
            path: path.to_path_buf(),
            error,
        })?
        .with_guessed_format()
        .map_err(|error| Error::Io {
            path: path.to_path_buf(),
            error,
        })?;
    let mut decoder = reader.into_decoder().map_err(decode_err)?;
    let orientation = decoder.orientation().map_err(decode_err)?;
    let mut image = DynamicImage::from_decoder(decoder).map_err(decode_err)?;
    image.apply_orientation(orientation);
    Ok(image.to_rgb8())
}

/// `text` with its k-th `<|image_pad|>` repeated `counts[k]` times, as the processor expands it
/// before tokenizing. The text must hold exactly `counts.len()` of them.
pub(crate) fn expand_image_pads(text: &str, counts: &[usize]) -> Result<String, Error> {
    let found = text.matches(IMAGE_PAD).count();
    if found != counts.len() {
        return Err(Error::Images(format!(
            "the prompt text holds {found} {IMAGE_PAD} tokens for {} images (a prompt may not \
             write {IMAGE_PAD} itself)",
            counts.len()
        )));
    }
    let mut out =
        String::with_capacity(text.len() + counts.iter().sum::<usize>() * IMAGE_PAD.len());
    let mut rest = text;
    for &n in counts {
        let (before, after) = rest.split_once(IMAGE_PAD).unwrap_or((rest, ""));
        out.push_str(before);
        out.push_str(&IMAGE_PAD.repeat(n));
        rest = after;
    }
    out.push_str(rest);
    Ok(out)
}

/// Qwen2.5-VL's 3-D M-RoPE positions `[3, B, L]` (temporal, height, width; row-major) for a
/// padded batch of token ids, as transformers 5.24's `get_rope_index` computes them with
/// `mm_token_type_ids = (id == image_token_id)`.
///
/// Per row, over its real tokens only (mask 1, either padding side): a run of text numbers its
/// tokens `p, p+1, …` on all three axes and advances `p` by its length; a run of image tokens
/// takes the next grid `[t, h, w]` (images in order across the batch), numbers its
/// `t · h/m · w/m` tokens (t-major, then rows, then columns) `p + t_i`, `p + h_i`, `p + w_i`, and
/// advances `p` by `max(h, w) / m`. Padding positions are 0. Every image run must have exactly
/// its grid's token count and every grid must be used.
pub fn mrope_position_ids(
    ids: &[u32],
    mask: &[u32],
    batch: usize,
    seq: usize,
    grids: &[[usize; 3]],
    image_token_id: u32,
    spatial_merge_size: usize,
) -> Result<Vec<i64>, Error> {
    if ids.len() != batch * seq || mask.len() != batch * seq {
        return Err(Error::Tokens(format!(
            "{} ids and {} mask values for a {batch}×{seq} batch",
            ids.len(),
            mask.len()
        )));
    }
    let m = spatial_merge_size;
    let plane = batch * seq;
    let mut out = vec![0i64; 3 * plane];
    let mut next_grid = grids.iter();
    for row in 0..batch {
        let real: Vec<usize> = (0..seq).filter(|&i| mask[row * seq + i] != 0).collect();
        let mut p: i64 = 0;
        let mut k = 0;
        while k < real.len() {
            let is_image = ids[row * seq + real[k]] == image_token_id;
            let run = real[k..]
                .iter()
                .take_while(|&&i| (ids[row * seq + i] == image_token_id) == is_image)
                .count();
            let slots = &real[k..k + run];
            if is_image {
                let &grid = next_grid.next().ok_or_else(|| {
                    Error::Images(format!(
                        "row {row} has more image runs than the {} image grids",
                        grids.len()
                    ))
                })?;
                let count = image_token_count(grid, m)?;
                if count != run {
                    return Err(Error::Images(format!(
                        "row {row}: an image run of {run} {IMAGE_PAD} tokens for grid {grid:?} \
                         ({count} tokens)"
                    )));
                }
                let [t, h, w] = [grid[0], grid[1] / m, grid[2] / m];
                let mut slot = slots.iter();
                for ti in 0..t {
                    for hi in 0..h {
                        for wi in 0..w {
                            let &i = slot.next().unwrap_or(&0);
                            let at = row * seq + i;
                            out[at] = p + ti as i64;
                            out[plane + at] = p + hi as i64;
                            out[2 * plane + at] = p + wi as i64;
                        }
                    }
                }
                p += h.max(w) as i64;
            } else {
                for (j, &i) in slots.iter().enumerate() {
                    let at = row * seq + i;
                    for axis in 0..3 {
                        out[axis * plane + at] = p + j as i64;
                    }
                }
                p += run as i64;
            }
            k += run;
        }
    }
    let left = next_grid.count();
    if left != 0 {
        return Err(Error::Images(format!(
            "{left} of {} image grids have no {IMAGE_PAD} run in the tokens",
            grids.len()
        )));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const IMG: u32 = 9;

    #[test]
    fn text_image_text_runs_continue_from_the_grid_extent() {
        // 2 text tokens, a 1×4×6 grid (2×3 merged = 6 tokens), 2 text tokens, 1 pad.
        let mut ids = vec![1, 2];
        ids.extend([IMG; 6]);
        ids.extend([3, 4, 0]);
        let mut mask = vec![1; 10];
        mask.push(0);
        let pos = mrope_position_ids(&ids, &mask, 1, 11, &[[1, 4, 6]], IMG, 2).unwrap();
        let (t, h, w) = (&pos[0..11], &pos[11..22], &pos[22..33]);
        assert_eq!(t, &[0, 1, 2, 2, 2, 2, 2, 2, 5, 6, 0]);
        assert_eq!(h, &[0, 1, 2, 2, 2, 3, 3, 3, 5, 6, 0]);
        assert_eq!(w, &[0, 1, 2, 3, 4, 2, 3, 4, 5, 6, 0]);
    }

    #[test]
    fn left_padding_skips_pads_and_grids_run_across_rows() {
        // Row 0: pad, text, 1 image token (grid 1×2×2); row 1: image (1×2×2), text.
        let ids = vec![0, 5, IMG, IMG, 6, 7];
        let mask = vec![0, 1, 1, 1, 1, 1];
        let pos = mrope_position_ids(&ids, &mask, 2, 3, &[[1, 2, 2], [1, 2, 2]], IMG, 2).unwrap();
        assert_eq!(&pos[0..6], &[0, 0, 1, 0, 1, 2]);
    }

    #[test]
    fn mismatched_runs_and_grids_are_errors() {
        let ids = vec![1, IMG, IMG, 2];
        let mask = vec![1; 4];
        assert!(mrope_position_ids(&ids, &mask, 1, 4, &[[1, 2, 2]], IMG, 2).is_err());
        assert!(mrope_position_ids(&ids, &mask, 1, 4, &[], IMG, 2).is_err());
        assert!(mrope_position_ids(&[1, 2], &[1, 1], 1, 2, &[[1, 2, 2]], IMG, 2).is_err());
        assert!(image_token_count([1, 3, 4], 2).is_err());
    }

    #[test]
    fn pads_expand_in_order() {
        let s = expand_image_pads("a<|image_pad|>b<|image_pad|>c", &[2, 1]).unwrap();
        assert_eq!(s, "a<|image_pad|><|image_pad|>b<|image_pad|>c");
        assert!(expand_image_pads("a<|image_pad|>", &[]).is_err());
    }
}
