//! `Qwen2_5_VisionTransformerPretrainedModel`: patch embedding → window permutation → blocks
//! (window attention, full attention at `fullatt_block_indexes`) → 2×2 patch merger → reverse
//! permutation. Field names mirror the PyTorch module tree (`blocks.{i}.attn.qkv` here is
//! `visual.blocks.{i}.attn.qkv` in the checkpoint).

use std::collections::BTreeMap;
use std::path::Path;

use burn::module::{Module, Param};
use burn::nn::Linear;
use burn::tensor::activation::{gelu, silu};
use burn::tensor::backend::Backend;
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{DType, Int, Tensor, TensorCreationOptions, TensorData};
use weights::Weights;
use weights::nn::{RmsNorm, in_f32};

use super::VisionConfig;
use super::grid;
use crate::Error;

/// Where the vision tower's tensors live: the released flat layout (`visual.*`) or the
/// transformers ≥ 4.52 in-memory layout (`model.visual.*`).
const LAYOUTS: [&str; 2] = ["model.visual.", "visual."];

/// Upstream hard-codes eps 1e-6 for every vision RMSNorm (blocks and merger), whatever the
/// config says.
const NORM_EPS: f64 = 1e-6;

/// Per-patch cos/sin tables `[N, head_dim]` (f32, window order).
struct Rotary<B: Backend> {
    cos: Tensor<B, 3>,
    sin: Tensor<B, 3>,
}

impl<B: Backend> Rotary<B> {
    /// `apply_rotary_pos_emb_vision` on `[N, heads, head_dim]`: rotate-half in f32, cast back.
    fn apply(&self, x: Tensor<B, 3>) -> Tensor<B, 3> {
        in_f32(x, |x| {
            let d = x.dims()[2];
            let x1 = x.clone().narrow(2, 0, d / 2);
            let x2 = x.clone().narrow(2, d / 2, d / 2);
            let rotated = Tensor::cat(vec![x2.neg(), x1], 2);
            x * self.cos.clone() + rotated * self.sin.clone()
        })
    }
}

/// Attention segments (images or windows), grouped by length so that each group is one batched
/// attention call without a mask.
struct Segments<B: Backend> {
    groups: Vec<Group<B>>,
    /// Puts the groups' concatenated rows back in sequence order; `None` when they already are.
    restore: Option<Tensor<B, 1, Int>>,
}

struct Group<B: Backend> {
    len: usize,
    count: usize,
    /// Rows of this group's segments in order; `None` when the group is the whole sequence.
    rows: Option<Tensor<B, 1, Int>>,
}

fn index_tensor<B: Backend>(v: &[usize], dev: &B::Device) -> Tensor<B, 1, Int> {
    let v: Vec<i64> = v.iter().map(|&i| i as i64).collect();
    let n = v.len();
    Tensor::from_data(TensorData::new(v, [n]), dev)
}

impl<B: Backend> Segments<B> {
    /// From boundaries `cu` (0 = cu[0] < … < cu[last] = N).
    fn new(cu: &[usize], dev: &B::Device) -> Self {
        let mut by_len: BTreeMap<usize, Vec<usize>> = BTreeMap::new();
        for w in cu.windows(2) {
            if w[1] > w[0] {
                by_len.entry(w[1] - w[0]).or_default().push(w[0]);
            }
        }
        if by_len.len() == 1
            && let Some((len, starts)) = by_len.first_key_value()
        {
            // Equal segments tile the sequence in order: a plain reshape batches them.
            return Self {
                groups: vec![Group {
                    len: *len,
                    count: starts.len(),
                    rows: None,
                }],
                restore: None,
            };
        }
        let mut order = Vec::new();
        let groups = by_len
            .into_iter()
            .map(|(len, starts)| {
                let rows: Vec<usize> = starts.iter().flat_map(|&s| s..s + len).collect();
                order.extend_from_slice(&rows);
                Group {
                    len,
                    count: starts.len(),
                    rows: Some(index_tensor(&rows, dev)),
                }
            })
            .collect();
        Self {
            groups,
            restore: Some(index_tensor(&grid::inverse(&order), dev)),
        }
    }
}

