"""Goldens for the Qwen-Image-Layered auto-caption (crates/text-encoder `Captioner`), testdata/caption/.

Official code only: diffusers 0.42.1 `QwenImageLayeredPipeline.__call__` with an empty prompt, which
resizes the RGBA input to the resolution bucket (`calculate_dimensions(res², w / h)`, Lanczos) and
calls `get_image_caption(prompt_image, use_en_prompt)`: `Qwen2VLProcessor(text=<caption prompt>,
images=<the resized RGBA image>, padding=True)` (whose `convert_to_rgb` composites the alpha onto
white), `text_encoder.generate(**inputs, max_new_tokens=512)` with the text encoder's own
`generation_config.json`, `batch_decode(skip_special_tokens=True, clean_up_tokenization_spaces=False)`
of the new ids, `strip()`. The pipeline is called for real; only `transformer`, `vae` and `scheduler`
are absent (the caption is computed before they are reached, and the call is stopped right after it).

What `generate` does here (transformers 5.24.0): the processor returns `mm_token_type_ids`, so the
prompt gets Qwen2.5-VL's 3-D M-RoPE positions and the decode steps continue from the last one + 1 on
every axis (`rope_deltas`); diffusers passes no sampling arguments, so the generation config of the
checkpoint decides. The released Qwen2.5-VL-7B-Instruct one (the text encoder Qwen-Image ships) has
`do_sample: true` with `top_k: 1`, `top_p: 0.001`, `temperature: 0.1`, `repetition_penalty: 1.05`,
`eos_token_id: [151645, 151643]`: one candidate survives top-k, so the draw is deterministic — the
argmax of the repetition-penalised logits (every id of the prompt and of the text so far: positive
logits / 1.05, negative ones × 1.05). Both tiny folders carry that generation config.

Tiny text encoders (`Qwen2_5_VLForConditionalGeneration`, bf16 as released, run in f32):
  tiny-layered-tied/    the tiny pipeline's text encoder (hidden 32, GQA 2/1, tied `lm_head`):
                        `text_encoder/model.safetensors` and `config.json` are links to
                        ../tiny-qwen-image/text_encoder/; `generation_config.json` is the released one.
  tiny-layered-untied/  its own model: hidden 12, GQA 2/1, head_dim 6, mrope_section [1, 1, 1],
                        untied `lm_head.weight`. Its `<|im_end|>` row of `lm_head` is set (searched
                        here) so that greedy decoding ends on eos after more than 10 tokens for both
                        caption prompts.
  Both folders: `model_index.json` (`QwenImageLayeredPipeline` with `save_pretrained`'s null entries
  for the absent components), `processor/` (preprocessor_config.json with the Qwen2.5-VL values, the
  tiny tokenizer's tokenizer_config.json, vocab.json / merges.txt linked) and `tokenizer` (a link).

Writes testdata/caption/:
  image_rgba.png   the input (RGBA 97×61, alpha from 0 to 255, seeded noise).
  caption.safetensors, per case `<case>.`:
      `input_ids` [1, L] i64, `image_grid_thw` [1, 3] i64   what the processor gave `generate`
      `pixel_values.row_sums` [N] f64, `pixel_values.col_sums` [1176] f64   sums of `pixel_values`
                     (the full tensor is 10 MB; testdata/vision checks the processor value by value)
      `position_ids` [3, 1, L] i64    the prefill's M-RoPE positions (the language model's input)
      `decode_positions` [3, S] i64   the positions of the decode steps' single tokens
      `generated_ids` [S] i64         the new ids, eos included when it ended the text
      `logits.{k}.ids` [32] i64, `logits.{k}.values` [32] f32   the raw (unpenalised) `lm_head`
                     logits of step k (0 = the prefill) at their 32 largest ids, for the first 3 steps
                     and the last one (`logits_steps` in the info says which)
  cases.json:      per case the folder, language, resolution, `max_new_tokens`, any generate
                   overrides, prompt image size, token counts, generated ids, the caption, why it
                   stopped; the two caption prompts; `decode_checks` (ids → `batch_decode` text with
                   special tokens skipped, and that text stripped) on hand-picked ids.
Cases: `untied_en` / `untied_zh` (the pipeline call as is: max_new_tokens 512, ends on eos),
`tied_zh_cap` (max_new_tokens 17: the cap), `tied_en_greedy` (max_new_tokens 13, `do_sample=False,
repetition_penalty=1.0`: plain greedy, which differs from the penalised ids: `penalised_ids` in its info).
"""

