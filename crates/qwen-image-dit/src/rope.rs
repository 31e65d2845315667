//! MSRoPE: Qwen-Image's three-axis rotary position embedding (diffusers `QwenEmbedRope`, and
//! `QwenEmbedLayer3DRope` for the Layered variant; both with `scale_rope=True`, theta 10000).
//!
//! Each head vector is split into (frame, height, width) slices of `axes_dims_rope` widths, and
//! every adjacent pair `(x[2k], x[2k+1])` is rotated as the complex number `x[2k] + i·x[2k+1]`
//! (interleaved pairs — not the rotate-half layout of the text encoder). Each axis uses its own
//! width in the frequency exponent.

use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};

use crate::config::DitConfig;
use crate::error::DitError;

/// RoPE angle base, hard-coded upstream (`QwenEmbedRope(theta=10000, …)`).
const THETA: f32 = 10000.0;

/// Upstream precomputes 4096 positive (0 … 4095) and 4096 negative (−4096 … −1) table rows per
/// axis; a position outside that range has no row, and diffusers then fails on a shape mismatch.
/// Here the same shapes are refused up front: a frame axis reaching past 4096, an image more than
/// 8192 tokens high or wide (centred, half of it sits on the negative side), or text that would
/// run past row 4095.
pub const MAX_ROPE_POSITION: usize = 4096;

/// The most image tokens (all images of one sample together) this port builds RoPE tables for:
/// 2^18 = 262 144, e.g. 16 frames of 2048 × 2048 pixels. The joint attention over more tokens
/// than that is far beyond what the model can run; the bound keeps a bad `img_shapes` (say
/// 8192 × 8192 tokens) from asking for tables of hundreds of GB.
pub const MAX_IMAGE_TOKENS: usize = 1 << 18;

/// One image in the token sequence: `(frames, height, width)` in tokens (latent size / 2).
/// A text-to-image call has exactly one, `(1, height/16, width/16)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ImageShape {
    pub frames: usize,
    pub height: usize,
    pub width: usize,
}

impl ImageShape {
    /// A single-frame image of `height × width` tokens.
    pub fn new(frames: usize, height: usize, width: usize) -> Self {
        Self {
            frames,
            height,
            width,
        }
    }

    /// Number of tokens this image contributes (saturating: a shape too large to count is refused
    /// by [`Rope::new`] anyway).
    pub fn num_tokens(&self) -> usize {
        self.frames
            .saturating_mul(self.height)
            .saturating_mul(self.width)
    }
}

/// Which upstream module lays out the positions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// `QwenEmbedRope`: the k-th image's frames start at frame position k.
    Video,
    /// `QwenEmbedLayer3DRope`: like `Video` for every image but the last, which is the condition
    /// image at frame position −1.
    Layer3d,
}

/// The cos/sin tables for one (image shapes, text length) pair, each `[tokens, head_dim / 2]`,
/// computed once and reused by every block and every denoising step.
#[derive(Debug, Clone)]
pub struct Rope<B: Backend> {
    img_cos: Tensor<B, 2>,
    img_sin: Tensor<B, 2>,
    txt_cos: Tensor<B, 2>,
    txt_sin: Tensor<B, 2>,
    /// Tokens of the first image (the output being denoised); the `zero_cond_t` variant modulates
    /// these with t and the rest with t = 0.
    first_image_tokens: usize,
}

impl<B: Backend> Rope<B> {
    /// `QwenEmbedRope`: build the tables for `img_shapes` (the images of one sample, in sequence
    /// order: the output first, then each condition image) and a text sequence of `txt_len`
    /// tokens (the padded length), for heads split by `axes_dims`.
    ///
    /// Image k's frame positions start at k (its index in the list, as upstream — not the running
    /// frame count); its rows and columns are centred on their own size.
    pub fn new(
        axes_dims: [usize; 3],
        img_shapes: &[ImageShape],
        txt_len: usize,
        device: &B::Device,
    ) -> Result<Self, DitError> {
        Self::build(axes_dims, img_shapes, txt_len, Layout::Video, device)
    }

    /// `QwenEmbedLayer3DRope` (Layered variant): `img_shapes` lists the `layers + 1` output frames
    /// then the condition image, which must be last and have one frame. Output image k sits at
    /// frame position k, the condition image at −1, and the text starts after
    /// `max(H/2, W/2, layers + 1)`.
    pub fn new_layer3d(
        axes_dims: [usize; 3],
        img_shapes: &[ImageShape],
        txt_len: usize,
        device: &B::Device,
    ) -> Result<Self, DitError> {
        Self::build(axes_dims, img_shapes, txt_len, Layout::Layer3d, device)
    }