/// `Qwen2_5_VLVisionAttention`: fused qkv (with bias), 2-D rotary on q and k, attention within
/// each segment only, output projection (with bias).
#[derive(Module, Debug)]
struct VisionAttention<B: Backend> {
    qkv: Linear<B>,
    proj: Linear<B>,
    #[module(skip)]
    heads: usize,
    #[module(skip)]
    head_dim: usize,
}

impl<B: Backend> VisionAttention<B> {
    fn load(w: &Weights, prefix: &str, cfg: &VisionConfig, dev: &B::Device) -> Result<Self, Error> {
        let c = cfg.hidden_size;
        Ok(Self {
            qkv: w.linear(&format!("{prefix}.qkv"), c, 3 * c, true, dev)?,
            proj: w.linear(&format!("{prefix}.proj"), c, c, true, dev)?,
            heads: cfg.num_heads,
            head_dim: cfg.head_dim(),
        })
    }

    fn forward(&self, x: Tensor<B, 2>, rotary: &Rotary<B>, seg: &Segments<B>) -> Tensor<B, 2> {
        let n = x.dims()[0];
        let (h, hd) = (self.heads, self.head_dim);
        let qkv = self.qkv.forward(x).reshape([n, 3, h, hd]);
        let part = |i: usize| qkv.clone().narrow(1, i, 1).reshape([n, h, hd]);
        let (q, k, v) = (rotary.apply(part(0)), rotary.apply(part(1)), part(2));

        let mut outs = Vec::with_capacity(seg.groups.len());
        for g in &seg.groups {
            let batch = |t: Tensor<B, 3>| {
                let t = match &g.rows {
                    Some(rows) => t.select(0, rows.clone()),
                    None => t,
                };
                t.reshape([g.count, g.len, h, hd]).swap_dims(1, 2)
            };
            // Scale left at its default 1/√head_dim, upstream's `head_dim**-0.5`.
            let o = attention(
                batch(q.clone()),
                batch(k.clone()),
                batch(v.clone()),
                None,
                None,
                AttentionModuleOptions::default(),
            );
            outs.push(o.swap_dims(1, 2).reshape([g.count * g.len, h * hd]));
        }
        let out = Tensor::cat(outs, 0);
        let out = match &seg.restore {
            Some(r) => out.select(0, r.clone()),
            None => out,
        };
        self.proj.forward(out)
    }
}

/// `Qwen2_5_VLMLP` with biases: down(SiLU(gate(x)) · up(x)).
#[derive(Module, Debug)]
struct Mlp<B: Backend> {
    gate_proj: Linear<B>,
    up_proj: Linear<B>,
    down_proj: Linear<B>,
}

impl<B: Backend> Mlp<B> {
    fn load(w: &Weights, prefix: &str, cfg: &VisionConfig, dev: &B::Device) -> Result<Self, Error> {
        let (c, i) = (cfg.hidden_size, cfg.intermediate_size);
        Ok(Self {
            gate_proj: w.linear(&format!("{prefix}.gate_proj"), c, i, true, dev)?,
            up_proj: w.linear(&format!("{prefix}.up_proj"), c, i, true, dev)?,
            down_proj: w.linear(&format!("{prefix}.down_proj"), i, c, true, dev)?,
        })
    }

    fn forward(&self, x: Tensor<B, 2>) -> Tensor<B, 2> {
        let gate = silu(self.gate_proj.forward(x.clone()));
        self.down_proj.forward(gate * self.up_proj.forward(x))
    }
}

/// `Qwen2_5_VLVisionBlock` (pre-norm residual block).
#[derive(Module, Debug)]
struct VisionBlock<B: Backend> {
    norm1: RmsNorm<B>,
    attn: VisionAttention<B>,
    norm2: RmsNorm<B>,
    mlp: Mlp<B>,
}

