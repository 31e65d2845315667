"""Golden tensors for crates/qwen-image-dit (testdata/dit/).

The official `QwenImageTransformer2DModel` (diffusers) is loaded from the tiny pipeline's
`transformer/` folder in f32 and run on seeded random inputs. Each case file holds the CLI-contract
inputs (`hidden_states`, `encoder_hidden_states`, optional `encoder_hidden_states_mask` i64,
`timestep` already divided by 1000, `img_shapes` [B, 3] i64), the output `sample`, and intermediates
captured with forward hooks so that a failing Rust test points at its part:

  time_proj      [B, 256]   sinusoid (Timesteps: [cos, sin], scale 1000)
  temb           [B, D]     time_text_embed output
  img_in         [B, N, D]  image tokens after img_in
  txt_in         [B, L, D]  text tokens after txt_norm + txt_in
  rope_img_cos / rope_img_sin [N, head_dim/2]  real/imag of the image MSRoPE table
  rope_txt_cos / rope_txt_sin [L, head_dim/2]  real/imag of the text MSRoPE table
  block0_img / block0_txt     outputs of transformer_blocks.0 (image, text streams)

Cases:
  b1_nomask    batch 1, 4x4 tokens, no mask
  b2_mask      batch 2, 3x5 tokens (odd sizes: centring uses ceil), text lengths 5 and 8 padded to 8,
               padded text rows filled with noise (not zeros) so that the mask is what hides them;
               also `sample_nomask`: the same inputs without the mask (must differ)
  nonsquare    batch 1, 4x6 tokens, no mask
  bf16_sharded batch 1 inputs of b1_nomask run with the bf16-rounded weights; the checkpoint is
               also written in the released layout (bf16 shards + index) to transformer-bf16-sharded/
"""

import json
import pathlib
import shutil

import torch
from diffusers import QwenImageTransformer2DModel

from common import save_tensors, tiny_pipeline_dir

SUBDIR = "dit"


def _case(model, seed, batch, img_shape, txt_lens, timesteps, pad_noise=True):
    """Random inputs for one case; returns (inputs dict, mask or None)."""
    g = torch.Generator().manual_seed(seed)
    cfg = model.config
    f, h, w = img_shape
    n = f * h * w
    l_max = max(txt_lens)
    hidden = torch.randn(batch, n, cfg.in_channels, generator=g)
    enc = torch.randn(batch, l_max, cfg.joint_attention_dim, generator=g)
    mask = None
    if any(l != l_max for l in txt_lens):
        mask = torch.zeros(batch, l_max, dtype=torch.int64)
        for b, l in enumerate(txt_lens):
            mask[b, :l] = 1
        if not pad_noise:
            enc = enc * mask[..., None]
    inputs = {
        "hidden_states": hidden,
        "encoder_hidden_states": enc,
        "timestep": torch.tensor(timesteps, dtype=torch.float32),
        "img_shapes": torch.tensor([list(img_shape)] * batch, dtype=torch.int64),
    }
    if mask is not None:
        inputs["encoder_hidden_states_mask"] = mask
    return inputs, mask


def _run(model, inputs, mask):
    """Forward with hooks; returns the captured intermediates plus `sample`."""
    cap = {}
    hooks = [
        model.time_text_embed.time_proj.register_forward_hook(
            lambda m, a, o: cap.__setitem__("time_proj", o.detach().clone())
        ),
        model.time_text_embed.register_forward_hook(lambda m, a, o: cap.__setitem__("temb", o.detach().clone())),
        model.img_in.register_forward_hook(lambda m, a, o: cap.__setitem__("img_in", o.detach().clone())),
        model.txt_in.register_forward_hook(lambda m, a, o: cap.__setitem__("txt_in", o.detach().clone())),
        model.pos_embed.register_forward_hook(lambda m, a, o: cap.__setitem__("rope", o)),
        model.transformer_blocks[0].register_forward_hook(
            lambda m, a, o: cap.__setitem__("block0", (o[0].detach().clone(), o[1].detach().clone()))
        ),
    ]
    img_shapes = [[tuple(int(v) for v in row)] for row in inputs["img_shapes"]]
    with torch.no_grad():
        sample = model(
            hidden_states=inputs["hidden_states"],
            encoder_hidden_states=inputs["encoder_hidden_states"],
            encoder_hidden_states_mask=mask,
            timestep=inputs["timestep"],
            img_shapes=img_shapes,
            return_dict=False,
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


def main(out: pathlib.Path) -> None:
    src = tiny_pipeline_dir(out) / "transformer"
    dst = pathlib.Path(out) / SUBDIR
    dst.mkdir(parents=True, exist_ok=True)
    model = QwenImageTransformer2DModel.from_pretrained(src, torch_dtype=torch.float32).eval()

    meta = {"source": "diffusers QwenImageTransformer2DModel, testdata/tiny-qwen-image/transformer, f32"}

    inputs, mask = _case(model, 1, 1, (1, 4, 4), [7], [0.98828125])
    save_tensors(dst / "b1_nomask.safetensors", {**inputs, **_run(model, inputs, mask)}, meta)

    inputs, mask = _case(model, 2, 2, (1, 3, 5), [5, 8], [0.5, 0.75])
    golden = _run(model, inputs, mask)
    golden["sample_nomask"] = _run(model, inputs, None)["sample"]
    save_tensors(dst / "b2_mask.safetensors", {**inputs, **golden}, meta)

    inputs, mask = _case(model, 3, 1, (1, 4, 6), [6], [0.25])
    save_tensors(dst / "nonsquare.safetensors", {**inputs, **_run(model, inputs, mask)}, meta)

    # Released layout: bf16 weights in several shards with a diffusers index. The golden runs the
    # bf16-rounded weights upcast to f32, so the Rust f32 run of the shards must match it tightly.
    sharded = dst / "transformer-bf16-sharded"
    tmp = dst / "transformer-bf16-sharded.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    model.to(torch.bfloat16).save_pretrained(tmp, max_shard_size="300KB", safe_serialization=True)
    # save_pretrained records the absolute source path; drop it so reruns elsewhere give the same bytes.
    cfg_path = tmp / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg.pop("_name_or_path", None)
    cfg_path.write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
    shutil.rmtree(sharded, ignore_errors=True)
    tmp.rename(sharded)
    model = model.to(torch.float32)
    inputs, mask = _case(model, 1, 1, (1, 4, 4), [7], [0.98828125])
    golden = {"sample": _run(model, inputs, mask)["sample"]}
    save_tensors(
        dst / "bf16_sharded.safetensors",
        {**inputs, **golden},
        {"source": "diffusers QwenImageTransformer2DModel, bf16-rounded weights run in f32"},
    )
