"""Helpers shared by the gen_*.py oracle modules."""

import os
import pathlib
import random

import numpy as np
import torch
from safetensors.torch import save_file

TINY_PIPELINE = "tiny-qwen-image"
# Inputs that are not generated: the real Qwen2.5 tokenizer files (see their README).
REPO = pathlib.Path(__file__).resolve().parents[2]
QWEN_TOKENIZER = REPO / "testdata" / "qwen2.5-tokenizer"


def make_deterministic(seed: int = 0) -> None:
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed)


def save_tensors(path: pathlib.Path, tensors: dict, metadata: dict | None = None) -> None:
    """Write golden tensors: float tensors as f32 (unless already f64/bf16 on purpose), ints as i64,
    contiguous, with sorted keys, through a temp file so a crash never leaves half a file."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    out = {}
    for k in sorted(tensors):
        t = tensors[k]
        if not isinstance(t, torch.Tensor):
            t = torch.as_tensor(np.asarray(t))
        t = t.detach().cpu()
        if t.dtype in (torch.float16,):
            t = t.float()
        if t.dtype in (torch.int32, torch.int16, torch.int8, torch.uint8, torch.bool):
            t = t.to(torch.int64)
        out[k] = t.contiguous()
    tmp = path.with_suffix(path.suffix + ".tmp")
    save_file(out, str(tmp), metadata={k: str(v) for k, v in sorted((metadata or {}).items())})
    os.replace(tmp, path)


def tiny_pipeline_dir(out: pathlib.Path) -> pathlib.Path:
    return pathlib.Path(out) / TINY_PIPELINE


def update_case_map(official: pathlib.Path, cases: dict, prefix: str) -> None:
    """Write `official/case_map.json` with `cases` ({id: {"outputs": [...]}}) replacing every entry
    whose id starts with `prefix` (the calling generator's own), keeping the other generators'."""
    import json

    path = pathlib.Path(official) / "case_map.json"
    doc = json.loads(path.read_text()) if path.is_file() else {"cases": {}}
    kept = {k: v for k, v in doc.get("cases", {}).items() if not k.startswith(prefix)}
    kept.update(cases)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps({"cases": kept}, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)