impl<B: Backend> VisionBlock<B> {
    fn load(w: &Weights, prefix: &str, cfg: &VisionConfig, dev: &B::Device) -> Result<Self, Error> {
        let c = cfg.hidden_size;
        Ok(Self {
            norm1: RmsNorm::load(w, &format!("{prefix}.norm1"), c, NORM_EPS, dev)?,
            attn: VisionAttention::load(w, &format!("{prefix}.attn"), cfg, dev)?,
            norm2: RmsNorm::load(w, &format!("{prefix}.norm2"), c, NORM_EPS, dev)?,
            mlp: Mlp::load(w, &format!("{prefix}.mlp"), cfg, dev)?,
        })
    }

    fn forward(&self, x: Tensor<B, 2>, rotary: &Rotary<B>, seg: &Segments<B>) -> Tensor<B, 2> {
        let x = x.clone() + self.attn.forward(self.norm1.forward(x), rotary, seg);
        x.clone() + self.mlp.forward(self.norm2.forward(x))
    }
}

/// `Qwen2_5_VLPatchMerger`: RMSNorm, then each merge² consecutive patches concatenated and
/// mapped by Linear → GELU (erf) → Linear into the language model's width.
#[derive(Module, Debug)]
struct PatchMerger<B: Backend> {
    ln_q: RmsNorm<B>,
    mlp_0: Linear<B>,
    mlp_2: Linear<B>,
    #[module(skip)]
    merged_dim: usize,
}

impl<B: Backend> PatchMerger<B> {
    fn load(w: &Weights, prefix: &str, cfg: &VisionConfig, dev: &B::Device) -> Result<Self, Error> {
        let c = cfg.hidden_size;
        let m = c * cfg.spatial_merge_size * cfg.spatial_merge_size;
        Ok(Self {
            ln_q: RmsNorm::load(w, &format!("{prefix}.ln_q"), c, NORM_EPS, dev)?,
            mlp_0: w.linear(&format!("{prefix}.mlp.0"), m, m, true, dev)?,
            mlp_2: w.linear(
                &format!("{prefix}.mlp.2"),
                m,
                cfg.out_hidden_size,
                true,
                dev,
            )?,
            merged_dim: m,
        })
    }

    fn forward(&self, x: Tensor<B, 2>) -> Tensor<B, 2> {
        let n = x.dims()[0] * x.dims()[1] / self.merged_dim;
        let x = self.ln_q.forward(x).reshape([n, self.merged_dim]);
        self.mlp_2.forward(gelu(self.mlp_0.forward(x)))
    }
}

/// Every intermediate of one forward pass, for locating a parity failure (names as in
/// `testdata/vision/tower.safetensors`).
#[derive(Debug, Clone)]
pub struct VisionIntermediates<B: Backend> {
    /// The patch embedding `[N, C]`, in `pixel_values` order.
    pub patch_embeds: Tensor<B, 2>,
    /// For each merged unit in window order, its index in `pixel_values` order.
    pub window_index: Vec<usize>,
    /// Window boundaries, in patches (window order).
    pub cu_window_seqlens: Vec<usize>,
    /// Image (frame) boundaries, in patches.
    pub cu_seqlens: Vec<usize>,
    /// Rotary cos / sin tables `[N, head_dim]` in window order (f32).
    pub cos: Tensor<B, 2>,
    pub sin: Tensor<B, 2>,
    /// Each block's output `[N, C]`, window order.
    pub blocks: Vec<Tensor<B, 2>>,
    /// The merger's output `[N / merge², D]`, window order.
    pub merger: Tensor<B, 2>,
    /// The tower's output `[N / merge², D]`, image order.
    pub image_embeds: Tensor<B, 2>,
}

/// The Qwen2.5-VL vision tower, generic over the burn backend.
#[derive(Module, Debug)]
pub struct VisionTower<B: Backend> {
    /// The Conv3d patch embedding as a matmul: `[patch_dim, C]` (kernel = stride = the patch).
    patch_embed: Param<Tensor<B, 2>>,
    blocks: Vec<VisionBlock<B>>,
    merger: PatchMerger<B>,
    #[module(skip)]
    config: VisionConfig,
    #[module(skip)]
    inv_freq: Vec<f32>,
}

