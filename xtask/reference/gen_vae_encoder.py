"""Goldens for the VAE encoder of crates/qwen-image-vae (testdata/vae-encoder/), from the official
diffusers 0.42.1 AutoencoderKLQwenImage in f32.

Two official VAEs:
  - RGB: the tiny pipeline's VAE (testdata/tiny-qwen-image/vae: base_dim 8, num_res_blocks 2,
    input_channels 3), read in its released layout;
  - RGBA: a tiny `input_channels=4` VAE built here (base_dim 4, num_res_blocks 1: the encoder's flat
    `down_blocks` numbering then differs from the RGB one; z_dim 16 as Qwen-Image-Layered's) with the
    tiny pipeline's re-drawn weights (`scale_up`) and its own latents_mean/std, saved with
    `save_pretrained` in the released layout under `rgba-vae/`.

Files (images are seeded uniform noise in [-1, 1]; H/8 and W/8 odd):
  encode_rgb_40x56.safetensors    `image` [1,3,1,40,56] and, caught with forward hooks on the
  encode_rgba_24x40.safetensors   official modules, `conv_in`, `down_blocks.{i}` (every entry of the
      encoder's flat list: residual blocks and downsamplers), `mid_block`, `encoder` (the encoder's
      output, before quant_conv); then `moments` (vae.encode(image).latent_dist.parameters, i.e. after
      quant_conv), `mean` (retrieve_latents(..., sample_mode="argmax"), the pipelines' call), and
      `normalized` ((mean - latents_mean) / latents_std written as QwenImageEditPipeline /
      QwenImageLayeredPipeline._encode_vae_image write it).
  encode_rgb_24x56_b2.safetensors a batch of two: `image`, `moments`, `mean`, `normalized`.
  decode_rgba_3x5.safetensors     the RGBA VAE's 4-channel decode: `latents` [1,16,1,3,5], `sample`
      [1,4,1,24,40] (vae.decode(latents).sample) and the decoder hooks `post_quant_conv`, `conv_in`,
      `mid_block`, `up_blocks.{i}`.
The two single-image encode files and the decode file also hold `bf16_scaled_err` [1]: how far the
official model run in bf16 (weights and input; torch CPU) lands from its own f32 output (`mean`,
resp. `sample`), as max |bf16 - f32| / max |f32|. The Rust bf16 tests are bounded by it where the
narrow tiny models drift more than the usual bf16 tolerance.
"""

import pathlib

import torch
from diffusers import AutoencoderKLQwenImage

from common import save_tensors, tiny_pipeline_dir
from gen_tiny_pipeline import scale_up

SEED = 4242
FOLDER = "vae-encoder"


def _rgba_vae(dest: pathlib.Path) -> AutoencoderKLQwenImage:
    gen = torch.Generator().manual_seed(SEED + 1)
    latents_mean = [round(float(x), 4) for x in (torch.randn(16, generator=gen) * 0.8)]
    latents_std = [round(float(x), 4) for x in (1.0 + torch.rand(16, generator=gen) * 2.0)]
    vae = AutoencoderKLQwenImage(
        base_dim=4, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=1, attn_scales=[],
        temperal_downsample=[False, True, True], dropout=0.0, input_channels=4,
        latents_mean=latents_mean, latents_std=latents_std,
    )
    scale_up(vae, gen)
    vae.save_pretrained(str(dest), safe_serialization=True)
    # Read back what was written, so that the goldens come from the files the Rust side loads.
    return AutoencoderKLQwenImage.from_pretrained(str(dest), torch_dtype=torch.float32).eval()


def _hooked(modules: dict, run):
    caught = {}

    def hook(name):
        def f(_module, _inputs, output):
            caught[name] = output.detach().clone()

        return f

    handles = [m.register_forward_hook(hook(n)) for n, m in modules.items()]
    try:
        with torch.no_grad():
            result = run()
    finally:
        for h in handles:
            h.remove()
    return result, caught


