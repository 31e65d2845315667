"""Golden tensors for the multimodal prompt path of crates/text-encoder (testdata/text-encoder-mm/),
and the tiny Edit / Edit-Plus pipeline folders (testdata/tiny-qwen-image-edit{,-plus}/).

Official code only: diffusers 0.42.1 `QwenImageEditPipeline` / `QwenImageEditPlusPipeline`
(`_get_qwen_prompt_embeds`, `encode_prompt`) built around the tiny pipeline's components plus a real
`Qwen2VLProcessor` (transformers 5.24.0, torchvision backend), and transformers' Qwen2.5-VL
(`get_rope_index`, `get_image_features`, the masked scatter, the language model).

Position ids — the one thing the pinned versions get wrong. With transformers >= 5.15 Qwen2.5-VL
builds its 3-D M-RoPE positions from `mm_token_type_ids`, which the processor returns but diffusers'
Edit pipelines do not pass on (diffusers issue #14194, fix proposed in PR #14189). Without it the model
silently falls back to sequential 1-D positions. transformers 4.x (and the model as trained) use the
3-D positions. So every case is run twice:
  * `<case>.*`        the pipeline with `mm_token_type_ids` forwarded (`forward_mm_token_type_ids`, PR
                      #14189's change as a forward pre-hook): 3-D M-RoPE, the default of the Rust port;
  * `<case>.as_is.*`  the pipeline exactly as pinned: sequential positions.
The generator asserts that the two differ, so a future diffusers that fixes the bug is noticed.

Writes testdata/text-encoder-mm/:
  image_a.png (RGB 130x75), image_b.png (RGBA 61x97, varying alpha), image_c.png (grayscale 89x47):
      the input images; the pipelines get them through `diffusers.utils.load_image` (EXIF transpose,
      PIL `convert("RGB")`: alpha dropped, not composited; L replicated), as a user script does.
  mm_embeds.safetensors, per case `<case>.`:
      `input_ids`, `attention_mask` [B, L] i64   what the processor gave the text encoder
      `image_grid_thw` [n, 3] i64                (pixel_values are not stored: the images are,
                                                 and the vision goldens cover pixels -> embeddings)
      `image_embeds` [N/4, D]                    the official vision tower's output (merged patches)
      `position_ids` [3, B, L] i64               `get_rope_index` (padding positions 0)
      `hidden_states.{i}` [B, L, D]              i = 0 (embeddings after the image scatter) ..= layers
                                                 (the final norm), as transformers reports them
      `layer_output.{i}` [B, L, D]               each decoder layer's raw output (forward hooks)
      `prompt_embeds` [B, S, D], `prompt_embeds_mask` [B, S] i64   `_get_qwen_prompt_embeds`
      `encoded.prompt_embeds`, `encoded.prompt_embeds_mask`       `encode_prompt` (mask all ones
                                                 when diffusers returned None; info says which)
      `as_is.prompt_embeds`, `as_is.prompt_embeds_mask`, `as_is.encoded.*`   the same, unpatched
    Cases: `edit_batch` (Edit, 2 prompts of different lengths, images a and b, one per prompt, as the
    processor consumes them: right padding), `edit_single` (Edit, 1 prompt, image a), `edit_plus`
    (Edit-Plus, 1 prompt, images c and a: "Picture 1/2"), `edit_plus_text` (Edit-Plus with no
    image, 2 prompts: the bare edit template; only ids, mask and the two outputs). `left_padded`: the edit_batch texts and
    images through the processor with left padding, then the model with `mm_token_type_ids`:
    `input_ids`, `attention_mask`, `image_grid_thw`, `image_embeds`, `position_ids`,
    `last_hidden_state` (only the real rows are meaningful).
  cases.json: per case the pipeline class, prompts, image files, token counts, whether
    `encode_prompt` returned a None mask; the processor settings.

Writes testdata/tiny-qwen-image-edit/ (`_class_name` QwenImageEditPipeline) and
testdata/tiny-qwen-image-edit-plus/ (QwenImageEditPlusPipeline): model_index.json as
`save_pretrained` writes it; the five shared components are relative symlinks to
../tiny-qwen-image/<name> (no second 15 MB copy of the same weights); `processor/` is the released
layout of Qwen/Qwen-Image-Edit's processor folder: preprocessor_config.json with the values of
Qwen2.5-VL-7B-Instruct (min_pixels 3136, max_pixels 12845056, patch 14, temporal patch 2, merge 2,
CLIP mean/std), the tokenizer config, and vocab.json / merges.txt linked to the tiny tokenizer's.
The generator reloads both folders with `from_pretrained` and checks they reproduce the goldens.
"""

