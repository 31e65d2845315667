"""End-to-end official GT: the diffusers QwenImagePipeline run on the tiny pipeline, stored as a GT
tree (official_generated/case_map.json + <case>_1gpu.png), with the initial latents, the latents
after the first step (so a mismatch can be located), and the case file that drives
`cargo xtask consistency`.

Cases: CFG on with negative " ", CFG off (no negative prompt), non-square, and one given only a
seed (diffusers draws the noise with torch.Generator("cpu").manual_seed(seed)).
"""

import json
import pathlib
import shutil

import torch
from diffusers import QwenImagePipeline

import common

STEPS = 6
CASES = [
    dict(id="tiny_t2i_cfg", prompt="Doraemon is eating dorayaki", negative_prompt=" ",
         true_cfg_scale=4.0, height=64, width=64, latents_seed=1),
    dict(id="tiny_t2i_nocfg", prompt="A red bicycle leaning on a brick wall, 4K",
         height=64, width=64, latents_seed=2),
    dict(id="tiny_t2i_nonsquare", prompt="一只猫坐在窗台上 🐱, golden hour", negative_prompt=" ",
         true_cfg_scale=3.0, height=48, width=80, latents_seed=3),
    dict(id="tiny_t2i_seed", prompt="A lighthouse on a cliff at night", negative_prompt=" ",
         true_cfg_scale=4.0, height=64, width=48, seed=42),
]


def toml_value(v):
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    return repr(v)


def main(out: pathlib.Path) -> None:
    pipe_dir = common.tiny_pipeline_dir(out)
    pipe = QwenImagePipeline.from_pretrained(str(pipe_dir), torch_dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)

    e2e = out / "e2e"
    if e2e.exists():
        shutil.rmtree(e2e)
    # The GT tree is shared with gen_e2e_edit.py: only this generator's files are replaced.
    official = out / "gt" / "official_generated"
    official.mkdir(parents=True, exist_ok=True)
    for old in official.glob("tiny_t2i_*"):
        old.unlink()
    (e2e / "latents").mkdir(parents=True)
    case_map = {"cases": {}}
    toml_lines = [
        "# Tiny official cases: the diffusers QwenImagePipeline on testdata/tiny-qwen-image (f32, CPU).",
        "# Written by xtask/reference/gen_e2e.py; GT in ../gt/official_generated.",
        "",
    ]
    for case in CASES:
        cid = case["id"]
        h, w = case["height"], case["width"]
        lh, lw = 2 * (h // 16), 2 * (w // 16)
        kwargs = dict(
            prompt=case["prompt"], height=h, width=w, num_inference_steps=STEPS, output_type="pil",
        )
        if "negative_prompt" in case:
            kwargs["negative_prompt"] = case["negative_prompt"]
            kwargs["true_cfg_scale"] = case["true_cfg_scale"]
        latents_file = None
        if "latents_seed" in case:
            g = torch.Generator().manual_seed(case["latents_seed"])
            noise = torch.randn((1, 1, 16, lh, lw), generator=g, dtype=torch.float32)
            packed = QwenImagePipeline._pack_latents(noise, 1, 16, lh, lw)
            latents_file = e2e / "latents" / f"{cid}.safetensors"
            common.save_tensors(latents_file, {"latents": packed})
            kwargs["latents"] = packed.clone()
        else:
            kwargs["generator"] = torch.Generator("cpu").manual_seed(case["seed"])

        captured = {}

        def on_step_end(p, i, t, cb):
            if i == 0:
                captured["latents_step1"] = cb["latents"].detach().clone()
            return cb

        image = pipe(**kwargs, callback_on_step_end=on_step_end,
                     callback_on_step_end_tensor_inputs=["latents"]).images[0]
        name = f"{cid}_1gpu.png"
        image.save(official / name)
        case_map["cases"][cid] = {"outputs": [name]}
        common.save_tensors(e2e / f"{cid}.safetensors", {"latents_step1": captured["latents_step1"]})

        toml_lines.append("[[case]]")
        toml_lines.append(f"id = {toml_value(cid)}")
        toml_lines.append('model = "../tiny-qwen-image"')
        for key in ("prompt", "negative_prompt", "true_cfg_scale", "height", "width"):
            if key in case:
                toml_lines.append(f"{key} = {toml_value(case[key])}")
        toml_lines.append(f"num_inference_steps = {STEPS}")
        if "seed" in case:
            toml_lines.append(f"seed = {case['seed']}")
        if latents_file is not None:
            toml_lines.append(f'latents = "../e2e/latents/{cid}.safetensors"')
        toml_lines.append("num_gpus = 1")
        toml_lines.append('output_format = "png"')
        toml_lines.append("")

    common.update_case_map(official, case_map["cases"], "tiny_t2i_")
    (out / "cases").mkdir(exist_ok=True)
    (out / "cases" / "tiny.toml").write_text("\n".join(toml_lines))
    print(f"[e2e] wrote {len(CASES)} cases")
