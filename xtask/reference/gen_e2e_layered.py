"""End-to-end official GT for Qwen-Image-Layered: diffusers 0.42.1 `QwenImageLayeredPipeline` run on a
tiny official Layered folder, with what is needed to locate a mismatch, and the case file that drives
`cargo xtask consistency`.

The pipeline gets its image as upstream's official GT script gives it (`Image.open(path)
.convert("RGBA")`). diffusers only accepts the resolution buckets 640 and 1024 (it asserts), so both
cases run at 640 (~640² pixels per frame, ~1600 tokens per frame) with a tiny DiT and VAE and 2 steps.

Writes:
  tiny-qwen-image-layered/   `QwenImageLayeredPipeline` in the released layout: model_index.json as
      `save_pretrained` writes it; transformer/ a tiny Layered DiT (use_layer3d_rope,
      use_additional_t_cond, 3 heads of 16, axes 4/6/6, text width 12); vae/ a tiny 4-channel (RGBA)
      VAE, z 16, base_dim 4 (see `rgba_vae`), both stored in bf16 as the released weights are;
      text_encoder and processor -> ../caption/tiny-layered-untied/<name> (gen_caption.py's Qwen2.5-VL
      with a vision tower, an untied lm_head and the released generation config, whose English
      caption of ../caption/image_rgba.png at 640 ends on eos after 14 tokens); scheduler and
      tokenizer -> ../tiny-qwen-image/<name>.
  e2e-layered/
      <case>/layer_<k>.png          diffusers' RGBA layers (`output.images[0][k]`)
      <case>.safetensors            `initial_latents_head` / `latents_step1_head` [F, 8, 64]: the first 8
                                    packed tokens of each of the F = layers + 1 frames, before and
                                    after the first step; `initial_latents_sum`, `latents_step1_sum`
                                    [F] (f64 sums of each frame's tokens: the whole tensor, cheaply);
                                    `image_latents_head` [8, 64] and `image_latents_sum` [1] (the
                                    normalised, packed VAE latents of the input); `sigmas` [steps + 1]
                                    and `timesteps` [steps] as the scheduler holds them
      cases.json                    per case: every argument, the output size, img_shapes, mu, the
                                    prompt the pipeline used (the caption for an empty prompt), the
                                    caption's generated ids and its prompt length
  gt/official_generated/<case>_1gpu.png   what upstream's gen_official_diffusion_gt.py saves: the first
      layer, `convert("RGB")` (alpha dropped, not composited); case_map.json entries (others kept)
  cases/tiny_layered.toml

The input is ../caption/image_rgba.png (RGBA 97x61, alpha from 0 to 255; the 640 bucket is 800x512).

Cases (2 steps each, CPU generator seeds: diffusers draws the noise as (1, layers + 1, 16, h, w)):
  tiny_layered_prompt    a given prompt, CFG 4 with " ", cfg_normalize off (diffusers' default), 2 layers
  tiny_layered_caption   prompt " " (upstream's Layered case): the image is captioned (English prompt),
                         CFG 4 with " ", cfg_normalize on (SGLang's Layered default), 1 layer
"""

import json
import pathlib
import shutil

import numpy as np
import torch
from diffusers import (
    AutoencoderKLQwenImage,
    FlowMatchEulerDiscreteScheduler,
    QwenImageLayeredPipeline,
    QwenImageTransformer2DModel,
)
from PIL import Image
from transformers import Qwen2_5_VLForConditionalGeneration, Qwen2Tokenizer, Qwen2VLProcessor

import common
from gen_text_encoder_mm import link
from gen_tiny_pipeline import scale_up

LAYERED_DIR = "tiny-qwen-image-layered"
OUT_DIR = "e2e-layered"
STEPS = 2
HEAD_TOKENS = 8
CAPTION_FOLDER = "caption/tiny-layered-untied"
INPUT = "caption/image_rgba.png"
TEXT_WIDTH = 12  # the untied caption text encoder's hidden size

CASES = [
    dict(id="tiny_layered_prompt", prompt="A red kite above a green hill, paper-cut style",
         negative_prompt=" ", true_cfg_scale=4.0, layers=2, resolution=640, cfg_normalize=False,
         use_en_prompt=False, seed=21),
    dict(id="tiny_layered_caption", prompt=" ", negative_prompt=" ", true_cfg_scale=4.0, layers=1,
         resolution=640, cfg_normalize=True, use_en_prompt=True, seed=42),
]


