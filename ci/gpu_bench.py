#!/usr/bin/env python3
"""GPU parity and speed check: our release binary against PyTorch (diffusers/transformers) in the
same call, on the same card. Driven by ci/gpu-check.sh; also runs on the CPU with `--small` (tiny
configs) so the script itself is tested without a GPU.

Sections (each writes into the report even when it fails, so one run gives every figure):
  tiny   the tiny official pipeline on the device in f32: DiT, VAE and text-encoder goldens and the
         end-to-end cases must pass the CPU tolerances.
  wide   full-width components with random weights made by PyTorch and saved on this machine's disk:
         4 DiT blocks of the released config at 1024² (batch 1; padded batch 2 with a mask), 2 layers
         of the 7B text encoder on a 300-token prompt, the VAE decoder at 1024². bf16 on both sides;
         max/mean relative error and median time of ≥10 runs after warm-up, synchronised.
  randn  torch's CUDA generator: `cargo xtask randn --generator cuda --platform SMSxTHREADS --calls 2`
         against two successive `torch.randn(n, generator=torch.Generator("cuda").manual_seed(s))`
         for n = 12, 262144 (1024² latent), 440896 (1328²), 512000 (5-frame 640² layered latent),
         f32 and bf16; max abs difference and share of bit-equal values; the SM count and threads
         per SM read from the device. Without CUDA (`--small`) only our side runs: "skipped".
  speed  one CFG step (two forwards) of the whole 60-layer DiT at 1024² with random weights made in
         place on each side; median of ≥5 steps after warm-up; peak device memory of each side
         (weights + activations) sampled from cudaMemGetInfo while it runs.
The table is printed last; everything goes to OUT/gpu-report.json.
"""

import argparse
import contextlib
import gc
import json
import os
import pathlib
import statistics
import subprocess
import sys
import threading
import time
import traceback

import torch
from safetensors.torch import load_file, save_file

REPO = pathlib.Path(__file__).resolve().parents[1]
TD = REPO / "testdata"

RELEASED_DIT = dict(patch_size=2, in_channels=64, out_channels=16, num_layers=60, attention_head_dim=128,
                    num_attention_heads=24, joint_attention_dim=3584, guidance_embeds=False,
                    axes_dims_rope=(16, 56, 56))
SMALL_DIT = dict(RELEASED_DIT, attention_head_dim=32, num_attention_heads=2, joint_attention_dim=32,
                 axes_dims_rope=(8, 12, 12))
TEXT_7B = dict(vocab_size=152064, hidden_size=3584, intermediate_size=18944, num_hidden_layers=2,
               num_attention_heads=28, num_key_value_heads=4, rms_norm_eps=1e-6, max_position_embeddings=128000,
               # rope_theta + rope_scaling: accepted by transformers 4.5x and 5.x alike.
               rope_theta=1000000.0, rope_scaling={"type": "mrope", "mrope_section": [16, 24, 24]})
SMALL_TEXT = dict(TEXT_7B, vocab_size=1000, hidden_size=64, intermediate_size=128, num_attention_heads=4,
                  num_key_value_heads=2, rope_scaling={"type": "mrope", "mrope_section": [2, 3, 3]})


def sync(dev):
    if dev.startswith("cuda"):
        torch.cuda.synchronize()


def timed(fn, dev, warmup, runs):
    for _ in range(warmup):
        fn()
    sync(dev)
    ts = []
    for _ in range(runs):
        t = time.perf_counter()
        out = fn()
        sync(dev)
        ts.append(time.perf_counter() - t)
    return out, statistics.median(ts) * 1e3


def rel_err(ours, ref):
    ours, ref = ours.double(), ref.double()
    scale = ref.abs().max().clamp_min(1e-12)
    d = (ours - ref).abs()
    return float(d.max() / scale), float(d.mean() / ref.abs().mean().clamp_min(1e-12))


