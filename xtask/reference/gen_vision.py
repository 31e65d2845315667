"""Golden tensors for the Qwen2.5-VL vision tower and `Qwen2VLImageProcessor` (testdata/vision/).

The tiny pipeline's vision tower has one block and windows that never split, so this generator
builds a richer tiny `Qwen2_5_VLForConditionalGeneration` (vision depth 4, full attention at blocks
1 and 3, window_size 56 = 2×2 merged units per window, head_dim 12) with a minimal text part, and
saves it with the official `save_pretrained` (bf16, as released) under `vision/text_encoder/`.
It is run in f32 (`from_pretrained(..., dtype=torch.float32)`: every bf16 weight is exact in f32).

The processor is transformers 5.24's `Qwen2VLImageProcessor`, i.e. the torchvision backend (CPU,
uint8 input: torch's native antialiased bicubic on uint8), on two committed PNGs of odd sizes
(an RGBA 61×79 image, composited onto white by `convert_to_rgb`, and a grayscale 100×160 one
that takes smart_resize's max_pixels branch), processed together as one call.

Writes (under testdata/vision/):
  inputs/rgba_61x79.png, inputs/gray_100x160.png   the input images (made here, seeded).
  processor/preprocessor_config.json              the processor's own save_pretrained output.
  text_encoder/                                   config.json + model.safetensors (bf16).
  processor.safetensors  `pixel_values` [N, 1176] f32 and `image_grid_thw` [2, 3] i64: both images
                         through the processor in one call (also the tower's input). Metadata `info`:
                         smart_resize cases [h, w, min, max, [h', w'] or null when refused], and the
                         max |difference| of the PIL backend's pixel_values from these.
  resize.safetensors     u8 tensors: `resized.{i}` [3, H, W], each image after convert_to_rgb and the
                         processor's resize (before rescale/normalise); `resize.{case}.input` /
                         `.output` [3, h, w] pairs from `F.interpolate(uint8, mode="bicubic",
                         antialias=True)` for scale factors the images do not cover.
  tower.safetensors      the vision tower on those pixel_values: `patch_embeds` [N, C] (before the
                         window permutation), `window_index` [N/4] i64, `cu_window_seqlens`,
                         `cu_seqlens` i64, `rotary.cos` / `rotary.sin` [N, head_dim] (permuted into
                         window order, as the blocks use them), `blocks.{i}` [N, C] (each block's
                         output, window order), `merger` [N/4, D] (before the reverse permutation)
                         and `image_embeds` [N/4, D] (the tower's `pooler_output`, which is what
                         `get_image_features` splits per image).
"""

import json
import os
import pathlib

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import save_file
from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil
from transformers.models.qwen2_vl.image_processing_qwen2_vl import Qwen2VLImageProcessor, smart_resize
from transformers.vision_utils import get_vision_position_ids, get_vision_window_index

import common
from gen_tiny_pipeline import scale_up

TEXT_HIDDEN = 40
VISION = dict(
    depth=4, hidden_size=24, intermediate_size=40, num_heads=2, out_hidden_size=TEXT_HIDDEN,
    fullatt_block_indexes=[1, 3], window_size=56, patch_size=14, spatial_merge_size=2,
    temporal_patch_size=2, in_channels=3, hidden_act="silu",
)
# A minimal language model: the folder must be a whole Qwen2_5_VLForConditionalGeneration, but only
# the vision tower is exercised here (the vocabulary is cut to keep the file small).
TEXT = dict(
    vocab_size=96, hidden_size=TEXT_HIDDEN, intermediate_size=48, num_hidden_layers=1,
    num_attention_heads=2, num_key_value_heads=1, hidden_act="silu", max_position_embeddings=4096,
    rms_norm_eps=1e-6, use_sliding_window=False,
    rope_parameters={"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": [2, 4, 4]},
    tie_word_embeddings=True, bos_token_id=0, eos_token_id=1,
)
MIN_PIXELS, MAX_PIXELS = 56 * 56, 12000