def rgba_vae(gen: torch.Generator) -> AutoencoderKLQwenImage:
    """A tiny official RGBA VAE whose decoder keeps only the centre tap of every 3x3 kernel from the
    first up block on (the latent-resolution convs keep all taps; the encoder is untouched).

    At the 640 bucket a layer has ~400k pixels; with full random kernels every upsampling stage adds
    texture and a layer PNG is ~1.2 MB of noise. With centre taps each latent pixel decodes to a flat
    8x8 block (~40 KB per layer) that still depends on every latent channel, so the goldens stay
    small while frame order, unpacking, de-normalisation and the RGBA post-processing are all
    checked; the VAE's full 3x3 decode is covered by testdata/vae-encoder.
    """
    g = torch.Generator().manual_seed(7)
    vae = AutoencoderKLQwenImage(
        base_dim=4, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=1, attn_scales=[],
        temperal_downsample=[False, True, True], dropout=0.0, input_channels=4,
        latents_mean=[round(float(x), 4) for x in (torch.randn(16, generator=g) * 0.8)],
        latents_std=[round(float(x), 4) for x in (1.0 + torch.rand(16, generator=g) * 2.0)],
    )
    scale_up(vae, gen)
    with torch.no_grad():
        for name, p in vae.decoder.named_parameters():
            if name.startswith(("up_blocks.", "conv_out.")) and p.ndim in (4, 5) and p.shape[-1] == 3:
                centre = p[..., 1:2, 1:2].clone() * 3.0
                p.zero_()
                p[..., 1:2, 1:2] = centre
    return vae


def write_folder(out: pathlib.Path) -> pathlib.Path:
    root = out / LAYERED_DIR
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    tiny = common.tiny_pipeline_dir(out)
    gen = torch.Generator().manual_seed(20261128)
    transformer = QwenImageTransformer2DModel(
        patch_size=2, in_channels=64, out_channels=16, num_layers=2, attention_head_dim=16,
        num_attention_heads=3, joint_attention_dim=TEXT_WIDTH, guidance_embeds=False, axes_dims_rope=(4, 6, 6),
        use_layer3d_rope=True, use_additional_t_cond=True,
    )
    scale_up(transformer, gen)
    pipe = QwenImageLayeredPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler.from_pretrained(str(tiny / "scheduler")),
        vae=rgba_vae(gen),
        text_encoder=Qwen2_5_VLForConditionalGeneration.from_pretrained(str(out / CAPTION_FOLDER / "text_encoder")),
        tokenizer=Qwen2Tokenizer.from_pretrained(str(tiny / "tokenizer")),
        processor=Qwen2VLProcessor.from_pretrained(str(out / CAPTION_FOLDER / "processor")),
        transformer=transformer,
    )
    scratch = out / f".{LAYERED_DIR}.scratch"
    if scratch.exists():
        shutil.rmtree(scratch)
    pipe.save_pretrained(str(scratch), safe_serialization=True)
    index = json.loads((scratch / "model_index.json").read_text())
    assert index["_class_name"] == "QwenImageLayeredPipeline", index
    (root / "model_index.json").write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")
    shutil.rmtree(scratch)
    # Both stored in bf16, as the released weights are; the pipeline loads them in f32.
    pipe.transformer.to(torch.bfloat16).save_pretrained(str(root / "transformer"), safe_serialization=True)
    pipe.vae.to(torch.bfloat16).save_pretrained(str(root / "vae"), safe_serialization=True)
    for comp in ("scheduler", "tokenizer"):
        link(f"../{common.TINY_PIPELINE}/{comp}", root / comp)
    for comp in ("text_encoder", "processor"):
        link(f"../{CAPTION_FOLDER}/{comp}", root / comp)
    return root