def _normalize(vae: AutoencoderKLQwenImage, image_latents: torch.Tensor) -> torch.Tensor:
    # QwenImageEditPipeline._encode_vae_image / QwenImageLayeredPipeline._encode_vae_image, verbatim
    # in their arithmetic: subtract the mean, then divide by std (not multiply by 1/std).
    z = vae.config.z_dim
    latents_mean = torch.tensor(vae.config.latents_mean).view(1, z, 1, 1, 1).to(image_latents.device, image_latents.dtype)
    latents_std = torch.tensor(vae.config.latents_std).view(1, z, 1, 1, 1).to(image_latents.device, image_latents.dtype)
    return (image_latents - latents_mean) / latents_std


def _encode(vae: AutoencoderKLQwenImage, image: torch.Tensor, hooks: bool) -> dict:
    modules = {}
    if hooks:
        enc = vae.encoder
        modules = {"conv_in": enc.conv_in, "mid_block": enc.mid_block, "encoder": enc}
        for i, layer in enumerate(enc.down_blocks):
            modules[f"down_blocks.{i}"] = layer
    dist, caught = _hooked(modules, lambda: vae.encode(image).latent_dist)
    # The pipelines' retrieve_latents(..., sample_mode="argmax") is latent_dist.mode().
    mean = dist.mode().clone()  # a view into the moments: saved on its own
    return {
        "image": image,
        **caught,
        "moments": dist.parameters,
        "mean": mean,
        "normalized": _normalize(vae, mean),
    }


def _decode(vae: AutoencoderKLQwenImage, latents: torch.Tensor) -> dict:
    modules = {
        "post_quant_conv": vae.post_quant_conv,
        "conv_in": vae.decoder.conv_in,
        "mid_block": vae.decoder.mid_block,
    }
    for i, block in enumerate(vae.decoder.up_blocks):
        modules[f"up_blocks.{i}"] = block
    sample, caught = _hooked(modules, lambda: vae.decode(latents).sample)
    return {"latents": latents, "sample": sample, **caught}


def _bf16_scaled_err(vae_dir: pathlib.Path, golden: dict) -> torch.Tensor:
    vae = AutoencoderKLQwenImage.from_pretrained(str(vae_dir), torch_dtype=torch.bfloat16).eval()
    with torch.no_grad():
        if "image" in golden:
            ours, want = vae.encode(golden["image"].bfloat16()).latent_dist.mode(), golden["mean"]
        else:
            ours, want = vae.decode(golden["latents"].bfloat16()).sample, golden["sample"]
    err = (ours.float() - want).abs().max() / want.abs().max()
    return err.reshape(1)


def _with_bf16(vae_dir: pathlib.Path, golden: dict) -> dict:
    return {**golden, "bf16_scaled_err": _bf16_scaled_err(vae_dir, golden)}


def _image(gen: torch.Generator, shape) -> torch.Tensor:
    return torch.rand(*shape, generator=gen) * 2.0 - 1.0


def main(out: pathlib.Path) -> None:
    dest = pathlib.Path(out) / FOLDER
    meta = {"seed": SEED}
    rgb_dir, rgba_dir = tiny_pipeline_dir(out) / "vae", dest / "rgba-vae"
    rgb = AutoencoderKLQwenImage.from_pretrained(rgb_dir, torch_dtype=torch.float32).eval()
    rgba = _rgba_vae(rgba_dir)
    gen = torch.Generator().manual_seed(SEED)

    golden = _encode(rgb, _image(gen, (1, 3, 1, 40, 56)), True)
    save_tensors(dest / "encode_rgb_40x56.safetensors", _with_bf16(rgb_dir, golden), meta)
    golden = _encode(rgb, _image(gen, (2, 3, 1, 24, 56)), False)
    save_tensors(dest / "encode_rgb_24x56_b2.safetensors", golden, meta)
    golden = _encode(rgba, _image(gen, (1, 4, 1, 24, 40)), True)
    save_tensors(dest / "encode_rgba_24x40.safetensors", _with_bf16(rgba_dir, golden), meta)
    # Latents at the scale the VAE decodes them (after de-normalisation).
    latents = torch.randn(1, 16, 1, 3, 5, generator=gen) * 2.0
    save_tensors(dest / "decode_rgba_3x5.safetensors", _with_bf16(rgba_dir, _decode(rgba, latents)), meta)
    print(f"[vae_encoder] wrote {dest}")