# (height, width, min_pixels, max_pixels): round-half-to-even ties (42/28 = 1.5, 70/28 = 2.5), the
# max and min branches, extreme aspect ratios, and the released defaults on a 1024² Edit image.
SMART_RESIZE_CASES = [
    (42, 70, 56 * 56, 28 * 28 * 1280), (70, 42, 56 * 56, 28 * 28 * 1280),
    (61, 79, MIN_PIXELS, MAX_PIXELS), (100, 160, MIN_PIXELS, MAX_PIXELS),
    (10, 12, 56 * 56, 28 * 28 * 1280), (20, 3000, 3136, 12845056), (1024, 1024, 3136, 12845056),
    (1184, 880, 3136, 12845056), (384, 384, 3136, 12845056), (4000, 3000, 3136, 1003520),
    (13, 2500, 3136, 200704), (999, 1, 3136, 12845056),
]

# (name, input h, input w, output h, output w): a 3× reduction on both axes, an enlargement, and a
# one-axis resize (torch skips the unchanged axis).
RESIZE_CASES = [("down3", 61, 47, 20, 15), ("up", 13, 9, 40, 31), ("width_only", 30, 50, 30, 28)]


def make_inputs(dst: pathlib.Path, gen: torch.Generator) -> list[pathlib.Path]:
    """Two smooth-plus-noise images (so that resampling visibly matters), one RGBA whose alpha spans
    0…255 (fully transparent and opaque pixels included), one 8-bit grayscale."""
    dst.mkdir(parents=True, exist_ok=True)

    def field(h, w, c):
        y = torch.linspace(0, 1, h)[:, None, None]
        x = torch.linspace(0, 1, w)[None, :, None]
        phase = torch.rand(1, 1, c, generator=gen) * 6.28
        base = 0.5 + 0.35 * torch.sin(7 * x + 5 * y * y + phase)
        noise = 0.15 * torch.randn(h, w, c, generator=gen)
        return (base + noise).clamp(0, 1).mul(255).round().to(torch.uint8).numpy()

    rgba = field(61, 79, 4)
    rgba[:6, :, 3] = 0
    rgba[-6:, :, 3] = 255
    gray = field(100, 160, 1)[:, :, 0]
    paths = [dst / "rgba_61x79.png", dst / "gray_100x160.png"]
    for img, p in zip([Image.fromarray(rgba, "RGBA"), Image.fromarray(gray, "L")], paths):
        tmp = p.with_suffix(".tmp.png")
        img.save(tmp, format="PNG")
        os.replace(tmp, p)
    return paths


def save_u8(path: pathlib.Path, tensors: dict, metadata: dict) -> None:
    """Like common.save_tensors but keeps uint8 tensors as U8 (pixel images stay small)."""
    out = {k: tensors[k].contiguous() for k in sorted(tensors)}
    tmp = path.with_suffix(path.suffix + ".tmp")
    save_file(out, str(tmp), metadata={k: str(v) for k, v in sorted(metadata.items())})
    os.replace(tmp, path)


