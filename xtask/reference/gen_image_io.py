"""Goldens for crates/image-io: images exactly as Pillow 13 and diffusers 0.42.1 see them.

Writes testdata/image-io/:
  sources/*.png|webp        inputs in every PNG flavour PIL opens differently (L, LA, RGB, RGBA,
                            16-bit grey/RGB/LA, palette + tRNS) and WebP (lossless, lossy)
  sources.json              the mode PIL opens each source as
  opened.safetensors        np.asarray(Image.open(src)) for the sources whose mode we keep
                            (u8/u16 arrays, HxW[xC])
  resize/{mode}_{filter}_{w}x{h}.png
                            Image.resize of the L/LA/RGB/RGBA sources with all six filters,
                            up, down, mixed and one-axis sizes
  convert/{src}_{mode}.png  Image.open(src).convert(mode) for L, LA, RGB, RGBA
  vae/preprocess.safetensors
                            VaeImageProcessor(...).preprocess outputs (f32 [1,C,H,W]) on small sizes
  vae/pipelines.json        calculate_dimensions over a grid of aspect ratios and areas, and the
                            Qwen Edit / Edit-Plus / Layered input steps at real sizes (sizes and
                            SHA-256 of the resized bytes and of the f32 tensors)
  jpeg/pil_*.jpg, jpeg/pil_*.png
                            JPEGs written by PIL (q75/q95, 4:2:0/4:2:2/4:4:4, grey, progressive,
                            odd sizes) and PIL's decode of each; jpeg/photo.png is the encode input
  webp/*.png                PIL's decode of the WebP sources

Everything is deterministic (fixed seeds, no timestamps): a rerun writes identical files.
"""

import hashlib
import io
import json
import os
import pathlib

import numpy as np
import PIL
from PIL import Image
from safetensors.numpy import save_file
from skimage import data as skdata

from diffusers.image_processor import VaeImageProcessor
from diffusers.pipelines.qwenimage import pipeline_qwenimage_edit as edit
from diffusers.pipelines.qwenimage import pipeline_qwenimage_edit_plus as edit_plus
from diffusers.pipelines.qwenimage import pipeline_qwenimage_layered as layered

FILTERS = {
    "nearest": Image.Resampling.NEAREST,
    "box": Image.Resampling.BOX,
    "bilinear": Image.Resampling.BILINEAR,
    "hamming": Image.Resampling.HAMMING,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
}
# From 41x29: up, down, mixed, width only (one pass), height only.
SIZES = [(67, 53), (19, 13), (52, 17), (41, 60), (23, 29)]