class Ctx:
    def __init__(self, args):
        self.args = args
        self.out = pathlib.Path(args.out)
        self.work = pathlib.Path(args.work)
        self.work.mkdir(parents=True, exist_ok=True)
        self.rows = []  # (section, item, status, numbers)
        self.meta = {}  # report-level facts read from the device (SM count)

    def xtask(self, *argv, timeout=600):
        cmd = [self.args.xtask, *map(str, argv)]
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=REPO)
        if p.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} exited {p.returncode}:\n{p.stderr[-3000:]}")
        return p

    def row(self, section, item, ok, **numbers):
        """One result. `skipped="why"` marks a row that could not be measured here (not a failure);
        `note` is free text for the table's last column."""
        self.rows.append(dict(section=section, item=item, ok=ok, **numbers))
        state = f"skipped: {numbers['skipped']}" if numbers.get("skipped") else ("ok" if ok else "FAIL")
        print(f"[{section}] {item}: {state} {numbers}", flush=True)


def section_tiny(c: Ctx):
    dev, dt = c.args.rust_device, "f32"
    for name in ["b1_nomask", "b2_mask", "nonsquare"]:
        outp = c.work / f"tiny_dit_{name}.safetensors"
        c.xtask("forward", "dit", "--model", TD / "tiny-qwen-image/transformer", "--inputs",
                TD / f"dit/{name}.safetensors", "--output", outp, "--device", dev, "--dtype", dt)
        mx, mean = rel_err(load_file(str(outp))["sample"], load_file(str(TD / f"dit/{name}.safetensors"))["sample"])
        c.row("tiny", f"dit {name}", mx <= 1e-4, max_rel=mx, mean_rel=mean)
    for name in ["decode_6x10", "decode_8x8_b2"]:
        outp = c.work / f"tiny_vae_{name}.safetensors"
        c.xtask("forward", "vae-decode", "--model", TD / "tiny-qwen-image/vae", "--inputs",
                TD / f"vae/{name}.safetensors", "--output", outp, "--device", dev, "--dtype", dt)
        mx, mean = rel_err(load_file(str(outp))["sample"], load_file(str(TD / f"vae/{name}.safetensors"))["sample"])
        c.row("tiny", f"vae {name}", mx <= 1e-4, max_rel=mx, mean_rel=mean)
    prompts = json.loads((TD / "text-encoder/prompts.json").read_text())["batch"]
    pfile = c.work / "prompts.json"
    pfile.write_text(json.dumps({"prompts": prompts["prompts"]}))
    outp = c.work / "tiny_te.safetensors"
    c.xtask("encode-prompt", "--model", TD / "tiny-qwen-image", "--prompts", pfile, "--output", outp,
            "--device", dev, "--dtype", dt)
    got, want = load_file(str(outp)), load_file(str(TD / "text-encoder/prompt_embeds.safetensors"))
    mx, mean = rel_err(got["prompt_embeds"], want["batch.encoded.prompt_embeds"])
    same_mask = bool(torch.equal(got["prompt_embeds_mask"], want["batch.encoded.prompt_embeds_mask"]))
    c.row("tiny", "text encoder batch", mx <= 1e-4 and same_mask, max_rel=mx, mean_rel=mean)
    p = subprocess.run([c.args.xtask, "consistency", "--device", dev, "--dtype", dt, "--out", c.out / "consistency"],
                       capture_output=True, text=True, cwd=REPO, timeout=600)
    c.row("tiny", "end-to-end cases", p.returncode == 0, exit=p.returncode)
    if p.returncode:
        print(p.stdout[-2000:], p.stderr[-2000:])


RANDN_SIZES = [12, 262_144, 440_896, 512_000]
RANDN_SEED = 42  # SGLang's default seed