def frame_heads(packed: torch.Tensor, frames: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The first HEAD_TOKENS tokens of each frame [F, 8, C] and each frame's f64 sum [F]."""
    per = packed[0].reshape(frames, -1, packed.shape[-1])
    return per[:, :HEAD_TOKENS].clone(), per.double().sum(dim=(1, 2))


def run(pipe, kwargs: dict) -> tuple[list, dict]:
    """One pipeline call; records what prepare_latents returned, the DiT's first-call arguments, the
    caption (ids and text) when one is made and the latents after the first step."""
    seen = {}
    orig_prepare = pipe.prepare_latents
    orig_generate = pipe.text_encoder.generate
    orig_caption = pipe.get_image_caption

    def prepare(*args, **kw):
        latents, image_latents = orig_prepare(*args, **kw)
        seen["height"], seen["width"] = args[3], args[4]
        seen["initial_latents"] = latents.detach().clone()
        seen["image_latents"] = image_latents.detach().clone()
        return latents, image_latents

    def generate(**kw):
        ids = orig_generate(**kw)
        n = kw["input_ids"].shape[1]
        seen["caption_prompt_len"] = n
        seen["caption_ids"] = ids[0, n:].tolist()
        return ids

    def caption(*a, **kw):
        text = orig_caption(*a, **kw)
        seen["caption"] = text
        return text

    def dit_hook(_m, _args, kw):
        if "img_shapes" not in seen:
            seen["img_shapes"] = [list(map(list, s)) for s in kw["img_shapes"]]
            seen["additional_t_cond"] = kw["additional_t_cond"].tolist()
            seen["dit_tokens"] = kw["hidden_states"].shape[1]
            seen["text_tokens"] = kw["encoder_hidden_states"].shape[1]

    def on_step_end(_p, i, _t, cb):
        if i == 0:
            seen["latents_step1"] = cb["latents"].detach().clone()
        return cb

    pipe.prepare_latents = prepare
    pipe.text_encoder.generate = generate
    pipe.get_image_caption = caption
    handle = pipe.transformer.register_forward_pre_hook(dit_hook, with_kwargs=True)
    try:
        out = pipe(**kwargs, callback_on_step_end=on_step_end, callback_on_step_end_tensor_inputs=["latents"])
    finally:
        handle.remove()
        del pipe.prepare_latents, pipe.text_encoder.generate, pipe.get_image_caption
    seen["sigmas"] = pipe.scheduler.sigmas.detach().clone()
    seen["timesteps"] = pipe.scheduler.timesteps.detach().clone()
    return out.images[0], seen


def to_uint8_rgb(layer: Image.Image) -> np.ndarray:
    """Upstream's `_to_uint8_rgb` for a PIL image: `np.array(value.convert("RGB"))`."""
    return np.array(layer.convert("RGB"))


def toml_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    return repr(v)


def main(out: pathlib.Path) -> None:
    root = write_folder(out)
    pipe = QwenImageLayeredPipeline.from_pretrained(str(root), torch_dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)

    dst = out / OUT_DIR
    if dst.exists():
        shutil.rmtree(dst)
    dst.mkdir(parents=True)
    official = out / "gt" / "official_generated"
    official.mkdir(parents=True, exist_ok=True)
    for old in official.glob("tiny_layered_*"):
        old.unlink()

    case_map, info = {}, {}
    toml_lines = [
        "# Tiny official Layered cases: diffusers' QwenImageLayeredPipeline on",
        "# testdata/tiny-qwen-image-layered (f32, CPU). Written by xtask/reference/gen_e2e_layered.py;",
        "# GT in ../gt/official_generated (the first layer as RGB, alpha dropped, as upstream saves it).",
        "",
    ]
    for case in CASES:
        cid = case["id"]
        image = Image.open(out / INPUT).convert("RGBA")
        kwargs = dict(
            image=image, prompt=case["prompt"], negative_prompt=case["negative_prompt"],
            true_cfg_scale=case["true_cfg_scale"], layers=case["layers"], num_inference_steps=STEPS,
            resolution=case["resolution"], cfg_normalize=case["cfg_normalize"],
            use_en_prompt=case["use_en_prompt"], output_type="pil",
            generator=torch.Generator("cpu").manual_seed(case["seed"]),
        )
        layers, seen = run(pipe, kwargs)
        assert len(layers) == case["layers"] and all(l.mode == "RGBA" for l in layers), layers
        frames = case["layers"] + 1
        (dst / cid).mkdir()
        for k, layer in enumerate(layers):
            layer.save(dst / cid / f"layer_{k}.png")
        name = f"{cid}_1gpu.png"
        Image.fromarray(to_uint8_rgb(layers[0])).save(official / name)
        case_map[cid] = {"outputs": [name]}

        init_head, init_sum = frame_heads(seen["initial_latents"], frames)
        step_head, step_sum = frame_heads(seen["latents_step1"], frames)
        img_lat = seen["image_latents"]
        common.save_tensors(dst / f"{cid}.safetensors", {
            "initial_latents_head": init_head, "initial_latents_sum": init_sum,
            "latents_step1_head": step_head, "latents_step1_sum": step_sum,
            "image_latents_head": img_lat[0, :HEAD_TOKENS].clone(),
            "image_latents_sum": img_lat.double().sum().reshape(1),
            "sigmas": seen["sigmas"], "timesteps": seen["timesteps"],
        })
        captioned = "caption" in seen
        info[cid] = {
            **{k: v for k, v in case.items() if k != "id"},
            "image": f"../{INPUT}", "steps": STEPS,
            "height": seen["height"], "width": seen["width"],
            "img_shapes": seen["img_shapes"], "additional_t_cond": seen["additional_t_cond"],
            "dit_tokens": seen["dit_tokens"], "text_tokens": seen["text_tokens"],
            "image_latent_tokens": img_lat.shape[1],
            "mu": (img_lat.shape[1] / (256 * 256 / 16 / 16)) ** 0.5,
            "prompt_used": seen["caption"] if captioned else case["prompt"],
            "captioned": captioned,
            "caption_ids": seen.get("caption_ids"),
            "caption_prompt_len": seen.get("caption_prompt_len"),
        }

        toml_lines.append("[[case]]")
        toml_lines.append(f"id = {toml_value(cid)}")
        toml_lines.append(f'model = "../{LAYERED_DIR}"')
        toml_lines.append(f'image = "../{INPUT}"')
        for key in ("prompt", "negative_prompt", "true_cfg_scale", "layers", "resolution",
                    "cfg_normalize", "use_en_prompt"):
            toml_lines.append(f"{key} = {toml_value(case[key])}")
        toml_lines.append(f"num_inference_steps = {STEPS}")
        toml_lines.append(f"seed = {case['seed']}")
        toml_lines.append("num_gpus = 1")
        toml_lines.append('output_format = "png"')
        toml_lines.append("")

    (dst / "cases.json").write_text(json.dumps(info, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
    common.update_case_map(official, case_map, "tiny_layered_")
    (out / "cases").mkdir(exist_ok=True)
    (out / "cases" / "tiny_layered.toml").write_text("\n".join(toml_lines))
    print(f"[e2e_layered] wrote {len(CASES)} cases")