    /// The tables the model of `config` uses (`use_layer3d_rope` picks [`Self::new_layer3d`]).
    /// Needs only the config, so a caller can validate `img_shapes` before loading any weight.
    pub fn for_config(
        config: &DitConfig,
        img_shapes: &[ImageShape],
        txt_len: usize,
        device: &B::Device,
    ) -> Result<Self, DitError> {
        let layout = if config.use_layer3d_rope {
            Layout::Layer3d
        } else {
            Layout::Video
        };
        Self::build(config.axes_dims_rope, img_shapes, txt_len, layout, device)
    }

    fn build(
        axes_dims: [usize; 3],
        img_shapes: &[ImageShape],
        txt_len: usize,
        layout: Layout,
        device: &B::Device,
    ) -> Result<Self, DitError> {
        let (n_img, max_vid_index) = check_shapes(img_shapes, txt_len, layout)?;
        let half: usize = axes_dims.iter().sum::<usize>() / 2;
        let freqs: [Vec<f32>; 3] = axes_dims.map(inverse_frequencies);

        // Image tokens, row-major over (f, h, w). Height and width are centred: positions
        // -ceil(H/2) .. floor(H/2)-1 (`scale_rope=True`), for every image on its own size.
        let last = img_shapes.len() - 1;
        let mut img_angles = Vec::with_capacity(n_img * half);
        for (k, s) in img_shapes.iter().enumerate() {
            let h0 = s.height.div_ceil(2) as i64;
            let w0 = s.width.div_ceil(2) as i64;
            let frame0 = match layout {
                Layout::Layer3d if k == last => -1,
                _ => k as i64,
            };
            for f in 0..s.frames {
                for h in 0..s.height {
                    for w in 0..s.width {
                        let pos = [frame0 + f as i64, h as i64 - h0, w as i64 - w0];
                        push_angles(&mut img_angles, &freqs, pos);
                    }
                }
            }
        }

        // Text token j sits at max_vid_index + j on all three axes, so text never shares a
        // position with an image token.
        let mut txt_angles = Vec::with_capacity(txt_len * half);
        for j in 0..txt_len {
            let p = (max_vid_index + j) as i64;
            push_angles(&mut txt_angles, &freqs, [p, p, p]);
        }

        let table = |angles: &[f32], rows: usize, f: fn(f32) -> f32| {
            let v: Vec<f32> = angles.iter().map(|&a| f(a)).collect();
            // Kept in f32 whatever the model dtype: the reference rotates in f32.
            Tensor::<B, 2>::from_data(
                TensorData::new(v, [rows, half]),
                burn::tensor::TensorCreationOptions::new(device.clone())
                    .with_dtype(burn::tensor::DType::F32),
            )
        };
        Ok(Self {
            img_cos: table(&img_angles, n_img, f32::cos),
            img_sin: table(&img_angles, n_img, f32::sin),
            txt_cos: table(&txt_angles, txt_len, f32::cos),
            txt_sin: table(&txt_angles, txt_len, f32::sin),
            first_image_tokens: img_shapes[0].num_tokens(),
        })
    }

    /// `cos` of the image-token angles, `[N_img, head_dim/2]` (the real part of upstream's table).
    pub fn img_cos(&self) -> &Tensor<B, 2> {
        &self.img_cos
    }
    /// `sin` of the image-token angles, `[N_img, head_dim/2]`.
    pub fn img_sin(&self) -> &Tensor<B, 2> {
        &self.img_sin
    }
    /// `cos` of the text-token angles, `[L, head_dim/2]`.
    pub fn txt_cos(&self) -> &Tensor<B, 2> {
        &self.txt_cos
    }
    /// `sin` of the text-token angles, `[L, head_dim/2]`.
    pub fn txt_sin(&self) -> &Tensor<B, 2> {
        &self.txt_sin
    }
    /// Number of image tokens these tables cover (all images of one sample).
    pub fn num_img_tokens(&self) -> usize {
        self.img_cos.dims()[0]
    }
    /// Number of tokens of the first image (the output being denoised); the tokens after it
    /// belong to condition images. `zero_cond_t` (upstream's `modulate_index`) is 0 for the
    /// first this many image tokens and 1 after them.
    pub fn num_first_image_tokens(&self) -> usize {
        self.first_image_tokens
    }
    /// Number of text tokens these tables cover.
    pub fn txt_len(&self) -> usize {
        self.txt_cos.dims()[0]
    }
}