impl<B: Backend> VisionTower<B> {
    /// Load from a transformers `text_encoder/` folder (`config.json` with a `vision_config`,
    /// plus `model.safetensors` or shards with an index; bf16, f16 or f32 stored).
    ///
    /// Only the vision tower's tensors are read (`visual.*` or `model.visual.*`); the language
    /// model's are left in the map. Loading is strict for the tower: a missing, wrong-shaped or
    /// unexpected `visual.*` tensor is an error naming the tensor and the file.
    pub fn load(dir: impl AsRef<Path>, device: &B::Device) -> Result<Self, Error> {
        let dir = dir.as_ref();
        let config = VisionConfig::from_file(&dir.join("config.json"))?;
        let weights = Weights::open(dir)?;
        Self::from_weights(&weights, config, device)
    }

    /// Build from an opened checkpoint (the layout is detected from the names).
    pub fn from_weights(
        w: &Weights,
        config: VisionConfig,
        device: &B::Device,
    ) -> Result<Self, Error> {
        let root = LAYOUTS
            .into_iter()
            .find(|p| w.contains(&format!("{p}patch_embed.proj.weight")))
            .unwrap_or("visual.");
        let c = config.hidden_size;
        let (ch, t, p) = (
            config.in_channels,
            config.temporal_patch_size,
            config.patch_size,
        );
        // Conv3d weight [C, in, T, P, P]: its rows flatten in pixel_values' (c, t, y, x) order.
        let conv: Tensor<B, 5> = w.get(
            &format!("{root}patch_embed.proj.weight"),
            [c, ch, t, p, p],
            device,
        )?;
        let patch_embed = Param::from_tensor(conv.reshape([c, config.patch_dim()]).transpose());
        let blocks = (0..config.depth)
            .map(|i| VisionBlock::load(w, &format!("{root}blocks.{i}"), &config, device))
            .collect::<Result<Vec<_>, _>>()?;
        let merger = PatchMerger::load(w, &format!("{root}merger"), &config, device)?;
        let unused: Vec<String> = w
            .unused(&[])
            .into_iter()
            .filter(|n| n.starts_with(root))
            .collect();
        if !unused.is_empty() {
            let files: Vec<String> = w.files().iter().map(|f| f.display().to_string()).collect();
            return Err(Error::Weights(weights::Error::Unexpected {
                count: unused.len(),
                names: format!("{} (in {})", unused.join(", "), files.join(", ")),
            }));
        }
        // The 2-D rotary uses head_dim/4 frequencies per axis: upstream's
        // `1 / theta^(arange(0, dim, 2) / dim)` with dim = head_dim / 2.
        let inv_freq = crate::rope::inv_freq(config.rope_theta, config.head_dim() / 2);
        Ok(Self {
            patch_embed,
            blocks,
            merger,
            config,
            inv_freq,
        })
    }

    /// The tower's configuration.
    pub fn config(&self) -> &VisionConfig {
        &self.config
    }

    /// The rotary inverse frequencies `[head_dim / 4]` (f32, as upstream's `inv_freq` buffer).
    pub fn inv_freq(&self) -> &[f32] {
        &self.inv_freq
    }

    /// `image_embeds` `[N / merge², out_hidden_size]` for `pixel_values` `[N, patch_dim]` and
    /// `image_grid_thw` (one `[t, h, w]` per image, in patches): every image's merged tokens in
    /// order, as `Qwen2_5_VLModel.get_image_features` concatenates them.
    ///
    /// Errors when the grid and `pixel_values` disagree (see [`super::check_grid`]).
    pub fn forward(
        &self,
        pixel_values: Tensor<B, 2>,
        grid_thw: &[[usize; 3]],
    ) -> Result<Tensor<B, 2>, Error> {
        self.run(pixel_values, grid_thw, false)
            .map(|i| i.image_embeds)
    }

