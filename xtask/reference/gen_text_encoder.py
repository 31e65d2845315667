"""Golden tensors for crates/text-encoder (testdata/text-encoder/), from the official classes.

The tiny pipeline (testdata/tiny-qwen-image) is loaded with `QwenImagePipeline.from_pretrained(...,
torch_dtype=torch.float32)`: its text encoder file is bf16, so every weight is exactly representable
in f32 and an f32 comparison with the Rust port is meaningful at 1e-4.

Writes:
  hidden_states.safetensors  one prompt through `Qwen2_5_VLForConditionalGeneration(...,
                             output_hidden_states=True)`: `input_ids` / `attention_mask` [1, L] i64,
                             `hidden_states.{i}` [1, L, D] for i = 0..=N (0 = embeddings, N = after the
                             final RMSNorm, as transformers reports them), `layer_output.{i}` [1, L, D]
                             (each decoder layer's raw output, captured with forward hooks, so the
                             last layer's pre-norm output is checked too) and `inv_freq` [head_dim/2].
  prompt_embeds.safetensors  the pipeline's own prompt path, per case `<case>.*`:
                             `input_ids` / `attention_mask` [B, T] i64 (the tokenizer call inside
                             `_get_qwen_prompt_embeds`, repeated here with the same arguments),
                             `prompt_embeds` [B, L, D] / `prompt_embeds_mask` [B, L] i64 from
                             `_get_qwen_prompt_embeds`, and `encoded.prompt_embeds` /
                             `encoded.prompt_embeds_mask` from `encode_prompt(max_sequence_length=512)`
                             (the mask there is all ones when diffusers returned None; metadata says
                             which). Cases: `batch` (" ", CJK + emoji, a long prompt: padding
                             exercised), `truncated` (a prompt longer than 1024 + 34 tokens), `empty`.
  prompts.json               the prompts of every case, for tests and `cargo xtask encode-prompt`.
"""

import json
import os
import pathlib

import torch
from diffusers import QwenImagePipeline

import common

LAYER_PROMPT = (
    "A cozy reading nook by a rain-streaked window at dusk: a worn leather armchair, a knitted blanket "
    "in mustard yellow, a steaming cup of jasmine tea on a small walnut side table, stacks of old books "
    "with cracked spines, a sleeping tabby cat curled on the cushion, warm light from a brass floor lamp, "
    "potted ferns, and a handwritten note that reads \"back at 7\". Soft film grain, shallow depth of field."
)
BATCH = [
    " ",
    "一只可爱的猫坐在窗台上，宫崎骏风格。🐱✨🎨 夕阳、微风、风铃。",
    (
        "An ultra-detailed isometric illustration of a floating island city at sunrise. Terraced gardens "
        "spill over the edges in waterfalls that turn into mist; tiny cable cars connect copper-roofed "
        "towers; hot-air balloons in red, teal and saffron drift between clouds; a market square is full "
        "of stalls selling lanterns, spices and clockwork birds; children fly kites shaped like koi fish; "
        "a lighthouse on the highest peak sweeps a beam of golden light across the sky. The palette is "
        "warm pastel with crisp ink outlines, volumetric light, long soft shadows, and a hand-lettered "
        "banner across the bottom that says \"Welcome to Aerisport\". "
    )
    * 2,
]
TRUNCATED = [" ".join(["a very long prompt"] * 400)]
EMPTY = [""]
MAX_SEQUENCE_LENGTH = 512


def layer_goldens(pipe) -> dict:
    te = pipe.text_encoder
    lm = te.model.language_model
    text = pipe.prompt_template_encode.format(LAYER_PROMPT)
    tok = pipe.tokenizer([text], return_tensors="pt")
    captured = {}

    def hook(i):
        def f(_module, _args, output):
            captured[i] = (output[0] if isinstance(output, tuple) else output).detach().clone()

        return f

    handles = [layer.register_forward_hook(hook(i)) for i, layer in enumerate(lm.layers)]
    try:
        with torch.no_grad():
            out = te(input_ids=tok.input_ids, attention_mask=tok.attention_mask, output_hidden_states=True)
    finally:
        for h in handles:
            h.remove()
    n = len(lm.layers)
    assert len(out.hidden_states) == n + 1
    tensors = {
        "input_ids": tok.input_ids,
        "attention_mask": tok.attention_mask,
        "inv_freq": lm.rotary_emb.inv_freq,
    }
    for i, h in enumerate(out.hidden_states):
        tensors[f"hidden_states.{i}"] = h
    for i in range(n):
        tensors[f"layer_output.{i}"] = captured[i]
    # transformers 5 reports the final-norm output as the last hidden state: check that here, as
    # the pipeline relies on it.
    assert torch.equal(out.hidden_states[-1], lm.norm(captured[n - 1]))
    return tensors


