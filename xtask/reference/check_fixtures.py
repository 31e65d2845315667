"""Prove the committed goldens are what the oracle produces: regenerate into a temp folder and
compare with testdata/ — safetensors tensor by tensor (bitwise), images pixel by pixel, everything
else byte by byte. Run on demand (`cargo xtask fixtures --check`), not in CI: it needs the venv.
"""

import pathlib
import subprocess
import sys
import tempfile

import numpy as np
from PIL import Image
import torch
from safetensors.torch import load_file

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parents[1]
TESTDATA = REPO / "testdata"
# Inputs, not oracle outputs: the real tokenizer files and hand-written threshold samples.
INPUT_ONLY = ("qwen2.5-tokenizer/", "metrics/thresholds/")


def same(a: pathlib.Path, b: pathlib.Path) -> str | None:
    if a.suffix == ".safetensors":
        ta, tb = load_file(str(a)), load_file(str(b))
        if ta.keys() != tb.keys():
            return f"keys differ: {sorted(set(ta) ^ set(tb))}"
        for k in ta:
            if ta[k].dtype != tb[k].dtype or ta[k].shape != tb[k].shape:
                return f"{k}: dtype/shape differ"
            # Bitwise, so that NaN goldens (e.g. diffusers' 1-step schedule) compare equal.
            if not torch.equal(ta[k].contiguous().view(-1).view(torch.uint8), tb[k].contiguous().view(-1).view(torch.uint8)):
                diff = (ta[k].double() - tb[k].double()).abs().max().item()
                return f"{k}: values differ (max abs {diff})"
        return None
    if a.suffix in (".png", ".jpg", ".webp"):
        ia, ib = np.asarray(Image.open(a).convert("RGB")), np.asarray(Image.open(b).convert("RGB"))
        return None if ia.shape == ib.shape and (ia == ib).all() else "pixels differ"
    return None if a.read_bytes() == b.read_bytes() else "bytes differ"


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        subprocess.run([sys.executable, str(HERE / "fixtures.py"), "--out", str(tmp)], check=True)
        bad, checked = [], 0
        for f in sorted(TESTDATA.rglob("*")):
            rel = f.relative_to(TESTDATA)
            if not f.is_file() or rel.as_posix().startswith(INPUT_ONLY):
                continue
            g = tmp / rel
            if not g.exists():
                bad.append(f"{rel}: not produced by the oracle")
                continue
            checked += 1
            why = same(f, g)
            if why:
                bad.append(f"{rel}: {why}")
        for g in sorted(tmp.rglob("*")):
            rel = g.relative_to(tmp)
            if g.is_file() and not (TESTDATA / rel).exists():
                bad.append(f"{rel}: produced by the oracle but not committed")
        for line in bad:
            print("MISMATCH", line)
        print(f"checked {checked} files: {'all identical' if not bad else f'{len(bad)} mismatches'}")
        return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
