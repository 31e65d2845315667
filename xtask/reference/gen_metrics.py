"""Goldens for crates/metrics: pixel metrics from scikit-image and CLIP embeddings from transformers.

Writes testdata/metrics/:
  images/*.png           small real photographs (scikit-image's bundled samples, downsized) and
                         synthetic pairs made here with seeded numpy
  resized/*.png          Pillow's resize of two of them with each convolution filter
  pixel_goldens.json     per pair: SSIM, PSNR, mean-abs-diff exactly as upstream's test_utils.py
                         computes them (skimage structural_similarity / peak_signal_noise_ratio,
                         numpy float32 mean of |a - b|)
  tiny-clip/             a tiny random CLIPModel saved with save_pretrained, with the stock
                         ViT-L/14 preprocessor_config.json (shortest edge 224, bicubic, crop 224)
  tiny-clip-vision/      the same vision weights as a CLIPVisionModelWithProjection, with the
                         preprocessor config in the legacy layout of openai/clip-vit-large-patch14
  clip_goldens.safetensors
                         pixel_values per image (CLIPImageProcessor, PIL backend), the model's
                         hidden states and image features for them, and pair similarities
"""

import json
import os
import pathlib
import shutil

import numpy as np
import torch
from PIL import Image
from safetensors.torch import load_file, save_file
from skimage import data as skdata
from skimage.metrics import peak_signal_noise_ratio, structural_similarity
from transformers import (
    CLIPConfig,
    CLIPImageProcessorPil,
    CLIPModel,
    CLIPVisionModelWithProjection,
)

import common

# The legacy preprocessor_config.json of openai/clip-vit-large-patch14 (int size / crop_size,
# feature-extractor era keys): our parser must read this layout as well as the current one.
LEGACY_PREPROCESSOR = {
    "crop_size": 224,
    "do_center_crop": True,
    "do_normalize": True,
    "do_resize": True,
    "feature_extractor_type": "CLIPFeatureExtractor",
    "image_mean": [0.48145466, 0.4578275, 0.40821073],
    "image_std": [0.26862954, 0.26130258, 0.27577711],
    "resample": 3,
    "size": 224,
}


def save_png(img: np.ndarray, path: pathlib.Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    Image.fromarray(img).save(tmp, format="PNG", optimize=False, compress_level=9)
    os.replace(tmp, path)


def resized(img: np.ndarray, w: int, h: int) -> np.ndarray:
    return np.asarray(Image.fromarray(img).resize((w, h), Image.LANCZOS))


def make_images(rng: np.random.Generator) -> dict[str, np.ndarray]:
    astronaut = resized(skdata.astronaut(), 128, 128)
    chelsea = resized(skdata.chelsea(), 301, 241)  # odd, non-square, larger than 224: downscale
    coffee = resized(skdata.coffee(), 150, 100)  # smaller than 224: upscale

    # JPEG at quality 75, as the official GT files are saved (decoded here so the pair is lossless).
    import io

    buf = io.BytesIO()
    Image.fromarray(astronaut).save(buf, format="JPEG", quality=75)
    astronaut_jpeg = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))

    chelsea_noisy = np.clip(chelsea.astype(np.float64) + rng.normal(0, 8, chelsea.shape), 0, 255)
    chelsea_noisy = chelsea_noisy.round().astype(np.uint8)

    coffee_nudged = coffee.copy()
    for y, x, c, d in [(3, 5, 0, 1), (50, 70, 1, -1), (99, 149, 2, 1), (0, 0, 1, 1), (42, 17, 0, -1)]:
        coffee_nudged[y, x, c] = np.clip(int(coffee_nudged[y, x, c]) + d, 0, 255)

    random_a = rng.integers(0, 256, (33, 45, 3), dtype=np.uint8)
    random_b = rng.integers(0, 256, (33, 45, 3), dtype=np.uint8)

    yy, xx = np.mgrid[0:7, 0:9]
    grad = np.stack([yy * 30 + xx * 3, xx * 25, 255 - yy * 20 - xx * 5], axis=-1).astype(np.uint8)
    grad_shifted = np.roll(grad, 1, axis=1)

    flat_a = np.full((16, 16, 3), 50, dtype=np.uint8)
    flat_b = np.full((16, 16, 3), 52, dtype=np.uint8)

    return {
        "astronaut": astronaut,
        "astronaut_jpeg75": astronaut_jpeg,
        "chelsea": chelsea,
        "chelsea_noisy": chelsea_noisy,
        "coffee": coffee,
        "coffee_nudged": coffee_nudged,
        "random_a": random_a,
        "random_b": random_b,
        "gradient_7x9": grad,
        "gradient_7x9_shifted": grad_shifted,
        "flat_50": flat_a,
        "flat_52": flat_b,
    }


