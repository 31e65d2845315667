"""Time diffusers' QwenImagePipeline on the tiny case the Rust bench times
(crates/pipeline/benches/tiny.rs): 64×64, 6 steps, CFG on, same initial latents. Run by hand:
    .venv-reference/bin/python xtask/reference/bench_pipeline.py [--threads N]
"""

import argparse
import pathlib
import statistics
import time

import torch
from diffusers import QwenImagePipeline
from safetensors.torch import load_file

ROOT = pathlib.Path(__file__).resolve().parents[2] / "testdata"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=10)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    pipe = QwenImagePipeline.from_pretrained(str(ROOT / "tiny-qwen-image"), torch_dtype=torch.float32)
    pipe.set_progress_bar_config(disable=True)
    latents = load_file(str(ROOT / "e2e/latents/tiny_t2i_cfg.safetensors"))["latents"]
    kw = dict(prompt="Doraemon is eating dorayaki", negative_prompt=" ", true_cfg_scale=4.0,
              height=64, width=64, num_inference_steps=6)
    pipe(**kw, latents=latents.clone())  # warm-up
    times = []
    for _ in range(args.runs):
        t = time.perf_counter()
        pipe(**kw, latents=latents.clone())
        times.append(time.perf_counter() - t)
    print(f"diffusers tiny pipeline (threads={args.threads}): median {statistics.median(times)*1e3:.1f} ms "
          f"over {args.runs} runs")


if __name__ == "__main__":
    main()
