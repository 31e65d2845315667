"""Time diffusers' AutoencoderKLQwenImage.encode on the case the Rust bench times
(crates/qwen-image-vae/benches/encode.rs): the tiny pipeline's VAE (base_dim 8), one RGB image
at 128² and 256², f32 on the CPU. Run by hand:
    .venv-reference/bin/python xtask/reference/bench_vae_encoder.py [--threads N] [--runs N]
"""

import argparse
import pathlib
import statistics
import time

import torch
from diffusers import AutoencoderKLQwenImage

ROOT = pathlib.Path(__file__).resolve().parents[2] / "testdata"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=10)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    vae = AutoencoderKLQwenImage.from_pretrained(str(ROOT / "tiny-qwen-image/vae"), torch_dtype=torch.float32).eval()
    gen = torch.Generator().manual_seed(0)
    for side in (128, 256):
        image = torch.rand(1, 3, 1, side, side, generator=gen) * 2 - 1
        with torch.no_grad():
            vae.encode(image).latent_dist.mode()  # warm-up
            times = []
            for _ in range(args.runs):
                t = time.perf_counter()
                vae.encode(image).latent_dist.mode()
                times.append(time.perf_counter() - t)
        print(f"diffusers tiny VAE encode {side}x{side} (threads={args.threads}): "
              f"median {statistics.median(times) * 1e3:.1f} ms over {args.runs} runs")


if __name__ == "__main__":
    main()
