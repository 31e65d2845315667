//! MSRoPE: Qwen-Image's three-axis rotary position embedding (diffusers `QwenEmbedRope` with
//! `scale_rope=True`, theta 10000).
//!
//! Each head vector is split into (frame, height, width) slices of `axes_dims_rope` widths, and
//! every adjacent pair `(x[2k], x[2k+1])` is rotated as the complex number `x[2k] + i·x[2k+1]`
//! (interleaved pairs — not the rotate-half layout of the text encoder). Each axis uses its own
//! width in the frequency exponent.

use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};

use crate::DitError;

/// RoPE angle base, hard-coded upstream (`QwenEmbedRope(theta=10000, …)`).
const THETA: f32 = 10000.0;
/// Upstream precomputes 4096 positive and 4096 negative table rows; a position outside that
/// range has no table entry there (diffusers then fails on a shape mismatch).
const MAX_POS: usize = 4096;

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

    /// Number of tokens this image contributes.
    pub fn num_tokens(&self) -> usize {
        self.frames * self.height * self.width
    }
}

/// The cos/sin tables for one (image shapes, text length) pair, each `[tokens, head_dim / 2]`,
/// computed once and reused by every block and every denoising step.
#[derive(Debug, Clone)]
pub struct Rope<B: Backend> {
    img_cos: Tensor<B, 2>,
    img_sin: Tensor<B, 2>,
    txt_cos: Tensor<B, 2>,
    txt_sin: Tensor<B, 2>,
}

impl<B: Backend> Rope<B> {
    /// Build the tables for `img_shapes` (the images of one sample, in sequence order) and a
    /// text sequence of `txt_len` tokens (the padded length), for heads split by `axes_dims`.
    pub fn new(
        axes_dims: [usize; 3],
        img_shapes: &[ImageShape],
        txt_len: usize,
        device: &B::Device,
    ) -> Result<Self, DitError> {
        if img_shapes.is_empty() {
            return Err(DitError::Input("img_shapes is empty".into()));
        }
        if let Some(s) = img_shapes.iter().find(|s| s.num_tokens() == 0) {
            return Err(DitError::Input(format!("image shape {s:?} has no tokens")));
        }
        let half: usize = axes_dims.iter().sum::<usize>() / 2;
        let freqs: [Vec<f32>; 3] = axes_dims.map(inverse_frequencies);

        // Image tokens, row-major over (f, h, w). The k-th image's frame axis starts at k; height
        // and width are centred: positions -ceil(H/2) .. floor(H/2)-1 (`scale_rope=True`).
        let n_img: usize = img_shapes.iter().map(ImageShape::num_tokens).sum();
        let mut img_angles = Vec::with_capacity(n_img * half);
        let mut max_vid_index = 0usize;
        for (k, s) in img_shapes.iter().enumerate() {
            let h0 = s.height.div_ceil(2) as i64;
            let w0 = s.width.div_ceil(2) as i64;
            if k + s.frames > MAX_POS || s.height / 2 > MAX_POS || s.width / 2 > MAX_POS {
                return Err(DitError::Input(format!(
                    "image shape {s:?} exceeds the {MAX_POS} RoPE positions of the reference"
                )));
            }
            for f in 0..s.frames {
                for h in 0..s.height {
                    for w in 0..s.width {
                        let pos = [(k + f) as i64, h as i64 - h0, w as i64 - w0];
                        push_angles(&mut img_angles, &freqs, pos);
                    }
                }
            }
            max_vid_index = max_vid_index.max(s.height / 2).max(s.width / 2);
        }

        // Text token j sits at max_vid_index + j on all three axes, so text never shares a
        // position with an image token.
        if max_vid_index + txt_len > MAX_POS {
            return Err(DitError::Input(format!(
                "text length {txt_len} exceeds the {MAX_POS} RoPE positions of the reference"
            )));
        }
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
    /// Number of image tokens these tables cover.
    pub fn num_img_tokens(&self) -> usize {
        self.img_cos.dims()[0]
    }
    /// Number of text tokens these tables cover.
    pub fn txt_len(&self) -> usize {
        self.txt_cos.dims()[0]
    }
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
    crate::layers::in_f32(x, |x| rotate_pairs(x, cos, sin))
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
