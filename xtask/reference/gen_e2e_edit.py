"""End-to-end official GT for the Edit pipelines: diffusers 0.42.1 `QwenImageEditPipeline` and
`QwenImageEditPlusPipeline` run on the tiny Edit, Edit-Plus (2509) and Edit-2511 folders, stored as a
GT tree entry per case, with the initial latents, the latents after the first step and the head of
each image's packed VAE latents (so a mismatch can be located), the input images and the case file
that drives `cargo xtask consistency`.

The pipelines get their images through `diffusers.utils.load_image` (EXIF transpose, `convert("RGB")`:
alpha dropped, grey replicated), as a user script and upstream's consistency runner do. The text
encoder gets the processor's `mm_token_type_ids` (gen_text_encoder_mm's `forward_mm_token_type_ids`,
diffusers PR #14189): Qwen2.5-VL's 3-D M-RoPE, the model as trained and the Rust port's default; the
pinned diffusers + transformers 5 pairing would silently use sequential positions (diffusers #14194).

Every VAE image is 1024²-area whatever the input size (the pipelines' VAE_IMAGE_SIZE), so each
input image costs ~4096 tokens in the DiT; the outputs are kept small (height/width given) and the
steps few so that the Rust end-to-end test runs in seconds.

Writes:
  tiny-qwen-image-edit-2511/  `QwenImageEditPlusPipeline` (as Qwen/Qwen-Image-Edit-2511 declares it)
      whose transformer is the tiny one with `zero_cond_t: true` (config.json; the weights file is a
      link to ../../tiny-qwen-image/transformer's); every other component links as in the Edit folders.
  e2e-edit/
      edit_input.jpg   RGB 53x37, saved by PIL at quality 90 (the JPEG decode is part of the path)
      plus_rgba.png    RGBA 29x45 with varying alpha
      plus_gray.png    L 61x23
      exif_rotated.jpg, exif_rotated.loaded.png   an RGB 21x13 JPEG with EXIF orientation 6, and what
                       `load_image` makes of it (transposed to 13x21, RGB) as a PNG
      tiny_edit_nocfg.as_is.png   tiny_edit_nocfg run as pinned (no mm_token_type_ids: sequential
                       positions), for the port's `VisionPositions::Sequential`
      latents/<case>.safetensors   `latents` [1, N, 64]: the fixed initial packed noise
      <case>.safetensors           `latents_step1` [1, N, 64]; `image_latents_head.<k>` [8, 64]:
                                   the first 8 packed tokens of image k's normalised VAE latents
      cases.json                   per case: pipeline folder and class, images, size, the output size
                                   and img_shapes diffusers used, mu's token count;
                                   `default_size`: the output size diffusers picks with no
                                   height/width for each pipeline's image list (one step, latent out)
  gt/official_generated/<case>_1gpu.png and their case_map.json entries (other entries kept)
  cases/tiny_edit.toml

Cases (2 steps each: the ~4096 tokens of every input image, not the output, set the cost):
  tiny_edit_cfg       Edit, edit_input.jpg, CFG 4 with " ", 48x80, fixed latents
  tiny_edit_nocfg     Edit, edit_input.jpg, no negative prompt, 64x64, seed 7
  tiny_edit_plus      Edit-Plus, [plus_rgba.png, plus_gray.png], CFG 4, 64x48, fixed latents
  tiny_edit_2511      Edit-2511, [plus_gray.png, edit_input.jpg], no CFG, 48x64, seed 42
"""

import contextlib
import json
import os
import pathlib
import shutil

import numpy as np
import torch
from diffusers import QwenImageEditPipeline, QwenImageEditPlusPipeline
from diffusers.utils import load_image
from PIL import Image

import common
from gen_text_encoder_mm import EDIT_DIR, EDIT_PLUS_DIR, forward_mm_token_type_ids, link

OUT_DIR = "e2e-edit"
EDIT_2511_DIR = "tiny-qwen-image-edit-2511"
STEPS = 2
HEAD_TOKENS = 8

