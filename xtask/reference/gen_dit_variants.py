"""Golden tensors for the Edit / Edit-Plus / Edit-2511 / Layered DiT variants (testdata/dit-variants/).

Three tiny official `QwenImageTransformer2DModel`s (diffusers), odd-sized where the model allows it
(3 heads of width 8, RoPE axes (2, 2, 4), text width 13, 12 input channels, 3 output channels per
patch position, 2 blocks), weights drawn as the tiny pipeline draws them (`scale_up`), rounded to
bf16 and saved in the released layout (`config.json` + bf16 `diffusion_pytorch_model.safetensors`):

  edit/       the base config, as Qwen-Image-Edit and Edit-2509 use it
  edit-2511/  the same weights with `zero_cond_t: true` (Qwen-Image-Edit-2511)
  layered/    `use_layer3d_rope` + `use_additional_t_cond` (Qwen-Image-Layered), other weights

The goldens run the bf16-rounded weights in f32. Each case file holds the `forward dit` inputs
(`hidden_states`, `encoder_hidden_states`, `encoder_hidden_states_mask` i64, `timestep` already
divided by 1000, `img_shapes` [B, K, 3] i64, and for Layered `additional_t_cond` [B] i64), the output
`sample`, and intermediates captured with hooks so that a failing Rust test points at its part:

  time_proj      [B, 256] (zero_cond_t: [2B, 256], t stacked over t*0)
  temb           [B, D]   time_text_embed output, with addition_t_embedding (zero_cond_t: [2B, D])
  img_in, txt_in, rope_img_cos/sin [N, head_dim/2], rope_txt_cos/sin [L, head_dim/2]
  block0_img / block0_txt  outputs of transformer_blocks.0
  modulate_index [B, N]    zero_cond_t only: 0 = modulated with t, 1 = with t = 0

Cases (every batch has 2 samples, padded text and a mask; the images of a sample differ in size;
timesteps are exact in bf16, as the pipeline's bf16(t)/1000 is, so the bf16 test compares like with like):
  edit_k2        edit model, img_shapes per sample [(1,3,5), (1,4,3)]
  edit_k3        edit model, [(1,3,5), (1,2,4), (1,5,3)]
  edit2511_k3    edit-2511 model, [(1,3,5), (1,4,3), (1,2,3)]; also `sample_plain`: the same inputs
                 through the edit model (zero_cond_t off), which must differ
  layered        layered model, layers = 2: three output frames (1,3,5) then the condition (1,4,3);
                 additional_t_cond [0, 1] so that both embedding rows are used
  rope_tables    the two RoPE modules alone (axes (4, 6, 8)) on shapes the pipelines do not use:
                 video_*  QwenEmbedRope, [(2,3,5), (1,4,4), (3,1,2)] (several frames), text 7
                 layer_*  QwenEmbedLayer3DRope, [(1,2,3), (2,2,3), (1,3,3)], text 5
                 layers6_* QwenEmbedLayer3DRope, six (1,2,2) frames + condition (1,2,2): the text
                          starts after the layer count (6), not after the image half-size (1)
"""

import json
import pathlib
import shutil

import torch
from diffusers import QwenImageTransformer2DModel
from diffusers.models.transformers.transformer_qwenimage import QwenEmbedLayer3DRope, QwenEmbedRope

from common import save_tensors
from gen_tiny_pipeline import scale_up

SUBDIR = "dit-variants"

BASE = dict(
    patch_size=2, in_channels=12, out_channels=3, num_layers=2, attention_head_dim=8,
    num_attention_heads=3, joint_attention_dim=13, guidance_embeds=False, axes_dims_rope=(2, 2, 4),
)


def _bf16_rounded(model):
    """Round every weight to bf16 (what the saved checkpoint holds) and keep running in f32."""
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.to(torch.bfloat16).to(torch.float32))
    return model.eval()