import contextlib
import json
import os
import pathlib
import shutil

import numpy as np
import torch
from diffusers import QwenImageEditPipeline, QwenImageEditPlusPipeline, QwenImagePipeline
from diffusers.utils import load_image
from PIL import Image
from transformers import Qwen2VLProcessor

import common

OUT_DIR = "text-encoder-mm"
EDIT_DIR = "tiny-qwen-image-edit"
EDIT_PLUS_DIR = "tiny-qwen-image-edit-plus"
SHARED_COMPONENTS = ("scheduler", "text_encoder", "tokenizer", "transformer", "vae")

# Qwen/Qwen-Image-Edit's processor/preprocessor_config.json (the Qwen2.5-VL-7B-Instruct values), in
# the released (transformers 4.x) layout: min/max_pixels at the top level.
PREPROCESSOR_CONFIG = {
    "min_pixels": 3136,
    "max_pixels": 12845056,
    "patch_size": 14,
    "temporal_patch_size": 2,
    "merge_size": 2,
    "image_mean": [0.48145466, 0.4578275, 0.40821073],
    "image_std": [0.26862954, 0.26130258, 0.27577711],
    "image_processor_type": "Qwen2VLImageProcessor",
    "processor_class": "Qwen2VLProcessor",
}

PROMPT_SHORT = "Make the cat wear a tiny red knitted hat"
PROMPT_LONG = (
    "把背景换成夜晚的东京街头，霓虹灯倒映在湿漉漉的路面上。Keep the pose, add soft rain, "
    "a glowing paper lantern on the left and the text \"OPEN 24h\" on a shop sign."
)
PROMPT_PLUS = "The bear from Picture 1 stands left of the tower from Picture 2 under a pink sunset sky"

CASES = [
    # name, pipeline class, prompts, images (one list for the whole call, as diffusers takes it)
    ("edit_batch", "QwenImageEditPipeline", [PROMPT_SHORT, PROMPT_LONG], ["image_a.png", "image_b.png"]),
    ("edit_single", "QwenImageEditPipeline", [PROMPT_LONG], ["image_a.png"]),
    ("edit_plus", "QwenImageEditPlusPipeline", [PROMPT_PLUS], ["image_c.png", "image_a.png"]),
]


