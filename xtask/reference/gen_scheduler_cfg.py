"""Golden values for crates/flow-match (testdata/scheduler/) and crates/cfg (testdata/cfg/).

Scheduler: FlowMatchEulerDiscreteScheduler is driven exactly as QwenImagePipeline.__call__ drives it
(sigmas = np.linspace(1, 1/n, n) unless custom, mu = calculate_shift(image_seq_len, <config values>),
retrieve_timesteps(scheduler, n, sigmas=..., mu=...)), for several sizes, step counts and configs.
Every schedule is stored as `<case>.sigmas` [n+1] f32, `<case>.timesteps` [n] f32 and `<case>.mu` [1]
f64; the case list (config file, num_steps, image_seq_len, custom sigmas) is the `cases` metadata entry.
An Euler-step golden runs scheduler.step over a whole short schedule on random f32 tensors.

CFG: the pipeline's inline true-CFG block (it is not a function upstream, so its three lines are
evaluated here on torch tensors) on random [B, N, 64] f32 tensors for several scales.
"""

import json
import os
import pathlib

import numpy as np
import torch
from diffusers import FlowMatchEulerDiscreteScheduler
from diffusers.pipelines.qwenimage.pipeline_qwenimage import calculate_shift, retrieve_timesteps

from common import save_tensors, tiny_pipeline_dir

# (name, config file under testdata/scheduler, num_steps, image_seq_len, custom sigmas or None)
CASES = [
    # The reference table of the model notes (§2.7) and the official resolutions.
    ("qwen_1024x1024_50", "qwen_image.json", 50, 4096, None),
    ("qwen_1328x1328_50", "qwen_image.json", 50, 6889, None),
    ("qwen_1664x928_50", "qwen_image.json", 50, 6032, None),
    ("qwen_512x512_4", "qwen_image.json", 4, 1024, None),
    # The tiny pipeline's e2e size (64x64 -> 4x4 tokens), the base and beyond max seq len (mu unclamped).
    ("qwen_64x64_2", "qwen_image.json", 2, 16, None),
    ("qwen_256x256_20", "qwen_image.json", 20, 256, None),
    ("qwen_2048x2048_30", "qwen_image.json", 30, 16384, None),
    ("qwen_1024x1024_7", "qwen_image.json", 7, 4096, None),
    # One step: the terminal stretch divides 0 by 0 upstream (NaN schedule).
    ("qwen_1024x1024_1", "qwen_image.json", 1, 4096, None),
    # Custom sigmas, as `QwenImagePipeline(sigmas=[...])` passes them.
    ("custom_1024x1024_5", "qwen_image.json", 5, 4096, [1.0, 0.8, 0.55, 0.3, 0.1]),
    ("custom_512x768_6", "qwen_image.json", 6, 1536, [0.97, 0.9, 0.7, 0.45, 0.2, 0.05]),
    # time_shift_type = "linear".
    ("linear_1024x1024_50", "linear.json", 50, 4096, None),
    ("linear_512x512_8", "linear.json", 8, 1024, None),
    ("linear_custom_5", "linear.json", 5, 2304, [1.0, 0.75, 0.5, 0.25, 0.125]),
    # Static shift (use_dynamic_shifting = false, shift = 3, no terminal stretch).
    ("static_shift3_10", "static_shift.json", 10, 4096, None),
]

EULER_CASE = "qwen_512x512_4"


