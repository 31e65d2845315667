"""The tiny pipelines as today's libraries save them: `DiffusionPipeline.save_pretrained` with the
pinned diffusers 0.42.1 and transformers 5.24 writes the tokenizer and the processor in the new
layout (`tokenizer.json` + `tokenizer_config.json`; the processor as `processor_config.json` with the
image processor nested under "image_processor" and its bounds as `size.shortest_edge` /
`size.longest_edge`, no `preprocessor_config.json`). Each folder under testdata/saved-layout/ keeps
every small file exactly as written; the large files are links, so that the tree stays small enough
to travel to the GPU machine:
- the weights link to the source folder's (the same values, checked here; a bf16 source loaded
  without `torch_dtype` is written widened to f32, which the loader reads as well);
- every `tokenizer.json` links to testdata/qwen2.5-tokenizer/tokenizer.json, the real Qwen2.5 fast
  tokenizer, after checking here that it gives the written file's ids and decodes on every probe
  text (the written one differs only in offset trimming and its post-processor template).
"""

import json
import os
import pathlib
import shutil
import tempfile

from diffusers import DiffusionPipeline
import torch
from safetensors.torch import load_file
from tokenizers import Tokenizer

FOLDERS = ["tiny-qwen-image", "tiny-qwen-image-edit", "tiny-qwen-image-edit-plus", "tiny-qwen-image-layered"]
PROBES = [
    "Doraemon is eating dorayaki",
    "<|im_start|>system\nDescribe the image.<|im_end|>\n<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>把猫变成3D风格<|im_end|>\n",
    "  spaces,\ttabs and 123 numbers!  ",
    "",
]


def same_tokenizer(written: pathlib.Path, shared: pathlib.Path) -> None:
    a, b = Tokenizer.from_file(str(written)), Tokenizer.from_file(str(shared))
    for text in PROBES:
        ia = a.encode(text, add_special_tokens=False).ids
        ib = b.encode(text, add_special_tokens=False).ids
        assert ia == ib, f"{written}: ids differ on {text!r}"
        assert a.decode(ia, skip_special_tokens=True) == b.decode(ib, skip_special_tokens=True), text
    assert a.get_vocab(with_added_tokens=True) == b.get_vocab(with_added_tokens=True), written


def same_tensors(written: pathlib.Path, source: pathlib.Path) -> None:
    a, b = load_file(str(written)), load_file(str(source))
    assert a.keys() == b.keys(), f"{written}: tensor names differ from {source}"
    for k in a:
        # A bf16 source loaded without torch_dtype is saved as f32: the same values, widened.
        assert torch.equal(a[k], b[k].to(a[k].dtype)) and torch.equal(a[k].to(b[k].dtype), b[k]), (
            f"{written}: {k} differs"
        )


def link(dst: pathlib.Path, target: pathlib.Path) -> None:
    dst.unlink()
    dst.symlink_to(os.path.relpath(target.resolve(), dst.parent.resolve()))


def main(out: pathlib.Path) -> None:
    shared_tokenizer = out / "qwen2.5-tokenizer" / "tokenizer.json"
    root = out / "saved-layout"
    if root.exists():
        shutil.rmtree(root)
    root.mkdir()
    for name in FOLDERS:
        src = out / name
        with tempfile.TemporaryDirectory() as tmp:
            written = pathlib.Path(tmp) / name
            DiffusionPipeline.from_pretrained(src).save_pretrained(written)
            dst = root / name
            shutil.copytree(written, dst)
        for path in sorted(dst.rglob("*")):
            rel = path.relative_to(dst)
            if path.suffix == ".safetensors":
                same_tensors(path, src / rel)
                link(path, src / rel)
            elif path.name == "tokenizer.json":
                same_tokenizer(path, shared_tokenizer)
                link(path, shared_tokenizer)
        # The absolute source path save_pretrained records says nothing and differs per machine.
        for cfg in dst.rglob("*.json"):
            if cfg.is_symlink():
                continue
            doc = json.loads(cfg.read_text())
            if isinstance(doc, dict) and "_name_or_path" in doc:
                doc["_name_or_path"] = f"testdata/{name}"
                cfg.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
        print(f"[saved_layout] {dst}: " + ", ".join(sorted(str(p.relative_to(dst)) for p in dst.rglob("*") if p.is_file())))
