"""Reference oracle driver: regenerate testdata/ with the official diffusers/transformers code.

Run through `cargo xtask fixtures` (which makes the venv), or directly:
    .venv-reference/bin/python xtask/reference/fixtures.py --out testdata [--only NAME ...]

Each `gen_<name>.py` module next to this file owns one folder of testdata and exposes
`main(out: pathlib.Path)`. They run in the order of GENERATORS (the tiny pipeline first: other
generators read its weights). Everything is seeded, single-threaded and CPU-only so that a rerun
writes the same tensors.
"""

import argparse
import importlib
import os
import pathlib
import sys

# Order matters: later generators load the tiny pipeline written by the first.
GENERATORS = [
    "tiny_pipeline",
    "tokenizer",
    "scheduler_cfg",
    "torch_rng",
    "metrics",
    "dit",
    "text_encoder",
    "vae",
    "e2e",
    # Image-conditioned pipelines (each skipped until its gen_<name>.py exists).
    "image_io",
    "vae_encoder",
    "vision",
    "text_encoder_mm",
    "dit_variants",
    "e2e_edit",  # after text_encoder_mm: it reads the tiny Edit folders
    "caption",  # the Layered auto-caption (its folders link to the tiny pipeline's)
    "e2e_layered",  # after caption: its folder links the caption text encoder and input
    "saved_layout",  # last: the tiny folders as today's save_pretrained writes them
]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="testdata", help="testdata folder to write")
    ap.add_argument("--only", nargs="*", help="run only these generators")
    args = ap.parse_args()
    here = pathlib.Path(__file__).resolve().parent
    sys.path.insert(0, str(here))
    import common

    common.make_deterministic()
    out = pathlib.Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    names = args.only or GENERATORS
    for name in names:
        if not (here / f"gen_{name}.py").exists():
            print(f"[fixtures] gen_{name}.py not present yet, skipped")
            continue
        print(f"[fixtures] {name} ...", flush=True)
        mod = importlib.import_module(f"gen_{name}")
        common.make_deterministic()
        mod.main(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