/// Check `img_shapes` and `txt_len` against the reference's table limits with checked arithmetic
/// (every value may come straight from a user's file); returns the total image token count and
/// the text's first position.
fn check_shapes(
    img_shapes: &[ImageShape],
    txt_len: usize,
    layout: Layout,
) -> Result<(usize, usize), DitError> {
    let err = |m: String| Err(DitError::Input(m));
    if img_shapes.is_empty() {
        return err("`img_shapes` is empty: at least the output image is needed".into());
    }
    let last = img_shapes.len() - 1;
    let mut n_img = 0usize;
    let mut max_vid_index = 0usize;
    for (k, s) in img_shapes.iter().enumerate() {
        let what = format!(
            "`img_shapes` entry {k} (frames, height, width) = ({}, {}, {})",
            s.frames, s.height, s.width
        );
        if s.frames == 0 || s.height == 0 || s.width == 0 {
            return err(format!("{what} has no tokens"));
        }
        let condition = layout == Layout::Layer3d && k == last;
        if condition && s.frames != 1 {
            return err(format!(
                "{what}: the Layered condition image (the last entry) must have 1 frame"
            ));
        }
        // Frame rows k .. k+frames of the positive table (the condition image uses row -1).
        if !condition
            && k.checked_add(s.frames)
                .is_none_or(|end| end > MAX_ROPE_POSITION)
        {
            return err(format!(
                "{what}: frame positions {k}..{k}+{} run past the {MAX_ROPE_POSITION} RoPE \
                 positions of the reference",
                s.frames
            ));
        }
        for (axis, v) in [("height", s.height), ("width", s.width)] {
            if v.div_ceil(2) > MAX_ROPE_POSITION {
                return err(format!(
                    "{what}: {axis} {v} exceeds {} tokens (the reference's {MAX_ROPE_POSITION} \
                     RoPE positions on each side of the centre)",
                    2 * MAX_ROPE_POSITION
                ));
            }
        }
        // Both factors are now ≤ 8192 and frames ≤ 4096, so the product cannot overflow.
        n_img = n_img
            .checked_add(s.num_tokens())
            .filter(|&n| n <= MAX_IMAGE_TOKENS)
            .ok_or_else(|| {
                DitError::Input(format!(
                    "`img_shapes` {:?} give more than {MAX_IMAGE_TOKENS} image tokens per sample",
                    img_shapes
                        .iter()
                        .map(|s| (s.frames, s.height, s.width))
                        .collect::<Vec<_>>()
                ))
            })?;
        max_vid_index = max_vid_index.max(s.height / 2).max(s.width / 2);
    }
    if layout == Layout::Layer3d {
        // Layer3D starts the text after the layer count too.
        max_vid_index = max_vid_index.max(last);
    }
    if max_vid_index
        .checked_add(txt_len)
        .is_none_or(|end| end > MAX_ROPE_POSITION)
    {
        return err(format!(
            "text length {txt_len} starting at RoPE position {max_vid_index} (after the images of \
             `img_shapes`) runs past the {MAX_ROPE_POSITION} positions of the reference"
        ));
    }
    Ok((n_img, max_vid_index))
}

/// ω_j = 1 / θ^(2j/d) for one axis of width d, in f32 like upstream's `rope_params`.
fn inverse_frequencies(d: usize) -> Vec<f32> {
    (0..d / 2)
        .map(|j| 1.0 / THETA.powf((2 * j) as f32 / d as f32))
        .collect()
}

/// Append the angles `p_axis · ω_j` of one token: frame columns, then height, then width.
fn push_angles(out: &mut Vec<f32>, freqs: &[Vec<f32>; 3], pos: [i64; 3]) {
    for (axis, fr) in freqs.iter().enumerate() {
        let p = pos[axis] as f32;
        out.extend(fr.iter().map(|&w| p * w));
    }
}

/// Rotate `x` `[B, S, H, head_dim]` by the tables `cos`/`sin` `[S, head_dim/2]`.
///
/// As upstream, `x` is upcast to f32 for the complex multiply (the tables are f32) and the result
/// cast back to the input dtype.
pub(crate) fn apply_rope<B: Backend>(
    x: Tensor<B, 4>,
    cos: &Tensor<B, 2>,
    sin: &Tensor<B, 2>,
) -> Tensor<B, 4> {
    weights::nn::in_f32(x, |x| rotate_pairs(x, cos, sin))
}

fn rotate_pairs<B: Backend>(
    x: Tensor<B, 4>,
    cos: &Tensor<B, 2>,
    sin: &Tensor<B, 2>,
) -> Tensor<B, 4> {
    let [b, s, h, d] = x.dims();
    let pairs = x.reshape([b, s, h, d / 2, 2]);
    let re = pairs.clone().narrow(4, 0, 1);
    let im = pairs.narrow(4, 1, 1);
    let cos = cos.clone().reshape([1, s, 1, d / 2, 1]);
    let sin = sin.clone().reshape([1, s, 1, d / 2, 1]);
    let out_re = re.clone() * cos.clone() - im.clone() * sin.clone();
    let out_im = re * sin + im * cos;
    Tensor::cat(vec![out_re, out_im], 4).reshape([b, s, h, d])
}
