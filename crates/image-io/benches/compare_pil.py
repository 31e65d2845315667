"""Times PIL / diffusers on the work of benches/resize.rs (same input formula), single-threaded.

Run with the reference venv: .venv-reference/bin/python crates/image-io/benches/compare_pil.py
"""

import io
import time

import numpy as np
from PIL import Image

from diffusers.image_processor import VaeImageProcessor
from diffusers.pipelines.qwenimage.pipeline_qwenimage_edit import calculate_dimensions


def make_input(width: int, height: int) -> Image.Image:
    state = np.uint32(0x2545F491)
    n = width * height * 3
    out = np.empty(n, dtype=np.uint8)
    s = int(state)
    for i in range(n):
        s ^= (s << 13) & 0xFFFFFFFF
        s ^= s >> 17
        s ^= (s << 5) & 0xFFFFFFFF
        out[i] = (i // 3 % width * 255 // width) // 2 + (s >> 25)
    return Image.fromarray(out.reshape(height, width, 3))


def best(fn, repeat: int = 10) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times) * 1000


def main() -> None:
    img = make_input(1024, 768)
    proc = VaeImageProcessor(vae_scale_factor=16)

    def edit():
        w, h, _ = calculate_dimensions(1024 * 1024, img.size[0] / img.size[1])
        resized = proc.resize(img, h, w)
        proc.preprocess(resized, h, w)

    def jpeg_encode():
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=75)
        return buf.getvalue()

    data = jpeg_encode()

    def jpeg_decode():
        im = Image.open(io.BytesIO(data))
        im.load()

    for name, fn in [
        ("qwen edit image (lanczos + preprocess)", edit),
        ("resize 298x224 bicubic", lambda: img.resize((298, 224), Image.Resampling.BICUBIC)),
        ("jpeg encode q75", jpeg_encode),
        ("jpeg decode q75", jpeg_decode),
    ]:
        print(f"{name:42s} {best(fn):8.2f} ms")


if __name__ == "__main__":
    import torch

    torch.set_num_threads(1)
    main()