    /// Like [`forward`](Self::forward), keeping every intermediate.
    pub fn forward_intermediates(
        &self,
        pixel_values: Tensor<B, 2>,
        grid_thw: &[[usize; 3]],
    ) -> Result<VisionIntermediates<B>, Error> {
        self.run(pixel_values, grid_thw, true)
    }

    fn run(
        &self,
        pixel_values: Tensor<B, 2>,
        grid_thw: &[[usize; 3]],
        keep: bool,
    ) -> Result<VisionIntermediates<B>, Error> {
        let cfg = &self.config;
        let dev = pixel_values.device();
        let [n, k] = pixel_values.dims();
        if k != cfg.patch_dim() {
            return Err(Error::VisionInput(format!(
                "pixel_values has {k} values per patch, the tower expects {} \
                 (channels {} · temporal {} · patch {}²)",
                cfg.patch_dim(),
                cfg.in_channels,
                cfg.temporal_patch_size,
                cfg.patch_size
            )));
        }
        let merge = cfg.spatial_merge_size;
        grid::check_grid(grid_thw, merge, n)?;
        let unit = merge * merge;
        let (window_index, cu_window) = grid::window_index(grid_thw, merge, cfg.merged_window());
        let cu_full = grid::cu_seqlens(grid_thw);

        // Patch rows in window order: merged unit window_index[j] goes to place j.
        let patch_order: Vec<usize> = window_index
            .iter()
            .flat_map(|&u| u * unit..(u + 1) * unit)
            .collect();
        let (cos, sin) = self.rotary_tables(grid_thw, &patch_order, &dev);

        let w = self.patch_embed.val();
        let patch_embeds = pixel_values.cast(w.dtype()).matmul(w);
        let mut x = patch_embeds
            .clone()
            .select(0, index_tensor(&patch_order, &dev));

        let rotary = Rotary {
            cos: cos.clone().unsqueeze_dim(1),
            sin: sin.clone().unsqueeze_dim(1),
        };
        let windows = Segments::new(&cu_window, &dev);
        let full = Segments::new(&cu_full, &dev);
        let mut blocks = Vec::new();
        for (i, block) in self.blocks.iter().enumerate() {
            let seg = if cfg.fullatt_block_indexes.contains(&i) {
                &full
            } else {
                &windows
            };
            x = block.forward(x, &rotary, seg);
            if keep {
                blocks.push(x.clone());
            }
        }
        let merger = self.merger.forward(x);
        let image_embeds = merger
            .clone()
            .select(0, index_tensor(&grid::inverse(&window_index), &dev));
        Ok(VisionIntermediates {
            patch_embeds,
            window_index,
            cu_window_seqlens: cu_window,
            cu_seqlens: cu_full,
            cos,
            sin,
            blocks,
            merger,
            image_embeds,
        })
    }

    /// cos/sin `[N, head_dim]` in window order, f32: per patch (row r, column c) the angles
    /// `[r·f, c·f, r·f, c·f]` (f = inv_freq), each product rounded to f32 as torch computes it.
    fn rotary_tables(
        &self,
        grid_thw: &[[usize; 3]],
        patch_order: &[usize],
        dev: &B::Device,
    ) -> (Tensor<B, 2>, Tensor<B, 2>) {
        let pos = grid::position_ids(grid_thw, self.config.spatial_merge_size);
        let f = &self.inv_freq;
        let hd = 4 * f.len();
        let mut cos = Vec::with_capacity(patch_order.len() * hd);
        let mut sin = Vec::with_capacity(patch_order.len() * hd);
        for &i in patch_order {
            let [r, c] = pos[i];
            for _ in 0..2 {
                for axis in [r, c] {
                    for &fj in f {
                        let a = axis as f32 * fj;
                        cos.push(a.cos());
                        sin.push(a.sin());
                    }
                }
            }
        }
        let opts = || TensorCreationOptions::new(dev.clone()).with_dtype(DType::F32);
        let n = patch_order.len();
        (
            Tensor::from_data(TensorData::new(cos, [n, hd]), opts()),
            Tensor::from_data(TensorData::new(sin, [n, hd]), opts()),
        )
    }
}