def _write_text(path: pathlib.Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _configs(out: pathlib.Path) -> dict:
    released = json.loads((tiny_pipeline_dir(out) / "scheduler" / "scheduler_config.json").read_text())
    released.pop("_diffusers_version", None)
    linear = dict(released, time_shift_type="linear")
    static = dict(released, use_dynamic_shifting=False, shift=3.0, shift_terminal=None)
    return {"qwen_image.json": released, "linear.json": linear, "static_shift.json": static}


def _schedule(config: dict, num_steps: int, image_seq_len: int, custom):
    scheduler = FlowMatchEulerDiscreteScheduler.from_config(config)
    # Step 5 of QwenImagePipeline.__call__, verbatim in behaviour.
    sigmas = np.linspace(1.0, 1 / num_steps, num_steps) if custom is None else custom
    mu = calculate_shift(
        image_seq_len,
        scheduler.config.get("base_image_seq_len", 256),
        scheduler.config.get("max_image_seq_len", 4096),
        scheduler.config.get("base_shift", 0.5),
        scheduler.config.get("max_shift", 1.15),
    )
    timesteps, _ = retrieve_timesteps(scheduler, num_steps, "cpu", sigmas=sigmas, mu=mu)
    return scheduler, timesteps, mu


def _scheduler_goldens(out: pathlib.Path) -> None:
    folder = out / "scheduler"
    folder.mkdir(parents=True, exist_ok=True)
    configs = _configs(out)
    for name, cfg in configs.items():
        _write_text(folder / name, json.dumps(cfg, indent=2, sort_keys=True) + "\n")

    tensors, cases = {}, []
    for name, cfg_file, n, seq_len, custom in CASES:
        scheduler, timesteps, mu = _schedule(configs[cfg_file], n, seq_len, custom)
        tensors[f"{name}.sigmas"] = scheduler.sigmas.to(torch.float32)
        tensors[f"{name}.timesteps"] = timesteps.to(torch.float32)
        tensors[f"{name}.mu"] = torch.tensor([mu], dtype=torch.float64)
        cases.append(
            {"name": name, "config": cfg_file, "num_steps": n, "image_seq_len": seq_len, "sigmas": custom}
        )
    assert torch.isnan(tensors["qwen_1024x1024_1.sigmas"][0]), "upstream one-step quirk changed"

    # Euler steps: scheduler.step over a whole 4-step schedule, f32 sample and velocity.
    case = next(c for c in CASES if c[0] == EULER_CASE)
    scheduler, timesteps, _ = _schedule(configs[case[1]], case[2], case[3], case[4])
    scheduler.set_begin_index(0)
    g = torch.Generator().manual_seed(1234)
    sample = torch.randn(1, 16, 64, generator=g, dtype=torch.float32)
    velocities = torch.randn(len(timesteps), 1, 16, 64, generator=g, dtype=torch.float32)
    x, outs = sample, []
    for i, t in enumerate(timesteps):
        x = scheduler.step(velocities[i], t, x, return_dict=False)[0]
        outs.append(x)
    tensors["euler.sample"] = sample
    tensors["euler.velocities"] = velocities
    tensors["euler.outputs"] = torch.stack(outs)

    save_tensors(
        folder / "schedules.safetensors",
        tensors,
        {"cases": json.dumps(cases), "euler_case": EULER_CASE},
    )


def _true_cfg(cond: torch.Tensor, uncond: torch.Tensor, scale: float) -> torch.Tensor:
    # QwenImagePipeline.__call__, the `if do_true_cfg:` block (noise_pred = cond, neg_noise_pred = uncond).
    comb_pred = uncond + scale * (cond - uncond)
    cond_norm = torch.norm(cond, dim=-1, keepdim=True)
    noise_norm = torch.norm(comb_pred, dim=-1, keepdim=True)
    return comb_pred * (cond_norm / noise_norm)


CFG_SCALES = [1.5, 2.5, 3.3, 4.0, 7.5]


def _cfg_goldens(out: pathlib.Path) -> None:
    g = torch.Generator().manual_seed(4321)
    cond = torch.randn(2, 24, 64, generator=g, dtype=torch.float32)
    uncond = torch.randn(2, 24, 64, generator=g, dtype=torch.float32)
    tensors = {"cond": cond, "uncond": uncond}
    for s in CFG_SCALES:
        tensors[f"combined.{s}"] = _true_cfg(cond, uncond, s)
    save_tensors(out / "cfg" / "true_cfg.safetensors", tensors, {"scales": json.dumps(CFG_SCALES)})


def main(out: pathlib.Path) -> None:
    _scheduler_goldens(pathlib.Path(out))
    _cfg_goldens(pathlib.Path(out))