def write_images(dst: pathlib.Path) -> None:
    """Three small images with structure (gradients + seeded noise), odd sizes, three PIL modes."""
    rng = np.random.default_rng(20261126)

    def pattern(h: int, w: int, c: int) -> np.ndarray:
        y, x = np.mgrid[0:h, 0:w]
        base = np.stack([(x * 255 // max(w - 1, 1)), (y * 255 // max(h - 1, 1)), ((x + y) * 7) % 256], -1)
        base = base[..., :c] if c <= 3 else np.concatenate([base, ((x * y) % 256)[..., None]], -1)
        noise = rng.integers(-40, 41, size=(h, w, c))
        return np.clip(base + noise, 0, 255).astype(np.uint8)

    Image.fromarray(pattern(75, 130, 3), "RGB").save(dst / "image_a.png")
    Image.fromarray(pattern(97, 61, 4), "RGBA").save(dst / "image_b.png")
    Image.fromarray(pattern(47, 89, 1)[..., 0], "L").save(dst / "image_c.png")


def link(target: str, at: pathlib.Path) -> None:
    if at.is_symlink() or at.exists():
        at.unlink() if at.is_symlink() or at.is_file() else shutil.rmtree(at)
    os.symlink(target, at)


def write_processor(dst: pathlib.Path, out: pathlib.Path, tokenizer_dir: str) -> None:
    """processor/ in the released layout; the tokenizer files are the tiny tokenizer's (links to
    `tokenizer_dir`, relative to `dst`)."""
    if dst.exists():
        shutil.rmtree(dst)
    dst.mkdir(parents=True)
    (dst / "preprocessor_config.json").write_text(json.dumps(PREPROCESSOR_CONFIG, indent=2) + "\n")
    src = common.tiny_pipeline_dir(out) / "tokenizer"
    shutil.copyfile(src / "tokenizer_config.json", dst / "tokenizer_config.json")
    for name in ("vocab.json", "merges.txt"):
        link(f"{tokenizer_dir}/{name}", dst / name)


def write_pipeline_folder(out: pathlib.Path, name: str, pipe) -> pathlib.Path:
    """`save_pretrained` into a scratch folder for its model_index.json, then the shared components
    as links and the processor in the released layout."""
    root = out / name
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    scratch = out / f".{name}.scratch"
    if scratch.exists():
        shutil.rmtree(scratch)
    pipe.save_pretrained(str(scratch), safe_serialization=True)
    index = json.loads((scratch / "model_index.json").read_text())
    shutil.rmtree(scratch)
    assert index["_class_name"] == type(pipe).__name__, index
    assert index["processor"] == ["transformers", "Qwen2VLProcessor"], index
    (root / "model_index.json").write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")
    for comp in SHARED_COMPONENTS:
        link(f"../{common.TINY_PIPELINE}/{comp}", root / comp)
    write_processor(root / "processor", out, f"../../{common.TINY_PIPELINE}/tokenizer")
    return root


@contextlib.contextmanager
def forward_mm_token_type_ids(pipe):
    """Give the text encoder the `mm_token_type_ids` the processor computes and diffusers 0.42.1
    drops (diffusers PR #14189): the processor's own `create_mm_token_type_ids` on the ids the
    pipeline passes, added to the call by a forward pre-hook."""

    def hook(module, args, kwargs):
        ids = kwargs["input_ids"]
        types = pipe.processor.create_mm_token_type_ids(ids)
        kwargs["mm_token_type_ids"] = torch.tensor(types, dtype=torch.long, device=ids.device)
        module.model.rope_deltas = None
        return args, kwargs

    handle = pipe.text_encoder.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        yield
    finally:
        handle.remove()


@contextlib.contextmanager
def capture(te):
    """What the text encoder was called with, what its language model got (embeddings after the
    scatter, position ids) and each decoder layer's output; the last call wins."""
    seen = {}
    lm = te.model.language_model

    def te_hook(_m, _args, kwargs):
        seen["te_kwargs"] = {k: v for k, v in kwargs.items() if isinstance(v, torch.Tensor)}

    def lm_hook(_m, _args, kwargs):
        seen["inputs_embeds"] = kwargs["inputs_embeds"].detach().clone()
        pos = kwargs.get("position_ids")
        seen["position_ids"] = None if pos is None else pos.detach().clone()

    def layer_hook(i):
        def f(_m, _args, output):
            seen.setdefault("layers", {})[i] = (output[0] if isinstance(output, tuple) else output).detach().clone()

        return f

    handles = [te.register_forward_pre_hook(te_hook, with_kwargs=True),
               lm.register_forward_pre_hook(lm_hook, with_kwargs=True)]
    handles += [layer.register_forward_hook(layer_hook(i)) for i, layer in enumerate(lm.layers)]
    try:
        yield seen
    finally:
        for h in handles:
            h.remove()


def run_case(pipe, name: str, prompts: list[str], images: list) -> tuple[dict, dict]:
    te = pipe.text_encoder
    lm = te.model.language_model
    n_layers = len(lm.layers)
    cpu = torch.device("cpu")
    t = {}
    with torch.no_grad():
        # The pipeline as pinned (sequential positions).
        with capture(te) as seen:
            embeds, mask = pipe._get_qwen_prompt_embeds(prompts, image=images, device=cpu)
        assert seen["position_ids"] is None, "diffusers now passes position ids: revisit the as_is goldens"
        enc_embeds, enc_mask = pipe.encode_prompt(prompts, image=images, device=cpu)
        as_is_none = enc_mask is None
        t[f"{name}.as_is.prompt_embeds"] = embeds
        t[f"{name}.as_is.prompt_embeds_mask"] = mask
        t[f"{name}.as_is.encoded.prompt_embeds"] = enc_embeds
        t[f"{name}.as_is.encoded.prompt_embeds_mask"] = (
            torch.ones(enc_embeds.shape[:2], dtype=torch.long) if as_is_none else enc_mask)

        # With mm_token_type_ids forwarded: 3-D M-RoPE.
        with forward_mm_token_type_ids(pipe), capture(te) as seen:
            embeds3, mask3 = pipe._get_qwen_prompt_embeds(prompts, image=images, device=cpu)
        kw = seen["te_kwargs"]
        ids, att = kw["input_ids"], kw["attention_mask"]
        grid, pixels = kw["image_grid_thw"], kw["pixel_values"]
        types = kw["mm_token_type_ids"]
        pos, _ = te.model.get_rope_index(ids, types, grid, attention_mask=att)
        assert torch.equal(seen["position_ids"], pos)
        feats = te.model.get_image_features(pixels, grid, return_dict=True).pooler_output
        image_embeds = torch.cat(list(feats), 0)
        # Rerun the model on the same inputs for its hidden states (the pipeline keeps only the last).
        with capture(te) as seen2:
            out = te(input_ids=ids, attention_mask=att, pixel_values=pixels, image_grid_thw=grid,
                     mm_token_type_ids=types, output_hidden_states=True)
        assert len(out.hidden_states) == n_layers + 1
        assert torch.equal(out.hidden_states[0], seen2["inputs_embeds"])
        assert torch.equal(out.hidden_states[-1], lm.norm(seen2["layers"][n_layers - 1]))
        with forward_mm_token_type_ids(pipe):
            enc3, enc_mask3 = pipe.encode_prompt(prompts, image=images, device=cpu)
    mask_none = enc_mask3 is None
    if mask_none:
        enc_mask3 = torch.ones(enc3.shape[:2], dtype=torch.long)
    diff = (embeds3 - embeds).abs().max().item() if embeds3.shape == embeds.shape else float("inf")
    assert diff > 1e-3, f"{name}: 3-D and sequential positions agree ({diff}): has diffusers fixed #14194?"

    t.update({
        f"{name}.input_ids": ids,
        f"{name}.attention_mask": att,
        f"{name}.image_grid_thw": grid,
        f"{name}.image_embeds": image_embeds,
        f"{name}.position_ids": pos,
        f"{name}.prompt_embeds": embeds3,
        f"{name}.prompt_embeds_mask": mask3,
        f"{name}.encoded.prompt_embeds": enc3,
        f"{name}.encoded.prompt_embeds_mask": enc_mask3,
    })
    for i, h in enumerate(out.hidden_states):
        t[f"{name}.hidden_states.{i}"] = h
    for i in range(n_layers):
        t[f"{name}.layer_output.{i}"] = seen2["layers"][i]
    info = {
        "token_lengths": att.sum(1).tolist(),
        "image_grid_thw": grid.tolist(),
        "encoded_mask_was_none": mask_none,
        "as_is_encoded_mask_was_none": as_is_none,
        "as_is_max_abs_diff": diff,
    }
    return t, info


def left_padded_case(pipe, images: list, prompts: list[str]) -> dict:
    te = pipe.text_encoder
    proc = pipe.processor
    txt = [pipe.prompt_template_encode.format(p) for p in prompts]
    side = proc.tokenizer.padding_side
    proc.tokenizer.padding_side = "left"
    try:
        mi = proc(text=txt, images=images, padding=True, return_tensors="pt")
    finally:
        proc.tokenizer.padding_side = side
    assert (mi["attention_mask"][:, 0] == 0).any(), "left padding not exercised"
    with torch.no_grad():
        te.model.rope_deltas = None
        pos, _ = te.model.get_rope_index(mi["input_ids"], mi["mm_token_type_ids"], mi["image_grid_thw"],
                                         attention_mask=mi["attention_mask"])
        feats = te.model.get_image_features(mi["pixel_values"], mi["image_grid_thw"], return_dict=True).pooler_output
        out = te(input_ids=mi["input_ids"], attention_mask=mi["attention_mask"], pixel_values=mi["pixel_values"],
                 image_grid_thw=mi["image_grid_thw"], mm_token_type_ids=mi["mm_token_type_ids"],
                 output_hidden_states=True)
    last = out.hidden_states[-1].masked_fill(mi["attention_mask"][..., None] == 0, 0.0)
    return {
        "left_padded.input_ids": mi["input_ids"],
        "left_padded.attention_mask": mi["attention_mask"],
        "left_padded.image_grid_thw": mi["image_grid_thw"],
        "left_padded.image_embeds": torch.cat(list(feats), 0),
        "left_padded.position_ids": pos,
        "left_padded.last_hidden_state": last,
    }


def text_only_case(pipe, prompts: list[str]) -> tuple[dict, dict]:
    """Edit-Plus without an image: the bare edit template (no "Picture"), text through the
    processor, drop 64. With no image the 3-D and sequential positions agree."""
    cpu = torch.device("cpu")
    with torch.no_grad(), capture(pipe.text_encoder) as seen:
        embeds, mask = pipe._get_qwen_prompt_embeds(prompts, image=None, device=cpu)
        enc, enc_mask = pipe.encode_prompt(prompts, image=None, device=cpu)
    kw = seen["te_kwargs"]
    assert "pixel_values" not in kw
    mask_none = enc_mask is None
    if mask_none:
        enc_mask = torch.ones(enc.shape[:2], dtype=torch.long)
    t = {
        "edit_plus_text.input_ids": kw["input_ids"],
        "edit_plus_text.attention_mask": kw["attention_mask"],
        "edit_plus_text.prompt_embeds": embeds,
        "edit_plus_text.prompt_embeds_mask": mask,
        "edit_plus_text.encoded.prompt_embeds": enc,
        "edit_plus_text.encoded.prompt_embeds_mask": enc_mask,
    }
    info = {"pipeline": "QwenImageEditPlusPipeline", "prompts": prompts, "images": [],
            "token_lengths": kw["attention_mask"].sum(1).tolist(), "encoded_mask_was_none": mask_none,
            "drop": pipe.prompt_template_encode_start_idx}
    return t, info


def main(out: pathlib.Path) -> None:
    out = pathlib.Path(out)
    dst = out / OUT_DIR
    dst.mkdir(parents=True, exist_ok=True)
    write_images(dst)

    base = QwenImagePipeline.from_pretrained(str(common.tiny_pipeline_dir(out)), torch_dtype=torch.float32)
    base.text_encoder.eval()
    scratch_proc = out / f".{OUT_DIR}.processor"
    write_processor(scratch_proc, out, str((common.tiny_pipeline_dir(out) / "tokenizer").resolve()))
    processor = Qwen2VLProcessor.from_pretrained(str(scratch_proc))
    shutil.rmtree(scratch_proc)
    parts = dict(scheduler=base.scheduler, vae=base.vae, text_encoder=base.text_encoder,
                 tokenizer=base.tokenizer, processor=processor, transformer=base.transformer)
    pipes = {
        "QwenImageEditPipeline": QwenImageEditPipeline(**parts),
        "QwenImageEditPlusPipeline": QwenImageEditPlusPipeline(**parts),
    }
    folders = {
        "QwenImageEditPipeline": write_pipeline_folder(out, EDIT_DIR, pipes["QwenImageEditPipeline"]),
        "QwenImageEditPlusPipeline": write_pipeline_folder(out, EDIT_PLUS_DIR, pipes["QwenImageEditPlusPipeline"]),
    }

    tensors, cases = {}, {}
    for name, cls, prompts, files in CASES:
        pipe = pipes[cls]
        images = [load_image(str(dst / f)) for f in files]
        # The Edit template holds one image: diffusers takes the list as the processor does (one
        # image per prompt, in order); Edit-Plus names every image in every prompt.
        arg = images if (cls == "QwenImageEditPlusPipeline" or len(images) > 1) else images[0]
        t, info = run_case(pipe, name, prompts, arg)
        tensors.update(t)
        info.update({"pipeline": cls, "prompts": prompts, "images": files,
                     "drop": pipe.prompt_template_encode_start_idx})
        cases[name] = info
    t, info = text_only_case(pipes["QwenImageEditPlusPipeline"], [PROMPT_SHORT, PROMPT_LONG])
    tensors.update(t)
    cases["edit_plus_text"] = info
    edit = pipes["QwenImageEditPipeline"]
    left_images = [load_image(str(dst / f)) for f in CASES[0][3]]
    tensors.update(left_padded_case(edit, left_images, CASES[0][2]))

    # The saved folders load and reproduce the goldens (3-D positions).
    for name, cls, prompts, files in CASES:
        loaded = type(pipes[cls]).from_pretrained(str(folders[cls]), torch_dtype=torch.float32)
        images = [load_image(str(dst / f)) for f in files]
        arg = images if (cls == "QwenImageEditPlusPipeline" or len(images) > 1) else images[0]
        with torch.no_grad(), forward_mm_token_type_ids(loaded):
            e, _ = loaded.encode_prompt(prompts, image=arg, device=torch.device("cpu"))
        assert torch.equal(e, tensors[f"{name}.encoded.prompt_embeds"]), f"{folders[cls]} does not reproduce {name}"

    meta = {"cases": cases, "preprocessor_config": PREPROCESSOR_CONFIG,
            "image_token_id": edit.processor.image_token_id}
    common.save_tensors(dst / "mm_embeds.safetensors", tensors,
                        metadata={"info": json.dumps(meta, ensure_ascii=False, sort_keys=True)})
    tmp = dst / "cases.json.tmp"
    with open(tmp, "w", encoding="utf-8", newline="\n") as f:
        json.dump(meta, f, ensure_ascii=False, indent=1, sort_keys=True)
        f.write("\n")
    os.replace(tmp, dst / "cases.json")
    print(f"[text_encoder_mm] " + ", ".join(
        f"{k}: tokens {v['token_lengths']} grids {v.get('image_grid_thw', [])}"
        + (f" (as-is differs by {v['as_is_max_abs_diff']:.3g})" if "as_is_max_abs_diff" in v else "")
        for k, v in cases.items()))


def bench(testdata: pathlib.Path, repeats: int = 30) -> None:
    """transformers' side of `cargo bench -p text-encoder --bench multimodal` (run by hand, same
    machine, after the fixtures exist): the pipelines' `_get_qwen_prompt_embeds` on the golden
    cases with 3-D positions, from precomputed image embeddings (the language-model side:
    processor text side, scatter, model; the vision tower skipped through `mm_encoder_outputs`) and
    from the images (processor + vision tower + the rest). Prints medians."""
    import statistics
    import time

    from transformers.modeling_outputs import BaseModelOutputWithPooling

    def median_s(fn):
        fn()
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return statistics.median(times)

    src = testdata / OUT_DIR
    cls = {"QwenImageEditPipeline": QwenImageEditPipeline, "QwenImageEditPlusPipeline": QwenImageEditPlusPipeline}
    dirs = {"QwenImageEditPipeline": EDIT_DIR, "QwenImageEditPlusPipeline": EDIT_PLUS_DIR}
    print(f"torch {torch.__version__} ({torch.get_num_threads()} threads)")
    for name, klass, prompts, files in CASES:
        if name == "edit_single":
            continue
        pipe = cls[klass].from_pretrained(str(testdata / dirs[klass]), torch_dtype=torch.float32)
        te = pipe.text_encoder.eval()
        images = [load_image(str(src / f)) for f in files]
        arg = images if (klass == "QwenImageEditPlusPipeline" or len(images) > 1) else images[0]
        cpu = torch.device("cpu")
        with torch.inference_mode(), forward_mm_token_type_ids(pipe):
            s_full = median_s(lambda: pipe._get_qwen_prompt_embeds(prompts, image=arg, device=cpu))
            # The same call with the vision tower's output memoised: the language-model side.
            orig = te.model.get_image_features
            cache = {}

            def cached(pixel_values, grid, **kwargs):
                key = (tuple(pixel_values.shape), tuple(grid.flatten().tolist()))
                if key not in cache:
                    cache[key] = orig(pixel_values, grid, return_dict=True).pooler_output
                return BaseModelOutputWithPooling(pooler_output=cache[key])

            te.model.get_image_features = cached
            try:
                s_lm = median_s(lambda: pipe._get_qwen_prompt_embeds(prompts, image=arg, device=cpu))
            finally:
                te.model.get_image_features = orig
        print(f"edit_prompt_tiny/{name}/from_image_embeds  {s_lm * 1e3:9.3f} ms  (processor still resizes the images)")
        print(f"edit_prompt_tiny/{name}/from_images        {s_full * 1e3:9.3f} ms")


if __name__ == "__main__":
    import sys

    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
    if "--bench" in sys.argv:
        common.make_deterministic()
        bench(pathlib.Path(__file__).resolve().parents[2] / "testdata")
    else:
        print("run through fixtures.py (--only text_encoder_mm), or with --bench for transformers' timings")
