"""Time upstream's three pixel metrics in scikit-image and ours (criterion) on the same 1024x1024
RGB pair, on this machine, and print the ratio.

    .venv-reference/bin/python crates/metrics/benches/compare_skimage.py
"""

import json
import pathlib
import subprocess
import time

import numpy as np
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

ROOT = pathlib.Path(__file__).resolve().parents[3]


def pair():
    """The same pair as benches/pixel.rs builds."""
    y, x = np.mgrid[0:1024, 0:1024].astype(np.int64)
    a = np.stack([(x + y) % 256, (x * 3) % 256, (y * 5 + x) % 256], axis=-1).astype(np.uint8)
    i = np.arange(a.size, dtype=np.uint64)
    noise = (((i * np.uint64(2654435761)) % np.uint64(1 << 32)) >> np.uint64(7)) % np.uint64(17)
    b = np.clip(a.reshape(-1).astype(np.int64) + noise.astype(np.int64) - 8, 0, 255)
    return a, b.astype(np.uint8).reshape(a.shape)


def upstream_metrics(out, gt):
    ssim = structural_similarity(out, gt, channel_axis=2, data_range=255)
    psnr = peak_signal_noise_ratio(gt, out, data_range=255)
    mad = np.mean(np.abs(out.astype(np.float32) - gt.astype(np.float32)))
    return ssim, psnr, mad


def main():
    a, b = pair()
    upstream_metrics(a, b)  # warm-up
    times = []
    for _ in range(10):
        t0 = time.perf_counter()
        ssim, psnr, mad = upstream_metrics(a, b)
        times.append(time.perf_counter() - t0)
    sk = float(np.median(times))
    print(f"skimage: ssim={ssim:.9f} psnr={psnr:.6f} mad={mad:.6f}  median {sk * 1e3:.1f} ms")

    subprocess.run(
        ["cargo", "bench", "-p", "metrics", "--no-default-features", "--bench", "pixel", "--", "--noplot"],
        cwd=ROOT,
        check=True,
    )
    est = ROOT / "target/criterion/ssim_psnr_mad_1024x1024_rgb/new/estimates.json"
    ours = json.loads(est.read_text())["median"]["point_estimate"] * 1e-9
    print(f"ours (criterion median): {ours * 1e3:.2f} ms; skimage / ours = {sk / ours:.1f}x")


if __name__ == "__main__":
    main()