def section_randn(c: Ctx):
    cuda = c.args.torch_device.startswith("cuda")
    if cuda:
        p = torch.cuda.get_device_properties(0)
        sm, threads = p.multi_processor_count, p.max_threads_per_multi_processor
        c.meta.update(sm_count=sm, max_threads_per_sm=threads)
    else:
        sm, threads = 132, 2048  # the h100 preset: our side still runs, torch's cannot
    platform = f"{sm}x{threads}"
    for n in RANDN_SIZES:
        for dt, tdt in [("f32", torch.float32), ("bf16", torch.bfloat16)]:
            item = f"cuda randn {n} {dt} x2"
            outp = c.work / f"randn_{n}_{dt}.safetensors"
            c.xtask("randn", "--generator", "cuda", "--seed", RANDN_SEED, "--shape", n, "--dtype", dt,
                    "--calls", 2, "--platform", platform, "--output", outp)
            ours = load_file(str(outp))["sample"]
            if tuple(ours.shape) != (2, n) or ours.dtype != tdt:
                c.row("randn", item, False, error=f"ours is {tuple(ours.shape)} {ours.dtype}")
                continue
            if not cuda:
                c.row("randn", item, True, skipped="no CUDA", note="skipped: no CUDA")
                continue
            g = torch.Generator("cuda").manual_seed(RANDN_SEED)
            ref = torch.stack([torch.randn(n, generator=g, device="cuda", dtype=tdt) for _ in range(2)]).cpu()
            ok, numbers = compare_noise(ours, ref, dt)
            c.row("randn", item, ok, **numbers, sm_count=sm,
                  note=f"max abs {numbers['max_abs']:.1e}, {100 * numbers['bit_equal']:.3f}% bit-equal, {platform}")


def compare_noise(ours, ref, dt):
    """Our `[2, n]` draw against torch's two successive calls: max abs difference (overall and on
    the second call: a wrong philox offset shows there) and the share of bit-equal values."""
    bits = torch.int32 if dt == "f32" else torch.int16
    diff = (ours.double() - ref.double()).abs()
    max_abs, max_abs_2nd = float(diff.max()), float(diff[1].max())
    equal = float((ours.view(bits) == ref.view(bits)).double().mean())
    # f32: a few ulps of curand's fast sincos/log; bf16: equal except at rounding ties, where the
    # two differ by one bf16 ulp (2^-5 for |x| in [4, 8)).
    ok = max_abs <= 1e-5 if dt == "f32" else (max_abs <= 2**-5 and equal >= 0.999)
    return ok, dict(max_abs=max_abs, max_abs_2nd_call=max_abs_2nd, bit_equal=equal)


class PeakMemory:
    """Device-wide used memory sampled every 10 ms from cudaMemGetInfo while a block runs: catches
    another process's peak (our binary) as well as this one's. Caching allocators on both sides keep
    their pools, so the high-water mark stays visible between samples."""

    def __init__(self):
        free, total = torch.cuda.mem_get_info()
        self.base = total - free
        self.peak = self.base
        self._stop = threading.Event()

    def _poll(self):
        while not self._stop.is_set():
            free, total = torch.cuda.mem_get_info()
            self.peak = max(self.peak, total - free)
            time.sleep(0.01)

    def __enter__(self):
        self._t = threading.Thread(target=self._poll, daemon=True)
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()

    @property
    def gib(self):
        return (self.peak - self.base) / 2**30


class made_in:
    """Create modules directly on `dev` in `dtype`: the 60-layer DiT in f32 would not fit an H100."""

    def __init__(self, dev, dtype):
        self.dev, self.dtype = torch.device(dev), dtype

    def __enter__(self):
        self.prev = torch.get_default_dtype()
        torch.set_default_dtype(self.dtype)
        self.dev.__enter__()

    def __exit__(self, *exc):
        self.dev.__exit__(*exc)
        torch.set_default_dtype(self.prev)


def make_dit(cfg, layers, dev, dtype):
    from diffusers import QwenImageTransformer2DModel
    with made_in(dev, dtype):
        m = QwenImageTransformer2DModel(**dict(cfg, num_layers=layers))
    return m.to(dtype).eval()