# (name, output image, ground-truth image)
PAIRS = [
    ("jpeg_q75", "astronaut_jpeg75", "astronaut"),
    ("gaussian_noise", "chelsea_noisy", "chelsea"),
    ("near_identical", "coffee_nudged", "coffee"),
    ("uniform_random", "random_a", "random_b"),
    ("window_sized_7x9", "gradient_7x9_shifted", "gradient_7x9"),
    ("flat", "flat_52", "flat_50"),
    ("identical", "coffee", "coffee"),
]


def pixel_goldens(images: dict[str, np.ndarray]) -> list[dict]:
    """The three pixel metrics exactly as upstream's test_utils.py calls them."""
    rows = []
    for name, out_name, gt_name in PAIRS:
        out, gt = images[out_name], images[gt_name]
        ssim = structural_similarity(out, gt, channel_axis=2, data_range=255)
        with np.errstate(divide="ignore"):
            psnr = peak_signal_noise_ratio(gt, out, data_range=255)
        mad = np.mean(np.abs(out.astype(np.float32) - gt.astype(np.float32)))
        rows.append(
            {
                "name": name,
                "output": f"images/{out_name}.png",
                "gt": f"images/{gt_name}.png",
                "ssim": float(ssim),
                "psnr": "inf" if np.isinf(psnr) else float(psnr),
                "mean_abs_diff": float(mad),
            }
        )
    return rows


def scale_up(module: torch.nn.Module, gen: torch.Generator) -> None:
    """Re-draw the parameters so that the embedding depends visibly on the image (the default
    initializer_range 0.02 makes every image embed almost alike): weights ~ N(0, 1/fan_in),
    biases and embeddings ~ N(0, 0.1), norm scales ~ 1 + N(0, 0.1)."""
    with torch.no_grad():
        for name, p in module.named_parameters():
            if p.ndim == 0:  # logit_scale: not part of the image tower
                continue
            if ("norm" in name or "layrnorm" in name) and name.endswith("weight"):
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=gen))
            elif p.ndim == 1 or ("embedding" in name and "patch" not in name):
                p.copy_(0.1 * torch.randn(p.shape, generator=gen))
            else:
                fan_in = p[0].numel()
                p.copy_(torch.randn(p.shape, generator=gen) / fan_in**0.5)


def tiny_clip(out: pathlib.Path) -> CLIPModel:
    cfg = CLIPConfig(
        text_config=dict(
            vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
            num_attention_heads=2, max_position_embeddings=16,
        ),
        vision_config=dict(
            hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
            image_size=224, patch_size=32, hidden_act="quick_gelu", layer_norm_eps=1e-5,
        ),
        projection_dim=16,
    )
    model = CLIPModel(cfg).eval()
    scale_up(model, torch.Generator().manual_seed(1234))
    folder = out / "tiny-clip"
    shutil.rmtree(folder, ignore_errors=True)
    model.save_pretrained(folder)
    CLIPImageProcessorPil().save_pretrained(folder)
    return model


def tiny_clip_vision(out: pathlib.Path, full: CLIPModel) -> CLIPVisionModelWithProjection:
    vcfg = full.config.vision_config
    vcfg.projection_dim = full.config.projection_dim
    model = CLIPVisionModelWithProjection(vcfg).eval()
    wanted = model.state_dict().keys()
    state = {k: v for k, v in full.state_dict().items() if k in wanted}
    missing = model.load_state_dict(state, strict=True)
    assert not missing.missing_keys and not missing.unexpected_keys
    folder = out / "tiny-clip-vision"
    shutil.rmtree(folder, ignore_errors=True)
    model.save_pretrained(folder)
    with open(folder / "preprocessor_config.json", "w") as f:
        json.dump(LEGACY_PREPROCESSOR, f, indent=2, sort_keys=True)
        f.write("\n")
    return model


