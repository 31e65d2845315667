"""Goldens for crates/torch-rng: `torch.randn` on a seeded CPU generator and diffusers' `randn_tensor`.

Everything is produced by torch itself (and diffusers' own `randn_tensor`), stored in its native dtype
(f32 / bf16 / f64) so that the Rust test compares raw bits. For the 2^18-element draws only a sha256 of
the raw little-endian bytes plus three 256-value windows are kept (the hash still fails on any bit; the
windows say where). Which torch build produced them is written into every file's metadata, because
the x86-64 AVX2 kernel, the aarch64/macOS generic kernel and pre-2.15 bf16 all give different bits.
"""

import hashlib
import json
import pathlib
import platform

import torch
from common import save_tensors
from diffusers.utils.torch_utils import randn_tensor

DTYPES = {"f32": torch.float32, "bf16": torch.bfloat16, "f64": torch.float64}
# Seeds >= 2^32 check that only the low 32 bits seed MT19937 (2^32 + 7 is the stream of 7).
SMALL_SEEDS = [0, 42, 2**32 + 7, 2**64 - 1]
SMALL_NS = [1, 2, 7, 15, 16, 17, 31, 1000, 4097]
LARGE_SEEDS = [0, 2**32 + 42]
LARGE_NS = [262144, 262147]
WINDOW = 256


def _gen(seed: int) -> torch.Generator:
    return torch.Generator(device="cpu").manual_seed(seed)


def _sha256(t: torch.Tensor) -> bytes:
    # Raw bits: view as same-width integers so bf16 needs no numpy support.
    width = {torch.float32: torch.int32, torch.bfloat16: torch.int16, torch.float64: torch.int64}[t.dtype]
    return hashlib.sha256(t.contiguous().view(width).numpy().tobytes()).digest()


def _meta(**extra) -> dict:
    # One metadata key: safetensors writes its metadata map in hash order, so several keys would make
    # reruns differ byte-wise.
    info = {
        "torch": torch.__version__,
        "machine": platform.machine(),
        "system": platform.system(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        **extra,
    }
    return {"provenance": json.dumps(info, sort_keys=True)}


def _large_entry(tensors: dict, name: str, t: torch.Tensor) -> None:
    n = t.numel()
    mid = n // 2
    tensors[f"{name}.head"] = t[:WINDOW].clone()
    tensors[f"{name}.mid"] = t[mid : mid + WINDOW].clone()
    tensors[f"{name}.tail"] = t[n - WINDOW :].clone()
    # The digest's 32 bytes as a tensor (stored as i64 by save_tensors).
    tensors[f"{name}.sha256"] = torch.tensor(list(_sha256(t)), dtype=torch.int64)


def randn_small(out: pathlib.Path) -> None:
    tensors = {}
    for seed in SMALL_SEEDS:
        for n in SMALL_NS:
            for dname, dtype in DTYPES.items():
                tensors[f"seed{seed}_n{n}_{dname}"] = torch.randn(n, generator=_gen(seed), dtype=dtype)
    save_tensors(out / "randn.safetensors", tensors, _meta())


def randn_large(out: pathlib.Path) -> None:
    tensors = {}
    for seed in LARGE_SEEDS:
        for n in LARGE_NS:
            for dname, dtype in DTYPES.items():
                t = torch.randn(n, generator=_gen(seed), dtype=dtype)
                _large_entry(tensors, f"seed{seed}_n{n}_{dname}", t)
    save_tensors(out / "randn_large.safetensors", tensors, _meta(window=WINDOW))


# Consecutive calls on one generator: (n, dtype) per call. Calls with n < 16 go through
# normal_distribution<double>, which caches the second Box-Muller value in the generator; calls with
# n >= 16 neither use nor clear that cache, so the order below exercises every hand-over.
SEQUENCES = {
    "odd_scalar_calls": (5, [(1, "f32"), (1, "f32"), (3, "f32"), (2, "f32"), (1, "f32")]),
    "mixed_sizes": (1234, [(3, "f32"), (20, "f32"), (1, "f32"), (16, "f32"), (5, "f32"), (17, "f32"), (2, "f32")]),
    "mixed_dtypes": (2**32 + 99, [(3, "f32"), (1, "f64"), (33, "bf16"), (1, "bf16"), (17, "f64"), (7, "f64"), (1, "f32")]),
}


def sequences(out: pathlib.Path) -> None:
    tensors = {}
    for name, (seed, calls) in SEQUENCES.items():
        g = _gen(seed)
        for i, (n, dname) in enumerate(calls):
            tensors[f"{name}_seed{seed}.{i}_n{n}_{dname}"] = torch.randn(n, generator=g, dtype=DTYPES[dname])
    # manual_seed clears the cached value: a draw after reseeding equals a fresh generator's.
    g = _gen(11)
    torch.randn(1, generator=g)
    g.manual_seed(11)
    tensors["reseed_seed11.after_manual_seed_n1_f32"] = torch.randn(1, generator=g)
    save_tensors(out / "sequences.safetensors", tensors, _meta(sequences=SEQUENCES))


def diffusers_randn_tensor(out: pathlib.Path) -> None:
    tensors = {}
    # Qwen-Image 1024x1024 latent, drawn as the pipeline draws it: one CPU generator, final dtype.
    latent = (1, 1, 16, 128, 128)
    t = randn_tensor(latent, generator=_gen(42), device=torch.device("cpu"), dtype=torch.bfloat16)
    tensors["qwen_latent_seed42_bf16"] = t.reshape(-1)
    t = randn_tensor(latent, generator=_gen(42), device=torch.device("cpu"), dtype=torch.float32)
    _large_entry(tensors, "qwen_latent_seed42_f32", t.reshape(-1))
    # A list of generators: one torch.randn of shape (1, ...) per batch item, concatenated.
    small = (2, 1, 16, 8, 8)
    for dname in ("f32", "bf16"):
        t = randn_tensor(small, generator=[_gen(0), _gen(1)], device=torch.device("cpu"), dtype=DTYPES[dname])
        tensors[f"batch2_gens_0_1_{dname}"] = t.reshape(-1)
        t = randn_tensor(small, generator=_gen(0), device=torch.device("cpu"), dtype=DTYPES[dname])
        tensors[f"batch2_one_gen_0_{dname}"] = t.reshape(-1)
    # Per-item numel < 16: each generator goes through the scalar path.
    t = randn_tensor((3, 5), generator=[_gen(3), _gen(4), _gen(5)], device=torch.device("cpu"), dtype=torch.float32)
    tensors["batch3_gens_3_4_5_shape3x5_f32"] = t.reshape(-1)
    save_tensors(out / "randn_tensor.safetensors", tensors, _meta(window=WINDOW))


def main(out: pathlib.Path) -> None:
    folder = pathlib.Path(out) / "torch-rng"
    randn_small(folder)
    randn_large(folder)
    sequences(folder)
    diffusers_randn_tensor(folder)