CLASSES = {EDIT_DIR: QwenImageEditPipeline, EDIT_PLUS_DIR: QwenImageEditPlusPipeline,
           EDIT_2511_DIR: QwenImageEditPlusPipeline}

CASES = [
    dict(id="tiny_edit_cfg", folder=EDIT_DIR, images=["edit_input.jpg"],
         prompt="Make the sky a deep purple and add a small red kite", negative_prompt=" ",
         true_cfg_scale=4.0, height=48, width=80, latents_seed=11),
    dict(id="tiny_edit_nocfg", folder=EDIT_DIR, images=["edit_input.jpg"],
         prompt="把图片变成水彩画风格", height=64, width=64, seed=7),
    dict(id="tiny_edit_plus", folder=EDIT_PLUS_DIR, images=["plus_rgba.png", "plus_gray.png"],
         prompt="The cat from Picture 1 sits on the sofa from Picture 2", negative_prompt=" ",
         true_cfg_scale=4.0, height=64, width=48, latents_seed=12),
    dict(id="tiny_edit_2511", folder=EDIT_2511_DIR, images=["plus_gray.png", "edit_input.jpg"],
         prompt="Put the lamp of Picture 1 on the table of Picture 2, warm light", height=48, width=64,
         seed=42),
]


def write_images(dst: pathlib.Path) -> None:
    """Small structured images (gradients + seeded noise) of odd sizes and three PIL modes; one JPEG."""
    rng = np.random.default_rng(20261127)

    def pattern(h: int, w: int, c: int) -> np.ndarray:
        y, x = np.mgrid[0:h, 0:w]
        chans = [x * 255 // max(w - 1, 1), y * 255 // max(h - 1, 1), ((x * 3 + y * 5) * 9) % 256,
                 64 + (x * y * 191) // max((w - 1) * (h - 1), 1)]
        base = np.stack(chans[:c], -1)
        return np.clip(base + rng.integers(-30, 31, size=(h, w, c)), 0, 255).astype(np.uint8)

    Image.fromarray(pattern(37, 53, 3), "RGB").save(dst / "edit_input.jpg", quality=90)
    Image.fromarray(pattern(45, 29, 4), "RGBA").save(dst / "plus_rgba.png")
    Image.fromarray(pattern(23, 61, 1)[..., 0], "L").save(dst / "plus_gray.png")
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90° clockwise to display
    Image.fromarray(pattern(13, 21, 3), "RGB").save(dst / "exif_rotated.jpg", quality=90, exif=exif)
    loaded = load_image(str(dst / "exif_rotated.jpg"))
    assert loaded.size == (13, 21) and loaded.mode == "RGB", (loaded.size, loaded.mode)
    loaded.save(dst / "exif_rotated.loaded.png")


def write_2511_folder(out: pathlib.Path) -> pathlib.Path:
    """The Edit-Plus folder's layout with a zero_cond_t transformer (config only; weights linked)."""
    src = out / EDIT_PLUS_DIR
    root = out / EDIT_2511_DIR
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    shutil.copyfile(src / "model_index.json", root / "model_index.json")
    for comp in ("scheduler", "text_encoder", "tokenizer", "vae"):
        link(f"../{common.TINY_PIPELINE}/{comp}", root / comp)
    link(f"../{EDIT_PLUS_DIR}/processor", root / "processor")
    tdir = root / "transformer"
    tdir.mkdir()
    cfg = json.loads((common.tiny_pipeline_dir(out) / "transformer" / "config.json").read_text())
    assert cfg["zero_cond_t"] is False, cfg
    cfg["zero_cond_t"] = True
    (tdir / "config.json").write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
    name = "diffusion_pytorch_model.safetensors"
    link(f"../../{common.TINY_PIPELINE}/transformer/{name}", tdir / name)
    return root


def toml_value(v):
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    return repr(v)


def run(pipe, images, kwargs, capture, mrope=True):
    """One pipeline call with 3-D M-RoPE (or as pinned: `mrope=False`); records what prepare_latents
    returned and the arguments the transformer got at the first step."""
    seen = {}
    orig_prepare = pipe.prepare_latents

    def prepare(*args, **kw):
        latents, image_latents = orig_prepare(*args, **kw)
        seen["height"], seen["width"] = args[3], args[4]
        seen["image_latents"] = image_latents.detach().clone()
        seen["noise_tokens"] = latents.shape[1]
        return latents, image_latents

    def dit_hook(_m, _args, kw):
        seen.setdefault("img_shapes", kw["img_shapes"])
        seen.setdefault("dit_tokens", kw["hidden_states"].shape[1])

    def on_step_end(p, i, t, cb):
        if i == 0:
            seen["latents_step1"] = cb["latents"].detach().clone()
        return cb

    pipe.prepare_latents = prepare
    handle = pipe.transformer.register_forward_pre_hook(dit_hook, with_kwargs=True)
    try:
        with forward_mm_token_type_ids(pipe) if mrope else contextlib.nullcontext():
            arg = images if isinstance(pipe, QwenImageEditPlusPipeline) else images[0]
            result = pipe(image=arg, num_inference_steps=kwargs.pop("steps", STEPS), **kwargs,
                          callback_on_step_end=on_step_end if capture else None,
                          callback_on_step_end_tensor_inputs=["latents"])
    finally:
        handle.remove()
        pipe.prepare_latents = orig_prepare
    return result.images[0], seen


def main(out: pathlib.Path) -> None:
    out = pathlib.Path(out)
    for needed in (EDIT_DIR, EDIT_PLUS_DIR):
        assert (out / needed / "model_index.json").is_file(), f"run gen_text_encoder_mm first ({needed})"
    write_2511_folder(out)
    dst = out / OUT_DIR
    if dst.exists():
        shutil.rmtree(dst)
    (dst / "latents").mkdir(parents=True)
    write_images(dst)
    official = out / "gt" / "official_generated"
    official.mkdir(parents=True, exist_ok=True)
    for old in official.glob("tiny_edit*"):
        old.unlink()

    pipes = {}
    for folder, cls in CLASSES.items():
        pipe = cls.from_pretrained(str(out / folder), torch_dtype=torch.float32)
        pipe.set_progress_bar_config(disable=True)
        assert type(pipe).__name__ == json.loads((out / folder / "model_index.json").read_text())["_class_name"]
        pipes[folder] = pipe
    assert pipes[EDIT_2511_DIR].transformer.config.zero_cond_t
    assert not pipes[EDIT_PLUS_DIR].transformer.config.zero_cond_t

    info = {"steps": STEPS, "cases": {}, "default_size": {}}
    case_map = {}
    toml_lines = [
        "# Tiny official Edit cases: diffusers' QwenImageEditPipeline / QwenImageEditPlusPipeline on the",
        "# tiny Edit, Edit-Plus and Edit-2511 folders (f32, CPU, 3-D M-RoPE in the text encoder).",
        "# Written by xtask/reference/gen_e2e_edit.py; GT in ../gt/official_generated.",
        "",
    ]
    for case in CASES:
        cid, folder = case["id"], case["folder"]
        pipe = pipes[folder]
        images = [load_image(str(dst / f)) for f in case["images"]]
        h, w = case["height"], case["width"]
        kwargs = dict(prompt=case["prompt"], height=h, width=w, output_type="pil")
        if "negative_prompt" in case:
            kwargs["negative_prompt"] = case["negative_prompt"]
            kwargs["true_cfg_scale"] = case["true_cfg_scale"]
        if "latents_seed" in case:
            lh, lw = 2 * (h // 16), 2 * (w // 16)
            g = torch.Generator().manual_seed(case["latents_seed"])
            noise = torch.randn((1, 1, 16, lh, lw), generator=g, dtype=torch.float32)
            packed = QwenImageEditPipeline._pack_latents(noise, 1, 16, lh, lw)
            common.save_tensors(dst / "latents" / f"{cid}.safetensors", {"latents": packed})
            kwargs["latents"] = packed.clone()
        else:
            kwargs["generator"] = torch.Generator("cpu").manual_seed(case["seed"])
        image, seen = run(pipe, images, kwargs, capture=True)
        name = f"{cid}_1gpu.png"
        image.save(official / name)
        case_map[cid] = {"outputs": [name]}

        shapes = [list(s) for s in seen["img_shapes"][0]]
        tensors = {"latents_step1": seen["latents_step1"]}
        offset = 0
        for k, s in enumerate(shapes[1:]):
            n = s[0] * s[1] * s[2]
            tensors[f"image_latents_head.{k}"] = seen["image_latents"][0, offset:offset + HEAD_TOKENS]
            offset += n
        assert offset == seen["image_latents"].shape[1], (offset, seen["image_latents"].shape)
        assert seen["dit_tokens"] == seen["noise_tokens"] + offset
        common.save_tensors(dst / f"{cid}.safetensors", tensors)
        info["cases"][cid] = {
            "folder": folder, "pipeline": type(pipe).__name__, "images": case["images"],
            "input_sizes": [list(im.size) for im in images], "output_size": [seen["height"], seen["width"]],
            "img_shapes": shapes, "noise_tokens": seen["noise_tokens"], "image_tokens": offset,
        }

        toml_lines.append("[[case]]")
        toml_lines.append(f"id = {toml_value(cid)}")
        toml_lines.append(f'model = "../{folder}"')
        imgs = [f"../{OUT_DIR}/{f}" for f in case["images"]]
        toml_lines.append(f"image = {toml_value(imgs[0] if len(imgs) == 1 else imgs)}")
        for key in ("prompt", "negative_prompt", "true_cfg_scale", "height", "width"):
            if key in case:
                toml_lines.append(f"{key} = {toml_value(case[key])}")
        toml_lines.append(f"num_inference_steps = {STEPS}")
        if "seed" in case:
            toml_lines.append(f"seed = {case['seed']}")
        else:
            toml_lines.append(f'latents = "../{OUT_DIR}/latents/{cid}.safetensors"')
        toml_lines.append("num_gpus = 1")
        toml_lines.append('output_format = "png"')
        toml_lines.append("")
        print(f"[e2e_edit] {cid}: {seen['height']}x{seen['width']}, img_shapes {shapes}", flush=True)

        if cid == "tiny_edit_nocfg":
            kwargs = dict(prompt=case["prompt"], height=h, width=w, output_type="pil",
                          generator=torch.Generator("cpu").manual_seed(case["seed"]))
            as_is, _ = run(pipe, images, kwargs, capture=False, mrope=False)
            as_is.save(dst / f"{cid}.as_is.png")
            diff = np.abs(np.asarray(as_is, dtype=np.int16) - np.asarray(image, dtype=np.int16)).max()
            assert diff > 0, "sequential and 3-D positions give the same image: has diffusers fixed #14194?"

    # The size each pipeline picks without height/width: one step, latents out, sizes recorded.
    for folder, files in ((EDIT_DIR, ["edit_input.jpg"]), (EDIT_PLUS_DIR, ["plus_rgba.png", "plus_gray.png"])):
        images = [load_image(str(dst / f)) for f in files]
        _, seen = run(pipes[folder], images, dict(prompt="x", steps=1, output_type="latent",
                                                    generator=torch.Generator().manual_seed(0)), capture=False)
        info["default_size"][folder] = {"images": files, "size": [seen["height"], seen["width"]],
                                        "img_shapes": [list(s) for s in seen["img_shapes"][0]]}

    common.update_case_map(official, case_map, "tiny_edit")
    tmp = dst / "cases.json.tmp"
    with open(tmp, "w", encoding="utf-8", newline="\n") as f:
        json.dump(info, f, ensure_ascii=False, indent=1, sort_keys=True)
        f.write("\n")
    os.replace(tmp, dst / "cases.json")
    (out / "cases").mkdir(exist_ok=True)
    (out / "cases" / "tiny_edit.toml").write_text("\n".join(toml_lines))
    print(f"[e2e_edit] wrote {len(CASES)} cases; default sizes {info['default_size']}")


if __name__ == "__main__":
    print("run through fixtures.py (--only e2e_edit)")