def embed(model, pixel_values: torch.Tensor):
    """Projected image features, unnormalised. Upstream's test_utils takes `image_embeds` when the
    output has it, else `pooler_output` (transformers 5's get_image_features projects that one)."""
    with torch.no_grad():
        if isinstance(model, CLIPModel):
            return model.get_image_features(pixel_values=pixel_values).pooler_output
        return model(pixel_values=pixel_values).image_embeds


def clip_goldens(out: pathlib.Path, images: dict[str, np.ndarray]) -> None:
    full = tiny_clip(out)
    vision = tiny_clip_vision(out, full)
    # Legacy layout must give the same processor as the current one.
    legacy = CLIPImageProcessorPil.from_pretrained(out / "tiny-clip-vision")
    current = CLIPImageProcessorPil.from_pretrained(out / "tiny-clip")

    tensors = {}
    names = ["chelsea", "coffee", "astronaut", "astronaut_jpeg75"]
    embeds = {}
    for name in names:
        pil = Image.fromarray(images[name])  # what upstream does: PIL.Image.fromarray(rgb_uint8)
        pv = current(images=pil, return_tensors="pt")["pixel_values"]
        pv_legacy = legacy(images=pil, return_tensors="pt")["pixel_values"]
        assert torch.equal(pv, pv_legacy), name
        feats = embed(full, pv)
        assert torch.allclose(feats, embed(vision, pv), atol=1e-6), name
        normed = feats / feats.norm(p=2, dim=-1, keepdim=True)
        embeds[name] = normed[0]
        if name in ("chelsea", "coffee"):  # one downscaled, one upscaled; both non-square
            tensors[f"pixel_values.{name}"] = pv
        tensors[f"image_features.{name}"] = feats
        tensors[f"image_embeds.{name}"] = normed

    # Intermediates for one image, to locate a failure inside the tower.
    with torch.no_grad():
        pv = tensors["pixel_values.chelsea"]
        vo = full.vision_model(pixel_values=pv, output_hidden_states=True)
    tensors["vision.hidden_states.0.chelsea"] = vo.hidden_states[0]  # after pre_layrnorm
    tensors["vision.last_hidden_state.chelsea"] = vo.last_hidden_state
    tensors["vision.pooler_output.chelsea"] = vo.pooler_output  # post_layernorm(CLS)

    for a, b in [("chelsea", "coffee"), ("astronaut_jpeg75", "astronaut")]:
        # compute_clip_similarity: float(np.dot(a, b)) on the normalised numpy vectors.
        sim = float(np.dot(embeds[a].numpy(), embeds[b].numpy()))
        tensors[f"similarity.{a}.{b}"] = torch.tensor([sim], dtype=torch.float64)

    common.save_tensors(out / "clip_goldens.safetensors", tensors, {"source": "transformers CLIPModel"})


# PIL filters by their preprocessor_config.json number, and the (source, size) of each resize check:
# one downscale and one upscale, both non-square.
PIL_FILTERS = {1: "lanczos", 2: "bilinear", 3: "bicubic", 4: "box", 5: "hamming"}
RESIZES = [("chelsea", (97, 61)), ("coffee", (173, 121))]


def resize_goldens(folder: pathlib.Path, images: dict[str, np.ndarray]) -> None:
    """Pillow's 8-bit resize with every convolution filter (what CLIPImageProcessorPil calls)."""
    (folder / "resized").mkdir(exist_ok=True)
    for src, (w, h) in RESIZES:
        for code, fname in PIL_FILTERS.items():
            img = Image.fromarray(images[src]).resize((w, h), resample=code)
            save_png(np.asarray(img), folder / "resized" / f"{src}_{fname}_{w}x{h}.png")


def main(out: pathlib.Path) -> None:
    folder = pathlib.Path(out) / "metrics"
    (folder / "images").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(20240607)
    images = make_images(rng)
    for name, img in images.items():
        save_png(img, folder / "images" / f"{name}.png")
    goldens = {
        "source": "skimage.metrics structural_similarity(channel_axis=2, data_range=255), "
        "peak_signal_noise_ratio(gt, out, data_range=255), "
        "np.mean(np.abs(out.astype(float32) - gt.astype(float32)))",
        "pairs": pixel_goldens(images),
    }
    tmp = folder / "pixel_goldens.json.tmp"
    with open(tmp, "w") as f:
        json.dump(goldens, f, indent=2)
        f.write("\n")
    os.replace(tmp, folder / "pixel_goldens.json")
    resize_goldens(folder, images)
    clip_goldens(folder, images)
