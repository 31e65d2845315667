#!/usr/bin/env bash
# One-call GPU check (parity + speed against PyTorch on the same card). Two halves:
#
#   ci/gpu-check.sh prepare   # here (no GPU needed): release binary with CUDA + the diffusers wheel
#   ci/gpu-check.sh run       # on the GPU machine: parity and timing, results under $OUT
#
# With the device tool, after `prepare`:
#   run(command="bash ci/gpu-check.sh run", carry=["ci/bin", "ci/wheels"], timeout_s=540)
# The tree that travels must stay under 64 MiB: tracked files (~50 MiB, mostly testdata) + the
# stripped binary xz-compressed (~8.5 MiB) + the pure-Python wheels unpacked and xz-compressed
# (~2.3 MiB; as .whl they were 7 MiB); target/ never travels.
# `run` prints a short table last and writes $OUT/gpu-report.json; `cargo xtask bench gpu FILE`
# prints the same table from a saved report. The whole run is sized for ≤ 8 minutes on an H100.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-run}

case "$mode" in
prepare)
  mkdir -p ci/bin ci/wheels
  # burn 0.21's CUDA backend loads libcuda/libnvrtc at run time; the H100/H200 machines run CUDA 13.0.
  CUDARC_CUDA_VERSION=13000 cargo build --release --features cuda -p xtask
  strip -o ci/bin/xtask target/release/xtask 2>/dev/null || cp target/release/xtask ci/bin/xtask
  xz -9 -T2 -f ci/bin/xtask   # → ci/bin/xtask.xz (49 MB → ~8 MB)
  # diffusers (and its small pure-Python deps) as wheels; torch and transformers are on the machine.
  rm -rf ci/wheels && mkdir -p ci/wheels
  dl=$(mktemp -d)
  python3 -m pip download --quiet --only-binary=:all: -d "$dl/lib" diffusers==0.42.1 --no-deps
  python3 -m pip download --quiet --only-binary=:all: -d "$dl/lib" importlib_metadata zipp
  # Only installed there if the machine's huggingface_hub is too old for diffusers 0.42.
  python3 -m pip download --quiet --only-binary=:all: --no-deps -d "$dl/hub" huggingface_hub==2.4.0
  # A pure-Python wheel installs by unzipping it into the target folder: carry the files, xz-packed.
  for part in lib hub; do
    python3 - "$dl/$part" "ci/wheels/$part.tar.xz" <<'PY'
import pathlib, sys, tarfile, zipfile
src, dst = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
stage = src / "unpacked"
for whl in sorted(src.glob("*.whl")):
    zipfile.ZipFile(whl).extractall(stage)
tmp = dst.with_suffix(".tmp")
with tarfile.open(tmp, "w:xz", preset=9) as t:
    t.add(stage, arcname=".")
tmp.rename(dst)
PY
  done
  rm -rf "$dl"
  du -sh ci/bin ci/wheels
  tracked=$(git ls-files -z | xargs -0 du -cb 2>/dev/null | tail -1 | cut -f1)
  carried=$(du -cb ci/bin ci/wheels | tail -1 | cut -f1)
  echo "travelling tree: $(( (tracked + carried) / 1048576 )) MiB of 64"
  [ $(( tracked + carried )) -lt $(( 64 * 1048576 )) ] || { echo "too big to travel"; exit 1; }
  ;;
run)
  OUT=${OUT:-ci/out}
  mkdir -p "$OUT"
  echo "== machine"
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
  # cubecl compiles kernels with NVRTC and needs the CUDA headers.
  if [ -z "${CUDA_PATH:-}" ]; then
    for d in /usr/local/cuda /opt/cuda; do [ -d "$d/include" ] && export CUDA_PATH=$d && break; done
  fi
  if [ -z "${CUDA_PATH:-}" ] && command -v nvcc >/dev/null; then
    CUDA_PATH=$(dirname "$(dirname "$(command -v nvcc)")"); export CUDA_PATH
  fi
  echo "CUDA_PATH=${CUDA_PATH:-unset}"
  [ -f ci/bin/xtask.xz ] || { echo "ci/bin/xtask.xz missing: run 'ci/gpu-check.sh prepare' first and carry ci/bin"; exit 2; }
  mkdir -p /tmp/gpu-bin
  python3 -c "import lzma, shutil; shutil.copyfileobj(lzma.open('ci/bin/xtask.xz'), open('/tmp/gpu-bin/xtask', 'wb'))"
  chmod +x /tmp/gpu-bin/xtask
  unpack() { python3 -c "import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])" "$@"; }
  [ -f ci/wheels/lib.tar.xz ] || { echo "ci/wheels/lib.tar.xz missing: run 'ci/gpu-check.sh prepare' first and carry ci/wheels"; exit 2; }
  unpack ci/wheels/lib.tar.xz /tmp/gpu-pylib
  export PYTHONPATH=/tmp/gpu-pylib${PYTHONPATH:+:$PYTHONPATH}
  if ! python3 -c "import diffusers" 2>/dev/null && [ -f ci/wheels/hub.tar.xz ]; then
    echo "diffusers does not import with this huggingface_hub; adding the carried one"
    unpack ci/wheels/hub.tar.xz /tmp/gpu-pylib
  fi
  python3 -c "import torch, transformers, diffusers; print('torch', torch.__version__, 'transformers', transformers.__version__, 'diffusers', diffusers.__version__, 'cuda', torch.cuda.is_available())"
  export CUBECL_AUTOTUNE_LEVEL=${CUBECL_AUTOTUNE_LEVEL:-balanced}
  python3 ci/gpu_bench.py --xtask /tmp/gpu-bin/xtask --out "$OUT" --work /tmp/gpu-work "${@:2}"
  ;;
*)
  echo "usage: ci/gpu-check.sh prepare|run" >&2
  exit 2
  ;;
esac