def processor_goldens(dst: pathlib.Path, paths: list[pathlib.Path], gen: torch.Generator) -> dict:
    proc = Qwen2VLImageProcessor(min_pixels=MIN_PIXELS, max_pixels=MAX_PIXELS)
    assert proc.backend == "torchvision"
    proc_dir = dst / "processor"
    proc.save_pretrained(str(proc_dir))
    images = [Image.open(p) for p in paths]
    assert [im.mode for im in images] == ["RGBA", "L"]
    out = proc(images=images, return_tensors="pt")
    pixel_values, grid = out["pixel_values"], out["image_grid_thw"]
    assert pixel_values.dtype == torch.float32

    # The processor's own intermediate: each image after convert_to_rgb and the uint8 resize.
    tensors = {}
    for i, im in enumerate(images):
        t = proc.process_image(im, do_convert_rgb=True)
        assert t.dtype == torch.uint8
        h, w = smart_resize(t.shape[1], t.shape[2], 28, MIN_PIXELS, MAX_PIXELS)
        from transformers.image_utils import SizeDict

        tensors[f"resized.{i}"] = proc.resize(
            t[None], size=SizeDict(shortest_edge=MIN_PIXELS, longest_edge=MAX_PIXELS),
            resample=proc.resample, factor=28)[0]
        assert tensors[f"resized.{i}"].shape[1:] == (h, w)
    for name, h, w, oh, ow in RESIZE_CASES:
        x = torch.randint(0, 256, (1, 3, h, w), generator=gen, dtype=torch.uint8)
        y = F.interpolate(x, size=(oh, ow), mode="bicubic", align_corners=False, antialias=True)
        assert y.dtype == torch.uint8
        tensors[f"resize.{name}.input"] = x[0]
        tensors[f"resize.{name}.output"] = y[0]

    pil = Qwen2VLImageProcessorPil(min_pixels=MIN_PIXELS, max_pixels=MAX_PIXELS)(images=images, return_tensors="pt")
    assert torch.equal(pil["image_grid_thw"], grid)
    backend_diff = (pil["pixel_values"] - pixel_values).abs().max().item()
    cases = []
    for h, w, lo, hi in SMART_RESIZE_CASES:
        try:
            cases.append([h, w, lo, hi, list(smart_resize(h, w, 28, lo, hi))])
        except ValueError:  # aspect ratio above 200: refused
            cases.append([h, w, lo, hi, None])
    info = {
        "smart_resize_cases": cases,
        "pil_backend_max_abs_diff": backend_diff,
        "images": [p.name for p in paths],
        "note": "pixel_values from the torchvision backend (CPU, uint8 bicubic antialias)",
    }
    save_u8(dst / "resize.safetensors", tensors, {"info": json.dumps(info, sort_keys=True)})
    common.save_tensors(dst / "processor.safetensors",
                        {"pixel_values": pixel_values, "image_grid_thw": grid},
                        metadata={"info": json.dumps(info, sort_keys=True)})
    print(f"[vision] grids {grid.tolist()}, PIL backend differs by up to {backend_diff:.4f}")
    return {"pixel_values": pixel_values, "image_grid_thw": grid}