def section_wide(c: Ctx):
    dev, dtype = c.args.torch_device, c.args.torch_dtype
    small = c.args.small
    cfg = SMALL_DIT if small else RELEASED_DIT
    side = 8 if small else 64  # latent tokens per side: 64 → 1024² image
    torch.manual_seed(0)
    m = make_dit(cfg, 4, dev, dtype)
    ddir = c.work / "dit4"
    m.save_pretrained(str(ddir), safe_serialization=True)
    D = cfg["joint_attention_dim"]
    for name, b, lens in [("b1", 1, [64]), ("b2_mask", 2, [64, 40])]:
        L = max(lens)
        hs = torch.randn(b, side * side, 64, device=dev, dtype=dtype)
        ehs = torch.randn(b, L, D, device=dev, dtype=dtype)
        mask = torch.zeros(b, L, dtype=torch.int64, device=dev)
        for i, n in enumerate(lens):
            mask[i, :n] = 1
        t = torch.full((b,), 0.5, device=dev, dtype=dtype)
        shapes = [[(1, side, side)]] * b
        kw = dict(hidden_states=hs, encoder_hidden_states=ehs, timestep=t, img_shapes=shapes, return_dict=False)
        if b > 1:
            kw["encoder_hidden_states_mask"] = mask
        with torch.no_grad():
            ref, ms_torch = timed(lambda: m(**kw)[0], dev, 3, c.args.runs)
        inp = c.work / f"wide_dit_{name}_in.safetensors"
        tensors = dict(hidden_states=hs.float().cpu(), encoder_hidden_states=ehs.float().cpu(), timestep=t.float().cpu(),
                       img_shapes=torch.tensor([[1, side, side]] * b, dtype=torch.int64))
        if b > 1:
            tensors["encoder_hidden_states_mask"] = mask.cpu()
        save_file(tensors, str(inp))
        outp, tim = c.work / f"wide_dit_{name}_out.safetensors", c.work / f"wide_dit_{name}_t.json"
        c.xtask("forward", "dit", "--model", ddir, "--inputs", inp, "--output", outp, "--device", c.args.rust_device,
                "--dtype", c.args.rust_dtype, "--repeat", c.args.runs, "--warmup", 3, "--timings", tim)
        ms_ours = json.loads(tim.read_text())["median_ms"]
        mx, mean = rel_err(load_file(str(outp))["sample"], ref.float().cpu())
        c.row("wide", f"dit 4 blocks {name}", mean <= c.args.tol, max_rel=mx, mean_rel=mean, torch_ms=ms_torch,
              ours_ms=ms_ours, ratio=ms_ours / ms_torch)
    del m
    # Text encoder: 2 layers of the 7B config, 300 tokens.
    from transformers import Qwen2_5_VLTextConfig, Qwen2_5_VLTextModel
    tcfg = SMALL_TEXT if small else TEXT_7B
    with made_in(dev, dtype):
        te = Qwen2_5_VLTextModel(Qwen2_5_VLTextConfig(**tcfg)).to(dtype).eval()
    tdir = c.work / "te2"
    tdir.mkdir(exist_ok=True)
    save_file({f"model.{k}": v.contiguous().cpu() for k, v in te.state_dict().items()}, str(tdir / "model.safetensors"))
    (tdir / "config.json").write_text(json.dumps(dict(tcfg, model_type="qwen2_5_vl_text", hidden_act="silu")))
    ids = torch.randint(0, tcfg["vocab_size"], (1, 300), device=dev)
    am = torch.ones_like(ids)
    with torch.no_grad():
        ref, ms_torch = timed(lambda: te(input_ids=ids, attention_mask=am).last_hidden_state, dev, 3, c.args.runs)
    inp = c.work / "wide_te_in.safetensors"
    save_file(dict(input_ids=ids.cpu(), attention_mask=am.cpu()), str(inp))
    outp, tim = c.work / "wide_te_out.safetensors", c.work / "wide_te_t.json"
    c.xtask("forward", "text-encoder", "--model", tdir, "--inputs", inp, "--output", outp, "--device",
            c.args.rust_device, "--dtype", c.args.rust_dtype, "--repeat", c.args.runs, "--warmup", 3, "--timings", tim)
    ms_ours = json.loads(tim.read_text())["median_ms"]
    mx, mean = rel_err(load_file(str(outp))["last_hidden_state"], ref.float().cpu())
    c.row("wide", "text encoder 2 layers 300 tok", mean <= c.args.tol, max_rel=mx, mean_rel=mean, torch_ms=ms_torch,
          ours_ms=ms_ours, ratio=ms_ours / ms_torch)
    del te
    # VAE decoder at 1024².
    from diffusers import AutoencoderKLQwenImage
    with made_in(dev, dtype):
        vae = (AutoencoderKLQwenImage(base_dim=8) if small else AutoencoderKLQwenImage()).to(dtype).eval()
    vdir = c.work / "vae"
    vae.save_pretrained(str(vdir), safe_serialization=True)
    hw = 16 if small else 128
    z = torch.randn(1, 16, 1, hw, hw, device=dev, dtype=dtype)
    with torch.no_grad():
        ref, ms_torch = timed(lambda: vae.decode(z, return_dict=False)[0], dev, 2, c.args.runs)
    inp = c.work / "wide_vae_in.safetensors"
    save_file(dict(latents=z.float().cpu()), str(inp))
    outp, tim = c.work / "wide_vae_out.safetensors", c.work / "wide_vae_t.json"
    c.xtask("forward", "vae-decode", "--model", vdir, "--inputs", inp, "--output", outp, "--device",
            c.args.rust_device, "--dtype", c.args.rust_dtype, "--repeat", c.args.runs, "--warmup", 2, "--timings", tim)
    ms_ours = json.loads(tim.read_text())["median_ms"]
    mx, mean = rel_err(load_file(str(outp))["sample"], ref.float().cpu())
    c.row("wide", f"vae decode {hw * 8}²", mean <= c.args.tol, max_rel=mx, mean_rel=mean, torch_ms=ms_torch,
          ours_ms=ms_ours, ratio=ms_ours / ms_torch)