import json
import math
import os
import pathlib
import shutil

import numpy as np
import torch
from diffusers import QwenImageLayeredPipeline
from PIL import Image
from transformers import (
    GenerationConfig,
    Qwen2_5_VLConfig,
    Qwen2_5_VLForConditionalGeneration,
    Qwen2Tokenizer,
    Qwen2VLProcessor,
)

import common
from gen_tiny_pipeline import scale_up

OUT_DIR = "caption"
TIED = "tiny-layered-tied"
UNTIED = "tiny-layered-untied"
EOS = 151645
RESOLUTION = 640

# Qwen2.5-VL-7B-Instruct's generation_config.json (the text encoder of the Qwen-Image releases).
GENERATION_CONFIG = {
    "bos_token_id": 151643,
    "pad_token_id": 151643,
    "do_sample": True,
    "eos_token_id": [151645, 151643],
    "repetition_penalty": 1.05,
    "temperature": 0.1,
    "top_p": 0.001,
    "top_k": 1,
}

# The released processor/preprocessor_config.json values (Qwen2.5-VL-7B-Instruct), released layout.
PREPROCESSOR_CONFIG = {
    "min_pixels": 3136,
    "max_pixels": 12845056,
    "patch_size": 14,
    "temporal_patch_size": 2,
    "merge_size": 2,
    "image_mean": [0.48145466, 0.4578275, 0.40821073],
    "image_std": [0.26862954, 0.26130258, 0.27577711],
    "image_processor_type": "Qwen2VLImageProcessor",
    "processor_class": "Qwen2VLProcessor",
}

UNTIED_TEXT = dict(
    vocab_size=151680, hidden_size=12, intermediate_size=20, num_hidden_layers=2,
    num_attention_heads=2, num_key_value_heads=1, hidden_act="silu", max_position_embeddings=4096,
    rms_norm_eps=1e-6, use_sliding_window=False,
    rope_parameters={"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": [1, 1, 1]},
    tie_word_embeddings=False, bos_token_id=151643, eos_token_id=151645,
)
UNTIED_VISION = dict(
    depth=1, hidden_size=16, intermediate_size=32, num_heads=2, out_hidden_size=12,
    fullatt_block_indexes=[0], patch_size=14, spatial_merge_size=2, temporal_patch_size=2,
)

# name, folder, use_en_prompt, generate overrides (None: the pipeline's call untouched)
CASES = [
    ("untied_en", UNTIED, True, None),
    ("untied_zh", UNTIED, False, None),
    ("tied_zh_cap", TIED, False, {"max_new_tokens": 17}),
    ("tied_en_greedy", TIED, True, {"max_new_tokens": 13, "do_sample": False, "repetition_penalty": 1.0}),
]
LOGIT_TOP = 32


