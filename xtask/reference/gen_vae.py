"""Goldens for crates/qwen-image-vae (testdata/vae/), from the official diffusers classes.

The tiny pipeline's AutoencoderKLQwenImage (testdata/tiny-qwen-image/vae, base_dim 8) is loaded in
f32 and driven exactly as QwenImagePipeline drives it. Files:

  decode_6x10.safetensors     non-square: `latents` [1,16,1,6,10] (what vae.decode takes) and
  decode_8x8_b2.safetensors   square, batch 2: `latents` [2,16,1,8,8].
      Both hold `sample` (vae.decode(latents).sample, clamped) and the intermediate outputs caught
      with forward hooks: `post_quant_conv`, `conv_in`, `mid_block`, `up_blocks.{0..3}` (the
      decoder's `conv_in` / `mid_block` / `up_blocks[i]` outputs for the single frame).
  pipeline_decode.safetensors the pipeline's decode block on packed latents for a requested size
      that is not a multiple of 16: `packed` [1,15,64], `height` / `width` [1] i64 (pixels),
      `unpacked` (QwenImagePipeline._unpack_latents), `denormalized` (latents / (1/std) + mean, as
      the pipeline writes it), `packed_again` (QwenImagePipeline._pack_latents of `unpacked`),
      `image` (vae.decode(...)[:, :, 0]) and `pixels` [1,H,W,3] i64 (VaeImageProcessor.postprocess,
      output_type="pil").
  postprocess.safetensors     VaeImageProcessor.postprocess on a crafted `image` [2,3,5,7] that
      covers the clamp on both sides and exact .5 ties of x*255 (round half to even): `pixels`.
"""

import pathlib

import numpy as np
import torch
from diffusers import AutoencoderKLQwenImage
from diffusers.image_processor import VaeImageProcessor
from diffusers.pipelines.qwenimage.pipeline_qwenimage import QwenImagePipeline

from common import save_tensors, tiny_pipeline_dir

SEED = 1234


def _vae(out: pathlib.Path) -> AutoencoderKLQwenImage:
    vae = AutoencoderKLQwenImage.from_pretrained(tiny_pipeline_dir(out) / "vae", torch_dtype=torch.float32)
    return vae.eval()


def _decode_with_hooks(vae: AutoencoderKLQwenImage, latents: torch.Tensor) -> dict:
    caught = {}

    def hook(name):
        def f(_module, _inputs, output):
            caught[name] = output.detach().clone()

        return f

    handles = [
        vae.post_quant_conv.register_forward_hook(hook("post_quant_conv")),
        vae.decoder.conv_in.register_forward_hook(hook("conv_in")),
        vae.decoder.mid_block.register_forward_hook(hook("mid_block")),
    ]
    for i, block in enumerate(vae.decoder.up_blocks):
        handles.append(block.register_forward_hook(hook(f"up_blocks.{i}")))
    with torch.no_grad():
        sample = vae.decode(latents).sample
    for h in handles:
        h.remove()
    return {"latents": latents, "sample": sample, **caught}


def _postprocess_pixels(image: torch.Tensor) -> torch.Tensor:
    processor = VaeImageProcessor(vae_scale_factor=16)
    pils = processor.postprocess(image, output_type="pil")
    return torch.from_numpy(np.stack([np.asarray(p) for p in pils])).to(torch.int64)


def _pipeline_decode(vae: AutoencoderKLQwenImage, gen: torch.Generator) -> dict:
    # A requested size that is not a multiple of 16: the pipeline floors it (52x85 -> 48x80 pixels).
    height, width = 52, 85
    vae_scale_factor = 2 ** len(vae.temperal_downsample)
    h, w = 2 * (height // (vae_scale_factor * 2)), 2 * (width // (vae_scale_factor * 2))
    packed = torch.randn(1, (h // 2) * (w // 2), 4 * vae.config.z_dim, generator=gen)
    unpacked = QwenImagePipeline._unpack_latents(packed, height, width, vae_scale_factor)
    packed_again = QwenImagePipeline._pack_latents(unpacked, 1, vae.config.z_dim, h, w)
    # The decode block of QwenImagePipeline.__call__, verbatim in its arithmetic.
    latents = unpacked.to(vae.dtype)
    latents_mean = torch.tensor(vae.config.latents_mean).view(1, vae.config.z_dim, 1, 1, 1).to(latents.dtype)
    latents_std = 1.0 / torch.tensor(vae.config.latents_std).view(1, vae.config.z_dim, 1, 1, 1).to(latents.dtype)
    denormalized = latents / latents_std + latents_mean
    with torch.no_grad():
        image = vae.decode(denormalized, return_dict=False)[0][:, :, 0]
    return {
        "packed": packed,
        "height": torch.tensor([height], dtype=torch.int64),
        "width": torch.tensor([width], dtype=torch.int64),
        "unpacked": unpacked,
        "packed_again": packed_again,
        "denormalized": denormalized,
        "image": image,
        "pixels": _postprocess_pixels(image),
    }


def _postprocess_case(gen: torch.Generator) -> dict:
    image = torch.rand(2, 3, 5, 7, generator=gen) * 2.4 - 1.2  # beyond [-1, 1] on both sides
    # Exact ties: (x*0.5+0.5)*255 = k + 0.5 for x = (2k+1)/255 - 1, all exactly representable
    # after the float32 arithmetic for these k (checked by the golden itself: np.round decides).
    ks = torch.tensor([0, 1, 2, 3, 100, 101, 126, 127, 253, 254], dtype=torch.float64)
    ties = ((2 * ks + 1) / 255 - 1).to(torch.float32)
    image.view(-1)[: ties.numel()] = ties
    image.view(-1)[ties.numel() : ties.numel() + 4] = torch.tensor([-1.0, 1.0, 0.0, -0.0])
    return {"image": image, "pixels": _postprocess_pixels(image)}


def main(out: pathlib.Path) -> None:
    dest = pathlib.Path(out) / "vae"
    vae = _vae(out)
    gen = torch.Generator().manual_seed(SEED)
    # Latents at the scale the VAE sees them (after de-normalisation: roughly mean + std * N(0,1)).
    lat = torch.randn(1, 16, 1, 6, 10, generator=gen) * 2.0
    save_tensors(dest / "decode_6x10.safetensors", _decode_with_hooks(vae, lat), {"seed": SEED})
    lat = torch.randn(2, 16, 1, 8, 8, generator=gen) * 2.0
    save_tensors(dest / "decode_8x8_b2.safetensors", _decode_with_hooks(vae, lat), {"seed": SEED})
    save_tensors(dest / "pipeline_decode.safetensors", _pipeline_decode(vae, gen), {"seed": SEED})
    save_tensors(dest / "postprocess.safetensors", _postprocess_case(gen), {"seed": SEED})