def write_bytes(path: pathlib.Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def save_image(img: Image.Image, path: pathlib.Path, **kw) -> None:
    buf = io.BytesIO()
    fmt = kw.pop("format", "PNG")
    if fmt == "PNG":
        kw.setdefault("compress_level", 9)
    img.save(buf, format=fmt, **kw)
    write_bytes(path, buf.getvalue())


def save_json(path: pathlib.Path, obj, indent: int | None = 1) -> None:
    write_bytes(path, (json.dumps(obj, indent=indent, sort_keys=True) + "\n").encode())


def save_arrays(path: pathlib.Path, arrays: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    save_file({k: np.ascontiguousarray(arrays[k]) for k in sorted(arrays)}, str(tmp))
    os.replace(tmp, path)


def sha256(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def make_sources(rng: np.random.Generator) -> dict[str, Image.Image]:
    cat = skdata.chelsea()  # 300x451 RGB
    rgb = cat[120:149, 200:241]  # 29x41 of fur and eye: real detail, odd size
    # Alpha: a ramp with fully clear and fully opaque patches and noise, so the premultiplied resize
    # meets alpha 0, 255 and everything between.
    ramp = np.linspace(0, 255, rgb.shape[1])[None, :].repeat(rgb.shape[0], 0)
    alpha = np.clip(ramp + rng.normal(0, 40, ramp.shape), 0, 255).round().astype(np.uint8)
    alpha[:6, :8] = 0
    alpha[-6:, -8:] = 255
    rgba = np.dstack([rgb, alpha])
    grey = np.asarray(Image.fromarray(rgb).convert("L"))
    la = np.dstack([grey, alpha])
    i16 = (rng.integers(0, 1024, (7, 13)) * rng.integers(0, 64, (7, 13))).astype(np.uint16)
    i16[0, :4] = [0, 255, 256, 65535]
    rgb16 = (rgb.astype(np.uint16) * 257 + rng.integers(0, 257, rgb.shape)).astype(np.uint16)
    la16 = np.dstack([grey.astype(np.uint16) * 257 + 100, alpha.astype(np.uint16) * 257 + 3])
    pal = Image.fromarray(rgb).quantize(colors=16, method=Image.Quantize.MEDIANCUT, dither=0)
    return {
        "rgb": Image.fromarray(rgb),
        "rgba": Image.fromarray(rgba),
        "l": Image.fromarray(grey),
        "la": Image.fromarray(la),
        "i16": Image.fromarray(i16),
        "rgb16": rgb16,
        "la16": la16,
        "p": pal,
    }


def write_png16(arr: np.ndarray, path: pathlib.Path) -> None:
    """PIL cannot write 16-bit RGB/LA PNGs; write them with a minimal encoder."""
    import struct
    import zlib

    h, w = arr.shape[:2]
    ch = arr.shape[2]
    color = {2: 4, 3: 2, 4: 6}[ch]
    raw = b"".join(b"\x00" + arr[y].astype(">u2").tobytes() for y in range(h))

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, color, 0, 0, 0))
    png += chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")
    write_bytes(path, png)


def sources(folder: pathlib.Path, rng: np.random.Generator) -> dict[str, pathlib.Path]:
    src = make_sources(rng)
    paths = {}
    for name, img in src.items():
        path = folder / "sources" / f"{name}.png"
        if isinstance(img, np.ndarray):
            write_png16(img, path)
        else:
            # Palette index 3 is clear: a tRNS chunk.
            save_image(img, path, **({"transparency": 3} if name == "p" else {}))
        paths[name] = path
    rgba = Image.open(paths["rgba"])
    save_image(rgba, folder / "sources" / "rgba_lossless.webp", format="WEBP", lossless=True, exact=True)
    save_image(Image.open(paths["rgb"]), folder / "sources" / "rgb_lossy.webp", format="WEBP", quality=80)
    paths["rgba_lossless_webp"] = folder / "sources" / "rgba_lossless.webp"
    paths["rgb_lossy_webp"] = folder / "sources" / "rgb_lossy.webp"
    modes, opened = {}, {}
    for name, path in paths.items():
        im = Image.open(path)
        im.load()
        modes[name] = im.mode
        if im.mode in ("L", "LA", "RGB", "RGBA", "I;16"):
            opened[name] = np.asarray(im)
    save_json(folder / "sources.json", {"pillow": PIL.__version__, "modes": modes})
    save_arrays(folder / "opened.safetensors", opened)
    return paths


def resize_goldens(folder: pathlib.Path, paths: dict) -> None:
    for mode in ("l", "la", "rgb", "rgba"):
        img = Image.open(paths[mode])
        for fname, code in FILTERS.items():
            for w, h in SIZES:
                save_image(img.resize((w, h), resample=code), folder / "resize" / f"{mode}_{fname}_{w}x{h}.png")


def convert_goldens(folder: pathlib.Path, paths: dict) -> None:
    for name in ("l", "la", "rgb", "rgba", "i16", "rgb16", "la16", "p"):
        img = Image.open(paths[name])
        for mode in ("L", "LA", "RGB", "RGBA"):
            out = img.convert(mode)
            # P -> L/RGB keeps a transparent colour in info; saved, it would become a tRNS chunk.
            # The golden is the pixels only.
            out.info.pop("transparency", None)
            save_image(out, folder / "convert" / f"{name}_{mode.lower()}.png")


def preprocess_goldens(folder: pathlib.Path, paths: dict) -> None:
    qwen = VaeImageProcessor(vae_scale_factor=16)
    rgb_proc = VaeImageProcessor(vae_scale_factor=16, do_convert_rgb=True)
    bicubic = VaeImageProcessor(vae_scale_factor=8, resample="bicubic")
    rgb, rgba, grey = (Image.open(paths[k]) for k in ("rgb", "rgba", "l"))
    cases = {
        "qwen_rgb_h32_w48": (qwen, rgb, 32, 48),
        "qwen_rgba_h32_w48": (qwen, rgba, 32, 48),
        "qwen_l_h16_w64": (qwen, grey, 16, 64),
        "qwen_rgb_default": (qwen, rgb, None, None),  # 41x29 floored to 32x16
        "qwen_rgb_h37_w50": (qwen, rgb, 37, 50),  # floored to 32x48 as diffusers does
        "convert_rgb_rgba_h32_w32": (rgb_proc, rgba, 32, 32),
        "bicubic8_rgb_h24_w40": (bicubic, rgb, 24, 40),
    }
    out = {}
    for name, (proc, img, h, w) in cases.items():
        out[name] = proc.preprocess(img, h, w).numpy().astype(np.float32)
    save_arrays(folder / "vae" / "preprocess.safetensors", out)


def f32_sha(t) -> str:
    return sha256(np.ascontiguousarray(t.numpy().astype("<f4")).tobytes())


def pipeline_goldens(folder: pathlib.Path, paths: dict) -> None:
    areas = [1024 * 1024, 384 * 384, 640 * 640]
    sides = [1, 7, 29, 41, 64, 333, 512, 719, 928, 1000, 1080, 1140, 1664, 1920, 2048, 4000]
    dims = []
    for w in sides:
        for h in sides:
            for area in areas:
                cw, ch = edit_plus.calculate_dimensions(area, w / h)
                ew, eh, _ = edit.calculate_dimensions(area, w / h)
                lw, lh = layered.calculate_dimensions(area, w / h)
                assert (cw, ch) == (ew, eh) == (lw, lh)
                dims.append([w, h, area, cw, ch])
    proc = VaeImageProcessor(vae_scale_factor=16)
    cases = {}
    # The Edit pipeline (__call__, "Preprocess image"): resize, that is the prompt image, preprocess it.
    for name in ("rgb", "rgb16"):
        img = Image.open(paths[name]).convert("RGB")
        w, h, _ = edit.calculate_dimensions(1024 * 1024, img.size[0] / img.size[1])
        resized = proc.resize(img, h, w)
        vae = proc.preprocess(resized, h, w)
        cases[f"edit_{name}"] = {
            "calculated": [w, h],
            "output": [w // 16 * 16, h // 16 * 16],
            "condition_sha256": sha256(resized.tobytes()),
            "vae_shape": list(vae.shape),
            "vae_sha256": f32_sha(vae),
        }
    # Edit-Plus: condition image from the original at 384² area, VAE image from the original at 1024².
    img = Image.open(paths["rgb"]).convert("RGB")
    ratio = img.size[0] / img.size[1]
    cw, ch = edit_plus.calculate_dimensions(edit_plus.CONDITION_IMAGE_SIZE, ratio)
    vw, vh = edit_plus.calculate_dimensions(edit_plus.VAE_IMAGE_SIZE, ratio)
    cond = proc.resize(img, ch, cw)
    vae = proc.preprocess(img, vh, vw)
    cases["edit_plus_rgb"] = {
        "condition_size": [cw, ch],
        "vae_size": [vw, vh],
        "condition_sha256": sha256(cond.tobytes()),
        "vae_shape": list(vae.shape),
        "vae_sha256": f32_sha(vae),
    }
    # Layered: RGBA input, both resolution buckets.
    img = Image.open(paths["rgba"]).convert("RGBA")
    for res in (640, 1024):
        w, h = layered.calculate_dimensions(res * res, img.size[0] / img.size[1])
        resized = proc.resize(img, h, w)
        vae = proc.preprocess(resized, h, w)
        cases[f"layered_{res}_rgba"] = {
            "calculated": [w, h],
            "condition_sha256": sha256(resized.tobytes()),
            "vae_shape": list(vae.shape),
            "vae_sha256": f32_sha(vae),
        }
    save_json(
        folder / "vae" / "pipelines.json",
        {
            # Rows of [image width, image height, target area, width, height].
            "calculate_dimensions": dims,
            "cases": cases,
            "constants": {
                "CONDITION_IMAGE_SIZE": edit_plus.CONDITION_IMAGE_SIZE,
                "VAE_IMAGE_SIZE": edit_plus.VAE_IMAGE_SIZE,
            },
        },
        indent=None,
    )


def jpeg_goldens(folder: pathlib.Path, rng: np.random.Generator) -> None:
    cat = skdata.chelsea()
    photo = Image.fromarray(cat[60:107, 150:211])  # 61x47
    odd = Image.fromarray(cat[200:217, 300:333])  # 33x17
    grey = photo.convert("L")
    noise = Image.fromarray(rng.integers(0, 256, (23, 37, 3), dtype=np.uint8))  # worst case for the DCT
    save_image(photo, folder / "jpeg" / "photo.png")
    save_image(odd, folder / "jpeg" / "odd.png")
    save_image(grey, folder / "jpeg" / "grey.png")
    save_image(noise, folder / "jpeg" / "noise.png")
    variants = {
        "photo_q75": (photo, {}),  # PIL's default save: quality 75, 4:2:0
        "photo_q95": (photo, {"quality": 95}),
        "photo_q75_444": (photo, {"quality": 75, "subsampling": 0}),
        "photo_q95_444": (photo, {"quality": 95, "subsampling": 0}),
        "photo_q75_422": (photo, {"quality": 75, "subsampling": 1}),
        "odd_q75": (odd, {"quality": 75}),
        "odd_q95_444": (odd, {"quality": 95, "subsampling": 0}),
        "grey_q75": (grey, {"quality": 75}),
        "noise_q75": (noise, {"quality": 75}),
        "noise_q95": (noise, {"quality": 95}),
        "photo_q75_progressive": (photo, {"quality": 75, "progressive": True}),
        "photo_q75_optimize": (photo, {"quality": 75, "optimize": True}),
    }
    meta = {}
    for name, (img, kw) in variants.items():
        buf = io.BytesIO()
        img.save(buf, format="JPEG", **kw)
        data = buf.getvalue()
        write_bytes(folder / "jpeg" / f"pil_{name}.jpg", data)
        dec = Image.open(io.BytesIO(data))
        dec.load()
        save_image(dec, folder / "jpeg" / f"pil_{name}.png")
        meta[name] = {"options": kw, "mode": dec.mode, "size": list(dec.size)}
    save_json(folder / "jpeg" / "variants.json", meta)


def webp_goldens(folder: pathlib.Path, paths: dict) -> None:
    for name in ("rgba_lossless_webp", "rgb_lossy_webp"):
        im = Image.open(paths[name])
        im.load()
        save_image(im, folder / "webp" / f"{name}.png")


def main(out: pathlib.Path) -> None:
    folder = pathlib.Path(out) / "image-io"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(17)
    paths = sources(folder, rng)
    resize_goldens(folder, paths)
    convert_goldens(folder, paths)
    preprocess_goldens(folder, paths)
    pipeline_goldens(folder, paths)
    jpeg_goldens(folder, rng)
    webp_goldens(folder, paths)
