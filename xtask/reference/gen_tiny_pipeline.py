"""The tiny official pipeline: a complete QwenImagePipeline built from the official classes with
random (seeded, scaled-up) weights and saved with `save_pretrained` in the released layout.

Structure kept real: 2 dual-stream DiT blocks with 2 heads, a VAE with the real dim_mult/temporal
layout and non-trivial latents_mean/std, a Qwen2.5-VL text encoder with GQA (2 heads, 1 KV head)
whose vocabulary covers the real Qwen2.5 ids (tied embeddings keep it small), the released
scheduler config, and the slow tokenizer folder (vocab.json + merges.txt + tokenizer_config.json,
no tokenizer.json) made from the real Qwen2.5 files in testdata/qwen2.5-tokenizer.
"""

import json
import math
import pathlib
import shutil

import torch
from diffusers import (
    AutoencoderKLQwenImage,
    FlowMatchEulerDiscreteScheduler,
    QwenImagePipeline,
    QwenImageTransformer2DModel,
)
from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration, Qwen2Tokenizer

import common

# The 22 Qwen2.5 special tokens, as the released tokenizer_config.json declares them.
SPECIAL = [
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
    "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>",
    "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>", "<tool_call>",
    "</tool_call>", "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>",
    "<|repo_name|>", "<|file_sep|>",
]
NOT_SPECIAL = {"<tool_call>", "</tool_call>", "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>",
               "<|fim_pad|>", "<|repo_name|>", "<|file_sep|>"}

# Released scheduler config (Qwen/Qwen-Image/scheduler/scheduler_config.json).
SCHEDULER = dict(
    num_train_timesteps=1000, shift=1.0, use_dynamic_shifting=True, base_shift=0.5, max_shift=0.9,
    base_image_seq_len=256, max_image_seq_len=8192, shift_terminal=0.02, time_shift_type="exponential",
    invert_sigmas=False, stochastic_sampling=False, use_karras_sigmas=False,
    use_exponential_sigmas=False, use_beta_sigmas=False,
)

TEXT_HIDDEN = 32


def scale_up(module: torch.nn.Module, gen: torch.Generator) -> None:
    """Re-draw every parameter so that each one visibly changes the output: weights ~ N(0, 1/fan_in),
    biases ~ N(0, 0.1), norm scales ~ 1 + N(0, 0.1)."""
    with torch.no_grad():
        for name, p in module.named_parameters():
            leaf = name.rsplit(".", 1)[-1]
            if ("norm" in name and p.ndim == 1) or leaf == "gamma":
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=gen))
            elif leaf == "bias":
                p.copy_(0.1 * torch.randn(p.shape, generator=gen))
            elif p.ndim == 1:
                p.copy_(0.1 * torch.randn(p.shape, generator=gen))
            else:
                fan_in = p[0].numel() if p.ndim > 1 else p.numel()
                if "embed_tokens" in name:
                    fan_in = 1
                p.copy_(torch.randn(p.shape, generator=gen) / math.sqrt(fan_in))


def write_tokenizer(dst: pathlib.Path, src: pathlib.Path) -> None:
    dst.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src / "vocab.json", dst / "vocab.json")
    shutil.copyfile(src / "merges.txt", dst / "merges.txt")
    decoder = {
        str(151643 + i): {
            "content": tok, "lstrip": False, "normalized": False, "rstrip": False,
            "single_word": False, "special": tok not in NOT_SPECIAL,
        }
        for i, tok in enumerate(SPECIAL)
    }
    cfg = {
        "add_bos_token": False,
        "add_prefix_space": False,
        "added_tokens_decoder": decoder,
        "additional_special_tokens": [t for t in SPECIAL[1:14]],
        "bos_token": None,
        "chat_template": None,
        "clean_up_tokenization_spaces": False,
        "eos_token": "<|im_end|>",
        "errors": "replace",
        "model_max_length": 131072,
        "pad_token": "<|endoftext|>",
        "split_special_tokens": False,
        "tokenizer_class": "Qwen2Tokenizer",
        "unk_token": None,
    }
    (dst / "tokenizer_config.json").write_text(json.dumps(cfg, indent=2, ensure_ascii=False) + "\n")


def main(out: pathlib.Path) -> None:
    root = common.tiny_pipeline_dir(out)
    if root.exists():
        shutil.rmtree(root)
    gen = torch.Generator().manual_seed(20261126)

    transformer = QwenImageTransformer2DModel(
        patch_size=2, in_channels=64, out_channels=16, num_layers=2, attention_head_dim=32,
        num_attention_heads=2, joint_attention_dim=TEXT_HIDDEN, guidance_embeds=False,
        axes_dims_rope=(8, 12, 12),
    )
    scale_up(transformer, gen)

    g = torch.Generator().manual_seed(7)
    latents_mean = [round(float(x), 4) for x in (torch.randn(16, generator=g) * 0.8)]
    latents_std = [round(float(x), 4) for x in (1.0 + torch.rand(16, generator=g) * 2.0)]
    vae = AutoencoderKLQwenImage(
        base_dim=8, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=2, attn_scales=[],
        temperal_downsample=[False, True, True], dropout=0.0,
        latents_mean=latents_mean, latents_std=latents_std,
    )
    scale_up(vae, gen)

    te_cfg = Qwen2_5_VLConfig(
        text_config=dict(
            vocab_size=151680, hidden_size=TEXT_HIDDEN, intermediate_size=64, num_hidden_layers=2,
            num_attention_heads=2, num_key_value_heads=1, hidden_act="silu",
            max_position_embeddings=4096, rms_norm_eps=1e-6, use_sliding_window=False,
            rope_parameters={"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": [2, 3, 3]},
            tie_word_embeddings=True, bos_token_id=151643, eos_token_id=151645,
        ),
        vision_config=dict(
            depth=1, hidden_size=16, intermediate_size=32, num_heads=2, out_hidden_size=TEXT_HIDDEN,
            fullatt_block_indexes=[0], patch_size=14, spatial_merge_size=2, temporal_patch_size=2,
        ),
        tie_word_embeddings=True,
    )
    text_encoder = Qwen2_5_VLForConditionalGeneration(te_cfg)
    scale_up(text_encoder, gen)
    text_encoder.tie_weights()
    # The released text encoder is bf16; so is ours (it also halves the embedding table).
    text_encoder = text_encoder.to(torch.bfloat16)

    tok_dir = root / "tokenizer"
    write_tokenizer(tok_dir, common.QWEN_TOKENIZER)
    tokenizer = Qwen2Tokenizer.from_pretrained(str(tok_dir))

    scheduler = FlowMatchEulerDiscreteScheduler(**SCHEDULER)
    pipe = QwenImagePipeline(
        scheduler=scheduler, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer,
        transformer=transformer,
    )
    pipe.save_pretrained(str(root), safe_serialization=True)
    # save_pretrained rewrites the tokenizer folder; put back the released (slow) layout.
    shutil.rmtree(tok_dir)
    write_tokenizer(tok_dir, common.QWEN_TOKENIZER)
    for f in root.rglob("*"):
        if f.name in ("README.md",):
            f.unlink()
    print(f"[tiny_pipeline] wrote {root}")