def prompt_goldens(pipe, name: str, prompts: list[str]) -> tuple[dict, dict]:
    drop = pipe.prompt_template_encode_start_idx
    txt = [pipe.prompt_template_encode.format(p) for p in prompts]
    tok = pipe.tokenizer(txt, max_length=pipe.tokenizer_max_length + drop, padding=True, truncation=True,
                         return_tensors="pt")
    with torch.no_grad():
        embeds, mask = pipe._get_qwen_prompt_embeds(prompts, device=torch.device("cpu"))
        enc_embeds, enc_mask = pipe.encode_prompt(prompts, device=torch.device("cpu"),
                                                  max_sequence_length=MAX_SEQUENCE_LENGTH)
    mask_was_none = enc_mask is None
    if mask_was_none:
        enc_mask = torch.ones(enc_embeds.shape[:2], dtype=torch.long)
    assert embeds.dtype == torch.float32
    tensors = {
        f"{name}.input_ids": tok.input_ids,
        f"{name}.attention_mask": tok.attention_mask,
        f"{name}.prompt_embeds": embeds,
        f"{name}.prompt_embeds_mask": mask,
        f"{name}.encoded.prompt_embeds": enc_embeds,
        f"{name}.encoded.prompt_embeds_mask": enc_mask,
    }
    info = {"prompts": prompts, "encoded_mask_was_none": mask_was_none,
            "token_lengths": tok.attention_mask.sum(1).tolist()}
    return tensors, info


def main(out: pathlib.Path) -> None:
    out = pathlib.Path(out)
    dst = out / "text-encoder"
    dst.mkdir(parents=True, exist_ok=True)
    pipe = QwenImagePipeline.from_pretrained(str(common.tiny_pipeline_dir(out)), torch_dtype=torch.float32)
    pipe.text_encoder.eval()

    layer = layer_goldens(pipe)
    common.save_tensors(dst / "hidden_states.safetensors", layer,
                        metadata={"info": json.dumps({"prompt": LAYER_PROMPT}, ensure_ascii=False)})

    tensors, cases = {}, {}
    for name, prompts in [("batch", BATCH), ("truncated", TRUNCATED), ("empty", EMPTY)]:
        t, info = prompt_goldens(pipe, name, prompts)
        tensors.update(t)
        cases[name] = info
    assert cases["truncated"]["token_lengths"] == [pipe.tokenizer_max_length + pipe.prompt_template_encode_start_idx]
    meta = {"max_sequence_length": MAX_SEQUENCE_LENGTH, "cases": cases}
    # One metadata key only: safetensors writes its metadata map in hash order.
    common.save_tensors(dst / "prompt_embeds.safetensors", tensors,
                        metadata={"info": json.dumps(meta, ensure_ascii=False, sort_keys=True)})

    prompts = {name: {"prompts": info["prompts"]} for name, info in cases.items()}
    prompts["layers"] = {"prompts": [LAYER_PROMPT]}
    tmp = dst / "prompts.json.tmp"
    with open(tmp, "w", encoding="utf-8", newline="\n") as f:
        json.dump(prompts, f, ensure_ascii=False, indent=1, sort_keys=True)
        f.write("\n")
    os.replace(tmp, dst / "prompts.json")
    print(f"[text_encoder] layer prompt {layer['input_ids'].shape[1]} tokens; "
          + ", ".join(f"{k}: {v['token_lengths']}" for k, v in cases.items()))


def bench(testdata: pathlib.Path, repeats: int = 30) -> None:
    """transformers' side of `cargo bench -p text-encoder` (run by hand, same machine):
        .venv-reference/bin/python xtask/reference/gen_text_encoder.py --bench
    Same work as the criterion groups: prefill of the tiny f32 text encoder on 128 and 1058 tokens
    (batch 1), and the pipeline's `encode_prompt` on three prompts. Prints medians."""
    import statistics
    import time

    def median_s(fn):
        fn()  # warm-up
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return statistics.median(times)

    pipe = QwenImagePipeline.from_pretrained(str(common.tiny_pipeline_dir(testdata)), torch_dtype=torch.float32)
    te = pipe.text_encoder.eval()
    text = pipe.prompt_template_encode.format("a watercolor fox in a snowy birch forest, " * 200)
    ids = pipe.tokenizer(text, return_tensors="pt").input_ids
    print(f"torch {torch.__version__} ({torch.get_num_threads()} threads), attention {te.config._attn_implementation}")
    lm = te.model.language_model
    with torch.inference_mode():
        for n in (128, 1058):
            x, m = ids[:, :n], torch.ones(1, n, dtype=torch.long)
            # The same work as our forward: the language model alone (no LM head).
            s = median_s(lambda: lm(input_ids=x, attention_mask=m))
            print(f"prefill_tiny/b1_l{n:<5d} language model     {s * 1e3:9.3f} ms  {n / s / 1e3:8.2f} Ktok/s")
            # What the pipeline calls: the whole model, which also computes the unused logits.
            s = median_s(lambda: te(input_ids=x, attention_mask=m, output_hidden_states=True))
            print(f"prefill_tiny/b1_l{n:<5d} as the pipeline    {s * 1e3:9.3f} ms  {n / s / 1e3:8.2f} Ktok/s")
        prompts = ["A cat on a windowsill", " ", "一只可爱的猫坐在窗台上，宫崎骏风格。"]
        enc = pipe.tokenizer([pipe.prompt_template_encode.format(p) for p in prompts])
        n = sum(sum(r) for r in enc.attention_mask)
        s = median_s(lambda: pipe.encode_prompt(prompts, device=torch.device("cpu"), max_sequence_length=512))
        print(f"encode_prompt_tiny/batch3 (pipeline)   {s * 1e3:9.3f} ms  {n / s / 1e3:8.2f} Ktok/s")

if __name__ == "__main__":
    import sys

    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
    if "--bench" in sys.argv:
        bench(pathlib.Path(__file__).resolve().parents[2] / "testdata")
    else:
        print("run through fixtures.py (--only text_encoder), or with --bench for transformers' timings")