def section_speed(c: Ctx):
    dev, dtype = c.args.torch_device, c.args.torch_dtype
    cuda = dev.startswith("cuda")
    cfg = SMALL_DIT if c.args.small else RELEASED_DIT
    side, L = (8, 20) if c.args.small else (64, 100)
    layers = 2 if c.args.small else 60
    if cuda:
        gc.collect()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    with PeakMemory() if cuda else contextlib.nullcontext() as torch_mem:
        m = make_dit(cfg, layers, dev, dtype)
        hs = torch.randn(1, side * side, 64, device=dev, dtype=dtype)
        cond = torch.randn(1, L, cfg["joint_attention_dim"], device=dev, dtype=dtype)
        unc = torch.randn(1, L, cfg["joint_attention_dim"], device=dev, dtype=dtype)
        t = torch.full((1,), 0.5, device=dev, dtype=dtype)

        def step():
            kw = dict(hidden_states=hs, timestep=t, img_shapes=[[(1, side, side)]], return_dict=False)
            a = m(encoder_hidden_states=cond, **kw)[0]
            b = m(encoder_hidden_states=unc, **kw)[0]
            return a + b

        with torch.no_grad():
            _, ms_torch = timed(step, dev, 2, c.args.steps)
    del m, step
    gc.collect()
    if cuda:
        torch_alloc_gib = torch.cuda.max_memory_allocated() / 2**30
        torch.cuda.empty_cache()
    cfgfile = c.work / "dit_config.json"
    cfgfile.write_text(json.dumps(dict(cfg, num_layers=layers, axes_dims_rope=list(cfg["axes_dims_rope"]))))
    tim = c.work / "speed_t.json"
    with PeakMemory() if cuda else contextlib.nullcontext() as ours_mem:
        c.xtask("bench", "dit-step", "--config", cfgfile, "--height", side * 16, "--width", side * 16, "--txt-len",
                L, "--steps", c.args.steps, "--warmup", 2, "--device", c.args.rust_device, "--dtype",
                c.args.rust_dtype, "--timings", tim, timeout=900)
    ms_ours = json.loads(tim.read_text())["median_ms"]
    c.row("speed", f"DiT {layers} layers CFG step {side * 16}²", True, torch_ms=ms_torch, ours_ms=ms_ours,
          ratio=ms_ours / ms_torch, goal_ms=225.0 if not c.args.small else None)
    item = f"peak mem, DiT {layers}L CFG step {side * 16}²"
    if not cuda:
        c.row("memory", item, True, skipped="no CUDA", note="skipped: no CUDA")
        return
    # Weights + activations of the step, device-wide, above what was in use before each side started
    # (torch's own CUDA context is in its baseline; ours starts a context of its own, ~0.5 GiB).
    c.row("memory", item, True, torch_gib=torch_mem.gib, torch_allocated_gib=torch_alloc_gib, ours_gib=ours_mem.gib,
          mem_ratio=ours_mem.gib / torch_mem.gib,
          note=f"ours {ours_mem.gib:.1f} GiB / torch {torch_mem.gib:.1f} GiB (allocated {torch_alloc_gib:.1f})")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--xtask", required=True, help="our release binary")
    ap.add_argument("--out", required=True)
    ap.add_argument("--work", default=None, help="scratch folder for weights (default OUT/../gpu-work)")
    ap.add_argument("--small", action="store_true", help="tiny configs on the CPU: checks the script itself")
    ap.add_argument("--sections", nargs="*", default=["tiny", "randn", "wide", "speed"])
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--steps", type=int, default=5)
    args = ap.parse_args()
    args.work = args.work or str(pathlib.Path(args.out).parent / "gpu-work")
    cuda = torch.cuda.is_available() and not args.small
    args.torch_device = "cuda" if cuda else "cpu"
    args.torch_dtype = torch.bfloat16 if cuda else torch.float32
    args.rust_device = "cuda" if cuda else "cpu"
    args.rust_dtype = "bf16" if cuda else "f32"
    args.tol = 2e-2 if cuda else 1e-4  # bf16 vs bf16 (mean relative error) / f32 on the CPU
    pathlib.Path(args.out).mkdir(parents=True, exist_ok=True)
    c = Ctx(args)
    card = torch.cuda.get_device_name(0) if cuda else "cpu"
    for name in args.sections:
        try:
            {"tiny": section_tiny, "randn": section_randn, "wide": section_wide, "speed": section_speed}[name](c)
        except Exception as e:  # keep going: one run must give every figure it can
            traceback.print_exc()
            c.row(name, "section error", False, error=str(e)[:500])
    report = dict(card=card, date=time.strftime("%Y-%m-%d"), torch=torch.__version__, **c.meta, rows=c.rows)
    (pathlib.Path(args.out) / "gpu-report.json").write_text(json.dumps(report, indent=2))
    sms = f", {c.meta['sm_count']} SMs x {c.meta['max_threads_per_sm']} threads" if c.meta else ""
    print(f"\n== GPU check on {card}{sms} ==")
    print(f"{'section':<7} {'item':<34} {'ok':<4} {'max rel':>9} {'mean rel':>9} {'torch ms':>9} {'ours ms':>9} "
          f"{'ratio':>6}  note")
    for r in c.rows:
        f = lambda k, fmt: (fmt % r[k]) if r.get(k) is not None else "-"
        state = "skip" if r.get("skipped") else ("ok" if r["ok"] else "FAIL")
        print(f"{r['section']:<7} {r['item']:<34} {state:<4} {f('max_rel', '%.2e'):>9} "
              f"{f('mean_rel', '%.2e'):>9} {f('torch_ms', '%.1f'):>9} {f('ours_ms', '%.1f'):>9} {f('ratio', '%.2f'):>6}"
              f"  {r.get('note') or r.get('error', '')[:60]}")
    return 0 if all(r["ok"] for r in c.rows) else 1


if __name__ == "__main__":
    sys.exit(main())