def tower_goldens(dst: pathlib.Path, pixel_values: torch.Tensor, grid: torch.Tensor) -> None:
    model = Qwen2_5_VLForConditionalGeneration.from_pretrained(str(dst / "text_encoder"), dtype=torch.float32)
    model.eval()
    visual = model.model.visual
    merge = visual.spatial_merge_size
    unit = merge * merge
    captured = {}

    def hook(name):
        def f(_m, _args, output):
            captured[name] = (output[0] if isinstance(output, tuple) else output).detach().clone()

        return f

    handles = [visual.patch_embed.register_forward_hook(hook("patch_embeds")),
               visual.merger.register_forward_hook(hook("merger"))]
    handles += [b.register_forward_hook(hook(f"blocks.{i}")) for i, b in enumerate(visual.blocks)]
    try:
        with torch.no_grad():
            out = visual(pixel_values, grid_thw=grid)
            feats = model.model.get_image_features(pixel_values, image_grid_thw=grid)
    finally:
        for h in handles:
            h.remove()
    image_embeds = out.pooler_output
    split = feats.pooler_output if hasattr(feats, "pooler_output") else feats
    assert torch.equal(torch.cat(list(split), 0), image_embeds)

    window_index, cu_window = get_vision_window_index(grid, merge, visual.window_size, visual.patch_size)
    cu_seqlens = F.pad(torch.repeat_interleave(grid[:, 1] * grid[:, 2], grid[:, 0]).cumsum(0), (1, 0))
    n = pixel_values.shape[0]
    with torch.no_grad():
        pos = get_vision_position_ids(grid, merge)
        cos, sin = visual.rotary_pos_emb(captured["patch_embeds"], pos)
        cos = visual.permute_input_for_window_attn(cos, window_index, seq_len=n)
        sin = visual.permute_input_for_window_attn(sin, window_index, seq_len=n)
    assert captured["merger"].shape == (n // unit, TEXT_HIDDEN)
    tensors = {
        "patch_embeds": captured["patch_embeds"],
        "window_index": window_index,
        "cu_window_seqlens": cu_window,
        "cu_seqlens": cu_seqlens,
        "rotary.cos": cos,
        "rotary.sin": sin,
        "merger": captured["merger"],
        "image_embeds": image_embeds,
    }
    for i in range(len(visual.blocks)):
        tensors[f"blocks.{i}"] = captured[f"blocks.{i}"]
    info = {"attn_implementation": visual.config._attn_implementation, "grid_thw": grid.tolist(),
            "cu_window_seqlens": cu_window.tolist()}
    common.save_tensors(dst / "tower.safetensors", tensors, metadata={"info": json.dumps(info, sort_keys=True)})
    print(f"[vision] N={n}, windows {cu_window.tolist()}, embeds {tuple(image_embeds.shape)}")


def main(out: pathlib.Path) -> None:
    dst = pathlib.Path(out) / "vision"
    dst.mkdir(parents=True, exist_ok=True)
    gen = torch.Generator().manual_seed(1717)

    cfg = Qwen2_5_VLConfig(text_config=TEXT, vision_config=VISION, tie_word_embeddings=True)
    model = Qwen2_5_VLForConditionalGeneration(cfg)
    scale_up(model, gen)
    model.tie_weights()
    # The released text encoder is bf16; so is this one.
    model.to(torch.bfloat16).save_pretrained(str(dst / "text_encoder"), safe_serialization=True)
    for f in (dst / "text_encoder").glob("README.md"):
        f.unlink()

    paths = make_inputs(dst / "inputs", gen)
    proc = processor_goldens(dst, paths, gen)
    tower_goldens(dst, proc["pixel_values"], proc["image_grid_thw"])


def bench(testdata: pathlib.Path, repeats: int = 30) -> None:
    """transformers' side of `cargo bench -p text-encoder --bench vision` (run by hand, same machine):
        .venv-reference/bin/python xtask/reference/gen_vision.py --bench
    Same work as the criterion group: the processor on the two test images (decoded beforehand),
    the processor with its defaults on a 1024² RGB image (an Edit pipeline's condition image), and
    the tiny f32 vision tower on the 72 patches. Prints medians."""
    import statistics
    import time

    def median_s(fn):
        fn()  # warm-up
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return statistics.median(times)

    dst = testdata / "vision"
    images = [Image.open(dst / "inputs" / n) for n in ("rgba_61x79.png", "gray_100x160.png")]
    for im in images:
        im.load()
    proc = Qwen2VLImageProcessor(min_pixels=MIN_PIXELS, max_pixels=MAX_PIXELS)
    big = Image.fromarray(np.random.default_rng(0).integers(0, 256, (1024, 1024, 3), dtype=np.uint8), "RGB")
    default = Qwen2VLImageProcessor()
    visual = Qwen2_5_VLForConditionalGeneration.from_pretrained(
        str(dst / "text_encoder"), dtype=torch.float32).model.visual.eval()
    out = proc(images=images, return_tensors="pt")
    print(f"torch {torch.__version__} ({torch.get_num_threads()} threads), torchvision backend")
    s = median_s(lambda: proc(images=images, return_tensors="pt"))
    print(f"vision_tiny/processor_2_images         {s * 1e3:9.3f} ms")
    s = median_s(lambda: default(images=[big], return_tensors="pt"))
    print(f"vision_tiny/processor_1024             {s * 1e3:9.3f} ms")
    with torch.inference_mode():
        s = median_s(lambda: visual(out["pixel_values"], grid_thw=out["image_grid_thw"]))
    print(f"vision_tiny/tower_72_patches           {s * 1e3:9.3f} ms")


if __name__ == "__main__":
    import sys

    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
    common.make_deterministic()
    if "--bench" in sys.argv:
        bench(pathlib.Path(__file__).resolve().parents[2] / "testdata")
    else:
        main(pathlib.Path(__file__).resolve().parents[2] / "testdata")