def _save(model, dst: pathlib.Path) -> None:
    """Official layout, bf16 weights; drop the absolute source path so reruns give the same bytes."""
    tmp = dst.with_name(dst.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.to(torch.bfloat16).save_pretrained(tmp, safe_serialization=True)
    model.to(torch.float32)
    cfg_path = tmp / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg.pop("_name_or_path", None)
    cfg_path.write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
    shutil.rmtree(dst, ignore_errors=True)
    tmp.rename(dst)


def _inputs(model, seed, shapes, txt_lens, timesteps, t_cond=None):
    """Seeded inputs for a batch whose samples all have the image list `shapes`."""
    g = torch.Generator().manual_seed(seed)
    cfg = model.config
    batch = len(txt_lens)
    n = sum(f * h * w for f, h, w in shapes)
    l_max = max(txt_lens)
    mask = torch.zeros(batch, l_max, dtype=torch.int64)
    for b, l in enumerate(txt_lens):
        mask[b, :l] = 1
    inputs = {
        "hidden_states": torch.randn(batch, n, cfg.in_channels, generator=g),
        # Padded rows hold noise, not zeros: only the mask may hide them.
        "encoder_hidden_states": torch.randn(batch, l_max, cfg.joint_attention_dim, generator=g),
        "encoder_hidden_states_mask": mask,
        "timestep": torch.tensor(timesteps, dtype=torch.float32),
        "img_shapes": torch.tensor([shapes] * batch, dtype=torch.int64),
    }
    if t_cond is not None:
        inputs["additional_t_cond"] = torch.tensor(t_cond, dtype=torch.int64)
    return inputs


def _run(model, inputs):
    """Forward with hooks; returns the captured intermediates plus `sample`."""
    cap = {}

    def keep(name):
        return lambda m, a, o: cap.__setitem__(name, o.detach().clone())

    def block0_kwargs(m, args, kwargs):
        idx = kwargs.get("modulate_index")
        if idx is not None:
            cap["modulate_index"] = idx.detach().clone()

    hooks = [
        model.time_text_embed.time_proj.register_forward_hook(keep("time_proj")),
        model.time_text_embed.register_forward_hook(keep("temb")),
        model.img_in.register_forward_hook(keep("img_in")),
        model.txt_in.register_forward_hook(keep("txt_in")),
        model.pos_embed.register_forward_hook(lambda m, a, o: cap.__setitem__("rope", o)),
        model.transformer_blocks[0].register_forward_pre_hook(block0_kwargs, with_kwargs=True),
        model.transformer_blocks[0].register_forward_hook(
            lambda m, a, o: cap.__setitem__("block0", (o[0].detach().clone(), o[1].detach().clone()))
        ),
    ]
    img_shapes = [[tuple(int(v) for v in s) for s in sample] for sample in inputs["img_shapes"]]
    extra = {}
    if "additional_t_cond" in inputs:
        extra["additional_t_cond"] = inputs["additional_t_cond"]
    with torch.no_grad():
        sample = model(
            hidden_states=inputs["hidden_states"],
            encoder_hidden_states=inputs["encoder_hidden_states"],
            encoder_hidden_states_mask=inputs["encoder_hidden_states_mask"],
            timestep=inputs["timestep"],
            img_shapes=img_shapes,
            return_dict=False,
            **extra,
        )[0]
    for h in hooks:
        h.remove()
    img_freqs, txt_freqs = cap.pop("rope")
    block_txt, block_img = cap.pop("block0")
    cap.update(
        {
            "rope_img_cos": img_freqs.real.float(),
            "rope_img_sin": img_freqs.imag.float(),
            "rope_txt_cos": txt_freqs.real.float(),
            "rope_txt_sin": txt_freqs.imag.float(),
            "block0_img": block_img,
            "block0_txt": block_txt,
            "sample": sample,
        }
    )
    return cap


def _rope_tables() -> dict:
    axes = [4, 6, 8]
    out = {"axes_dims": torch.tensor(axes, dtype=torch.int64)}
    cases = [
        ("video", QwenEmbedRope, [(2, 3, 5), (1, 4, 4), (3, 1, 2)], 7),
        ("layer", QwenEmbedLayer3DRope, [(1, 2, 3), (2, 2, 3), (1, 3, 3)], 5),
        ("layers6", QwenEmbedLayer3DRope, [(1, 2, 2)] * 6 + [(1, 2, 2)], 4),
    ]
    for name, cls, shapes, txt_len in cases:
        rope = cls(theta=10000, axes_dim=axes, scale_rope=True)
        img, txt = rope([shapes], max_txt_seq_len=txt_len, device=torch.device("cpu"))
        out[f"{name}_img_shapes"] = torch.tensor(shapes, dtype=torch.int64)
        out[f"{name}_txt_len"] = torch.tensor([txt_len], dtype=torch.int64)
        out[f"{name}_img_cos"] = img.real.float()
        out[f"{name}_img_sin"] = img.imag.float()
        out[f"{name}_txt_cos"] = txt.real.float()
        out[f"{name}_txt_sin"] = txt.imag.float()
    return out


def main(out: pathlib.Path) -> None:
    dst = pathlib.Path(out) / SUBDIR
    dst.mkdir(parents=True, exist_ok=True)
    meta = {"source": "diffusers 0.42.1 QwenImageTransformer2DModel, tiny variants, bf16-rounded weights run in f32"}

    edit = QwenImageTransformer2DModel(**BASE)
    scale_up(edit, torch.Generator().manual_seed(20261127))
    edit = _bf16_rounded(edit)
    edit2511 = QwenImageTransformer2DModel(**BASE, zero_cond_t=True)
    edit2511.load_state_dict(edit.state_dict())
    edit2511 = edit2511.eval()
    layered = QwenImageTransformer2DModel(**BASE, use_layer3d_rope=True, use_additional_t_cond=True)
    scale_up(layered, torch.Generator().manual_seed(20261128))
    layered = _bf16_rounded(layered)

    inputs = _inputs(edit, 11, [(1, 3, 5), (1, 4, 3)], [5, 8], [0.5, 0.75])
    save_tensors(dst / "edit_k2.safetensors", {**inputs, **_run(edit, inputs)}, meta)

    inputs = _inputs(edit, 12, [(1, 3, 5), (1, 2, 4), (1, 5, 3)], [8, 6], [0.25, 0.875])
    save_tensors(dst / "edit_k3.safetensors", {**inputs, **_run(edit, inputs)}, meta)

    inputs = _inputs(edit2511, 13, [(1, 3, 5), (1, 4, 3), (1, 2, 3)], [5, 8], [0.5, 0.75])
    golden = _run(edit2511, inputs)
    golden["sample_plain"] = _run(edit, inputs)["sample"]
    save_tensors(dst / "edit2511_k3.safetensors", {**inputs, **golden}, meta)

    layers = 2
    shapes = [(1, 3, 5)] * (layers + 1) + [(1, 4, 3)]
    inputs = _inputs(layered, 14, shapes, [6, 8], [0.5, 0.75], t_cond=[0, 1])
    save_tensors(dst / "layered.safetensors", {**inputs, **_run(layered, inputs)}, meta)

    save_tensors(dst / "rope_tables.safetensors", _rope_tables(), {"source": "diffusers 0.42.1 QwenEmbedRope / QwenEmbedLayer3DRope"})

    _save(edit, dst / "edit")
    _save(edit2511, dst / "edit-2511")
    _save(layered, dst / "layered")