def write_image(dst: pathlib.Path) -> None:
    """RGBA 97×61: colour gradients with seeded noise, alpha from fully transparent to opaque."""
    rng = np.random.default_rng(20261127)
    h, w = 61, 97
    y, x = np.mgrid[0:h, 0:w]
    rgb = np.stack([x * 255 // (w - 1), y * 255 // (h - 1), ((x * 3 + y * 5) * 4) % 256], -1)
    rgb = np.clip(rgb + rng.integers(-30, 31, size=(h, w, 3)), 0, 255)
    alpha = np.clip((x - 10) * 255 // (w - 30), 0, 255)
    alpha[:, : w // 6] = 0
    alpha[h // 2 :, w - 12 :] = 255
    img = np.concatenate([rgb, alpha[..., None]], -1).astype(np.uint8)
    Image.fromarray(img, "RGBA").save(dst / "image_rgba.png")


def link(target: str, at: pathlib.Path) -> None:
    if at.is_symlink() or at.is_file():
        at.unlink()
    elif at.exists():
        shutil.rmtree(at)
    os.symlink(target, at)


def write_processor(dst: pathlib.Path, out: pathlib.Path) -> None:
    """processor/ in the released layout; tokenizer files from the tiny pipeline's tokenizer."""
    dst.mkdir(parents=True)
    (dst / "preprocessor_config.json").write_text(json.dumps(PREPROCESSOR_CONFIG, indent=2) + "\n")
    shutil.copyfile(common.tiny_pipeline_dir(out) / "tokenizer" / "tokenizer_config.json",
                    dst / "tokenizer_config.json")
    for name in ("vocab.json", "merges.txt"):
        link(f"../../../{common.TINY_PIPELINE}/tokenizer/{name}", dst / name)


def write_generation_config(te_dir: pathlib.Path) -> None:
    cfg = GenerationConfig(**GENERATION_CONFIG)
    cfg.save_pretrained(str(te_dir))


def write_folder(out: pathlib.Path, name: str, text_encoder=None) -> pathlib.Path:
    """A Layered-style pipeline folder holding what captioning reads. `text_encoder=None`: the tiny
    pipeline's (tied) text encoder, by links."""
    root = out / OUT_DIR / name
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    te_dir = root / "text_encoder"
    if text_encoder is None:
        te_dir.mkdir()
        for f in ("config.json", "model.safetensors"):
            link(f"../../../{common.TINY_PIPELINE}/text_encoder/{f}", te_dir / f)
    else:
        text_encoder.save_pretrained(str(te_dir), safe_serialization=True)
    (te_dir / "generation_config.json").unlink(missing_ok=True)
    write_generation_config(te_dir)
    link(f"../../{common.TINY_PIPELINE}/tokenizer", root / "tokenizer")
    write_processor(root / "processor", out)
    pipe = load_pipeline(root)
    scratch = out / OUT_DIR / f".{name}.scratch"
    if scratch.exists():
        shutil.rmtree(scratch)
    pipe.save_pretrained(str(scratch), safe_serialization=True)
    index = json.loads((scratch / "model_index.json").read_text())
    shutil.rmtree(scratch)
    assert index["_class_name"] == "QwenImageLayeredPipeline", index
    (root / "model_index.json").write_text(json.dumps(index, indent=2, sort_keys=True) + "\n")
    for f in root.rglob("README.md"):
        f.unlink()
    return root


def load_pipeline(root: pathlib.Path) -> QwenImageLayeredPipeline:
    """The pipeline with what captioning uses, loaded from the folder in f32."""
    te = Qwen2_5_VLForConditionalGeneration.from_pretrained(str(root / "text_encoder"), dtype=torch.float32)
    te.eval()
    tokenizer = Qwen2Tokenizer.from_pretrained(str(root / "tokenizer"))
    processor = Qwen2VLProcessor.from_pretrained(str(root / "processor"))
    return QwenImageLayeredPipeline(scheduler=None, vae=None, text_encoder=te, tokenizer=tokenizer,
                                    processor=processor, transformer=None)


class _Captioned(Exception):
    pass


def caption_via_call(pipe, image, use_en_prompt: bool, overrides: dict | None) -> dict:
    """`pipe(image, prompt="")` up to its caption; `generate`'s kwargs updated with `overrides`.
    Records the processor outputs, the language model's position ids per call, the raw logits of
    every step, the returned sequences and the caption."""
    te = pipe.text_encoder
    seen = {"positions": [], "logits": [], "lm_inputs": []}
    orig_generate = te.generate
    orig_caption = pipe.get_image_caption

    def generate(**kw):
        kw.update(overrides or {})
        seen["inputs"] = {k: v.detach().clone() for k, v in kw.items() if isinstance(v, torch.Tensor)}
        seen["max_new_tokens"] = kw["max_new_tokens"]
        out = orig_generate(**kw)
        seen["sequences"] = out.detach().clone()
        return out

    def get_image_caption(prompt_image, use_en_prompt=True, device=None):
        seen["prompt_image"] = prompt_image
        seen["caption"] = orig_caption(prompt_image, use_en_prompt=use_en_prompt, device=device)
        raise _Captioned

    def lm_hook(_m, _args, kwargs):
        seen["positions"].append(kwargs["position_ids"].detach().clone())

    def head_pre_hook(_m, args):
        seen["lm_inputs"].append(args[0][0, -1].detach().clone())

    def head_hook(_m, _args, output):
        seen["logits"].append(output[0, -1].detach().float().clone())

    te.generate = generate
    pipe.get_image_caption = get_image_caption
    handles = [te.model.language_model.register_forward_pre_hook(lm_hook, with_kwargs=True),
               te.lm_head.register_forward_pre_hook(head_pre_hook),
               te.lm_head.register_forward_hook(head_hook)]
    te.model.rope_deltas = None
    try:
        with torch.no_grad():
            pipe(image=image, prompt="", resolution=RESOLUTION, use_en_prompt=use_en_prompt)
        raise AssertionError("the pipeline did not caption an empty prompt")
    except _Captioned:
        pass
    finally:
        del te.generate
        del pipe.get_image_caption
        for h in handles:
            h.remove()
    return seen


def penalised_greedy(seen: dict, penalty: float, eos: list[int]) -> list[int]:
    """The ids a greedy decoder with transformers' repetition penalty picks from the recorded raw
    logits (a check of the reading of `generate` documented above)."""
    ids = seen["inputs"]["input_ids"][0].tolist()
    out = []
    for logits in seen["logits"]:
        scores = logits.clone()
        if penalty != 1.0:
            idx = torch.tensor(sorted(set(ids + out)))
            s = scores[idx]
            scores[idx] = torch.where(s < 0, s * penalty, s / penalty)
        tok = int(torch.argmax(scores))
        out.append(tok)
        if tok in eos:
            break
    return out


def tune_eos_rows(pipe, image) -> dict:
    """Set the `lm_head` rows of the two eos ids so that the English caption ends on `<|im_end|>`
    and the Chinese one on `<|endoftext|>` (the second id of the list), each after more than 10 new
    tokens. With both rows at zero the trajectories are recorded (final hidden state h_t and the
    best other penalised logit m_t per step); a row w then wins step t exactly when its penalised
    logit pen(<h_t, w>) exceeds m_t (`<|im_end|>` is in the prompt, so it is always penalised;
    `<|endoftext|>` is not), and before an eos wins the rows change nothing. Each row is a step's
    final hidden state's deviation from the mean state, scaled by the first factor that works."""
    head = pipe.text_encoder.lm_head.weight
    eos_ids = GENERATION_CONFIG["eos_token_id"]
    with torch.no_grad():
        for e in eos_ids:
            head[e].zero_()
    runs = []
    for en in (True, False):
        seen = caption_via_call(pipe, image, en, {"max_new_tokens": 120})
        ids = seen["inputs"]["input_ids"][0].tolist()
        gen = seen["sequences"][0, len(ids):].tolist()
        assert not set(gen) & set(eos_ids) and len(gen) == 120
        m = []
        for k, logits in enumerate(seen["logits"]):
            s = logits.clone()
            idx = torch.tensor(sorted(set(ids + gen[:k])))
            v = s[idx]
            s[idx] = torch.where(v < 0, v * 1.05, v / 1.05)
            s[eos_ids] = -math.inf
            m.append(float(s.max()))
        runs.append((torch.stack(seen["lm_inputs"]).double(), np.asarray(m), set(ids)))

    def stop(run, rows: dict):
        """(step, eos id) at which the run ends with these eos rows, or None."""
        h, m, prompt = run
        best = None
        for e, w in rows.items():
            logit = (h @ w).numpy()
            if e in prompt:
                logit = np.where(logit < 0, logit * 1.05, logit / 1.05)
            wins = np.nonzero(logit > m)[0]
            if len(wins) and (best is None or wins[0] < best[0]):
                best = (int(wins[0]), e)
        return best

    def robust(rows: dict, want: list) -> bool:
        """Every run ends as wanted, also with each row scaled by 1.02 or 1 / 1.02 (so the bf16
        rounding of the rows cannot matter)."""
        for f in (1.0, 1.02, 1 / 1.02):
            for e in rows:
                scaled = {k: (w * f if k == e else w) for k, w in rows.items()}
                if [stop(r, scaled) for r in runs] != want:
                    return False
        return True

    # The final hidden states share a large common part (cosines of 0.8 to 0.99 between steps); a
    # row along one step's deviation from the mean is selective enough to win at that step only.
    mean = torch.cat([r[0] for r in runs]).mean(0)

    def search(run_i: int, e: int, fixed: dict, keep=None):
        """The first step t (from 12) whose row ends run `run_i` on `e` after 10..80 new tokens
        for a range of scales; the scale taken is the range's geometric middle."""
        h = runs[run_i][0]
        for t in range(12, 60):
            v = (h[t] - mean) / (h[t] - mean).norm()
            ok = []
            for alpha in np.geomspace(0.2, 50, 600):
                rows = {**fixed, e: v * alpha}
                got = [stop(r, rows) for r in runs]
                good = (got[run_i] is not None and got[run_i][1] == e and 10 <= got[run_i][0] <= 80
                        and (keep is None or got[0] == keep)
                        and (run_i != 0 or got[1] is None or got[1][0] > 100))
                if good and (not ok or ok[-1][1] == got):
                    ok.append((alpha, got))
                elif ok:
                    break
            if len(ok) >= 2 and ok[-1][0] / ok[0][0] >= 1.1:
                alpha = math.sqrt(ok[0][0] * ok[-1][0])
                rows = {**fixed, e: v * alpha}
                got = [stop(r, rows) for r in runs]
                if robust(rows, got):
                    return rows, got
        raise AssertionError(f"no lm_head row for {e} ends run {run_i} after 10..80 tokens")

    rows, got = search(0, eos_ids[0], {})
    rows, got = search(1, eos_ids[1], rows, keep=got[0])
    assert [g[1] for g in got] == eos_ids and all(10 <= g[0] <= 80 for g in got), got
    with torch.no_grad():
        for e, w in rows.items():
            head[e] = w.to(torch.bfloat16).float()
    print(f"[caption] eos rows: predicted ends (new tokens, id) {[(s + 1, e) for s, e in got]}")
    return {"en": got[0][0] + 1, "zh": got[1][0] + 1}


def build_untied(out: pathlib.Path, image) -> pathlib.Path:
    gen = torch.Generator().manual_seed(20261127)
    cfg = Qwen2_5_VLConfig(text_config=UNTIED_TEXT, vision_config=UNTIED_VISION, tie_word_embeddings=False)
    te = Qwen2_5_VLForConditionalGeneration(cfg)
    scale_up(te, gen)
    # Rows of equal norm: otherwise the few longest rows win almost every step in 12 dimensions and
    # the text falls into a loop of one or two tokens within a few steps.
    with torch.no_grad():
        te.lm_head.weight.copy_(torch.nn.functional.normalize(te.lm_head.weight, dim=1))
    assert te.lm_head.weight.data_ptr() != te.model.language_model.embed_tokens.weight.data_ptr()
    te = te.to(torch.bfloat16).float().eval()  # the values the bf16 file will hold
    te.generation_config = GenerationConfig(**GENERATION_CONFIG)
    root = out / OUT_DIR / UNTIED
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    # Tune on a pipeline holding this model (processor + tokenizer from a scratch folder).
    write_processor(root / "processor", out)
    link(f"../../{common.TINY_PIPELINE}/tokenizer", root / "tokenizer")
    pipe = QwenImageLayeredPipeline(
        scheduler=None, vae=None, text_encoder=te,
        tokenizer=Qwen2Tokenizer.from_pretrained(str(root / "tokenizer")),
        processor=Qwen2VLProcessor.from_pretrained(str(root / "processor")), transformer=None)
    ends = tune_eos_rows(pipe, image)
    print(f"[caption] untied: captions end after {ends} new tokens")
    return write_folder(out, UNTIED, te.to(torch.bfloat16))


def decode_checks(processor) -> list[dict]:
    """ids → text through the processor's batch_decode as the pipeline calls it: special tokens
    (<|im_start|>, <|image_pad|>, <|endoftext|>) dropped, added non-special ones (<tool_call>) kept,
    byte pieces of a split UTF-8 character, leading/trailing whitespace for strip()."""
    tok = processor.tokenizer
    cases = [
        [220, 198] + tok.encode("A red fox, 一只狐狸") + [151645, 198, 220],
        [151644, 872, 198, 151655, 151655, 151657, 9707, 151658, 151643, 151645],
        # "狐" split into its bytes' pieces, a lone continuation byte, then text again.
        tok.convert_tokens_to_ids(["ç", "ĭ", "Ĳ"]) + tok.convert_tokens_to_ids(["ĭ"]) + tok.encode(" ok\t") + [1773],
        [33975, 151652, 151653, 3837, 74965, 151656, 8997],
        [198, 198, 151645],
    ]
    res = []
    for ids in cases:
        text = processor.batch_decode([ids], skip_special_tokens=True, clean_up_tokenization_spaces=False)[0]
        res.append({"ids": ids, "text": text, "stripped": text.strip()})
    return res


def run_case(pipe, image, name: str, use_en: bool, overrides: dict | None) -> tuple[dict, dict]:
    seen = caption_via_call(pipe, image, use_en, overrides)
    inp = seen["inputs"]
    ids = inp["input_ids"]
    assert ids.shape[0] == 1
    L = ids.shape[1]
    gen = seen["sequences"][0, L:]
    s = gen.shape[0]
    eos = GENERATION_CONFIG["eos_token_id"]
    stop = "eos" if gen[-1].item() in eos else "max_new_tokens"
    if stop == "max_new_tokens":
        assert s == seen["max_new_tokens"], (name, s)
    assert "mm_token_type_ids" in inp, "the processor no longer returns mm_token_type_ids"
    # One language-model call per new token: the prefill, then single-token steps.
    pos = seen["positions"]
    assert len(pos) == s and pos[0].shape[-1] == L and all(p.shape[-1] == 1 for p in pos[1:]), [p.shape for p in pos]
    prefill = pos[0]
    if prefill.shape[0] == 4:  # [text positions; 3-D positions] as generate prepares them
        prefill = prefill[1:]
    te = pipe.text_encoder
    ref, _ = te.model.get_rope_index(ids, inp["mm_token_type_ids"], inp["image_grid_thw"],
                                     attention_mask=inp["attention_mask"])
    assert torch.equal(prefill, ref)
    steps = [p[-3:, 0, 0] for p in pos[1:]]
    decode = torch.stack(steps, 1) if steps else torch.zeros(3, 0, dtype=torch.long)
    last = prefill[:, 0, -1]
    for k in range(decode.shape[1]):
        assert torch.equal(decode[:, k], last + 1 + k), (name, k)
    # The documented reading of generate: (penalised) greedy on the raw logits.
    do_sample = (overrides or {}).get("do_sample", GENERATION_CONFIG["do_sample"])
    penalty = (overrides or {}).get("repetition_penalty", GENERATION_CONFIG["repetition_penalty"])
    assert (not do_sample) or GENERATION_CONFIG["top_k"] == 1
    assert penalised_greedy(seen, penalty, eos) == gen.tolist(), name
    text = pipe.vl_processor.batch_decode([gen], skip_special_tokens=True, clean_up_tokenization_spaces=False)[0]
    assert seen["caption"] == text.strip()

    pv = inp["pixel_values"].double()
    t = {
        f"{name}.input_ids": ids,
        f"{name}.image_grid_thw": inp["image_grid_thw"],
        f"{name}.pixel_values.row_sums": pv.sum(1),
        f"{name}.pixel_values.col_sums": pv.sum(0),
        f"{name}.position_ids": prefill,
        f"{name}.decode_positions": decode,
        f"{name}.generated_ids": gen,
    }
    logit_steps = sorted({0, 1, 2, s - 1} & set(range(s)))
    for k in logit_steps:
        v, i = torch.topk(seen["logits"][k], LOGIT_TOP)
        t[f"{name}.logits.{k}.ids"] = i
        t[f"{name}.logits.{k}.values"] = v
    w, h = seen["prompt_image"].size
    info = {
        "folder": f"{OUT_DIR}/{TIED if name.startswith('tied') else UNTIED}",
        "use_en_prompt": use_en,
        "resolution": RESOLUTION,
        "max_new_tokens": seen["max_new_tokens"],
        "generate_overrides": overrides or {},
        "prompt_image_size": [w, h],
        "prompt_image_mode": seen["prompt_image"].mode,
        "prompt_tokens": L,
        "image_grid_thw": inp["image_grid_thw"][0].tolist(),
        "generated_ids": gen.tolist(),
        "decoded": text,
        "caption": seen["caption"],
        "stop": stop,
        "logits_steps": logit_steps,
    }
    return t, info


def main(out: pathlib.Path) -> None:
    out = pathlib.Path(out)
    dst = out / OUT_DIR
    dst.mkdir(parents=True, exist_ok=True)
    write_image(dst)
    image = Image.open(dst / "image_rgba.png").convert("RGBA")
    assert image.mode == "RGBA" and image.size == (97, 61)

    write_folder(out, TIED)
    build_untied(out, image)
    pipes = {TIED: load_pipeline(dst / TIED), UNTIED: load_pipeline(dst / UNTIED)}
    for p in pipes.values():
        gc = p.text_encoder.generation_config
        assert gc.do_sample and gc.top_k == 1 and gc.repetition_penalty == 1.05, gc
    assert pipes[TIED].text_encoder.config.tie_word_embeddings
    assert not pipes[UNTIED].text_encoder.config.tie_word_embeddings

    tensors, cases = {}, {}
    for name, folder, use_en, overrides in CASES:
        t, info = run_case(pipes[folder], image, name, use_en, overrides)
        tensors.update(t)
        cases[name] = info
    for name in ("untied_en", "untied_zh"):
        n = len(cases[name]["generated_ids"])
        assert cases[name]["stop"] == "eos" and n > 10, (name, n)
    assert cases["tied_zh_cap"]["stop"] == "max_new_tokens"
    # The penalty matters on the greedy case: the same call with the released config differs.
    check = caption_via_call(pipes[TIED], image, True, {"max_new_tokens": 13})
    penal = check["sequences"][0, cases["tied_en_greedy"]["prompt_tokens"]:].tolist()
    assert penal != cases["tied_en_greedy"]["generated_ids"], "repetition penalty changed nothing"
    cases["tied_en_greedy"]["penalised_ids"] = penal

    layered = pipes[TIED]
    meta = {
        "cases": cases,
        "prompts": {"en": layered.image_caption_prompt_en, "zh": layered.image_caption_prompt_cn},
        "generation_config": GENERATION_CONFIG,
        "preprocessor_config": PREPROCESSOR_CONFIG,
        "decode_checks": decode_checks(layered.vl_processor),
    }
    common.save_tensors(dst / "caption.safetensors", tensors,
                        metadata={"info": json.dumps(meta, ensure_ascii=False, sort_keys=True)})
    tmp = dst / "cases.json.tmp"
    with open(tmp, "w", encoding="utf-8", newline="\n") as f:
        json.dump(meta, f, ensure_ascii=False, indent=1, sort_keys=True)
        f.write("\n")
    os.replace(tmp, dst / "cases.json")
    print("[caption] " + ", ".join(
        f"{k}: {v['prompt_tokens']} prompt tokens, {len(v['generated_ids'])} new ({v['stop']})"
        for k, v in cases.items()))


def bench(testdata: pathlib.Path, repeats: int = 10) -> None:
    """transformers' side of `cargo bench -p text-encoder --bench caption` (run by hand, same
    machine, after the fixtures exist): on the tiny untied folder and the golden prompt image,
    `generate` with 1 new token (the prefill, vision tower included) and with 32 (min_new_tokens
    32: no early eos), from the processor's inputs; and `get_image_caption` with 32 tokens, from the
    prompt image. Plain greedy, as the Rust bench. Prints medians."""
    import statistics
    import time

    pipe = load_pipeline(testdata / OUT_DIR / UNTIED)
    te = pipe.text_encoder
    image = Image.open(testdata / OUT_DIR / "image_rgba.png").convert("RGBA")
    w, h = image.size
    from diffusers.pipelines.qwenimage.pipeline_qwenimage_layered import calculate_dimensions

    cw, ch = calculate_dimensions(RESOLUTION * RESOLUTION, w / h)
    prompt_image = pipe.image_processor.resize(image, ch, cw)
    inputs = pipe.vl_processor(text=pipe.image_caption_prompt_en, images=prompt_image, padding=True,
                               return_tensors="pt")
    greedy = dict(do_sample=False, repetition_penalty=1.0)

    def median_s(fn):
        fn()
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return statistics.median(times)

    with torch.inference_mode():
        prefill = median_s(lambda: te.generate(**inputs, max_new_tokens=1, **greedy))
        gen32 = median_s(lambda: te.generate(**inputs, max_new_tokens=32, min_new_tokens=32, **greedy))
        orig = te.generate
        te.generate = lambda **kw: orig(**{**kw, "max_new_tokens": 32, "min_new_tokens": 32, **greedy})
        try:
            full = median_s(lambda: pipe.get_image_caption(prompt_image, use_en_prompt=True,
                                                            device=torch.device("cpu")))
        finally:
            del te.generate
    n = inputs["input_ids"].shape[1]
    print(f"torch {torch.__version__} ({torch.get_num_threads()} threads), prompt {n} tokens")
    print(f"prefill (1 new token): {prefill * 1e3:.1f} ms ({n / prefill:.0f} prompt tokens/s)")
    print(f"generate 32 tokens: {gen32 * 1e3:.1f} ms ({32 / gen32:.0f} tokens/s; decode alone "
          f"{31 / (gen32 - prefill):.0f} tokens/s)")
    print(f"get_image_caption, 32 tokens: {full * 1e3:.1f} ms")


if __name__ == "__main__":
    import sys

    if "--bench" in sys.argv:
        common.make_deterministic()
        bench(common.REPO / "testdata")
