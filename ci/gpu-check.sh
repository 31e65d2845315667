#!/usr/bin/env bash
# One-call GPU check (parity + speed against PyTorch on the same card). Two halves:
#
#   ci/gpu-check.sh prepare   # here (no GPU needed): release binary with CUDA + the diffusers wheel
#   ci/gpu-check.sh run       # on the GPU machine: parity and timing, results under $OUT
#
# With the device tool, after `prepare`:
#   run(command="bash ci/gpu-check.sh run", carry=["ci/bin", "ci/wheels"], timeout_s=540)
# The carried tree stays small: a stripped binary (~40 MB) and a few wheels; target/ never travels.
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
  cp target/release/xtask ci/bin/xtask
  strip ci/bin/xtask || true
  # diffusers (and its small pure-Python deps) as wheels; torch and transformers are on the machine.
  python3 -m pip download --quiet --only-binary=:all: -d ci/wheels diffusers==0.42.1 \
    --no-deps
  python3 -m pip download --quiet --only-binary=:all: -d ci/wheels importlib_metadata zipp
  # Only installed there if the machine's huggingface_hub is too old for diffusers 0.42.
  python3 -m pip download --quiet --only-binary=:all: --no-deps -d ci/wheels/hub huggingface_hub==2.4.0
  du -sh ci/bin ci/wheels
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
  [ -x ci/bin/xtask ] || { echo "ci/bin/xtask missing: run 'ci/gpu-check.sh prepare' first and carry ci/bin"; exit 2; }
  python3 -m pip install --quiet --no-index --find-links ci/wheels --no-deps ci/wheels/*.whl \
    --target /tmp/gpu-pylib
  export PYTHONPATH=/tmp/gpu-pylib${PYTHONPATH:+:$PYTHONPATH}
  if ! python3 -c "import diffusers" 2>/dev/null && ls ci/wheels/hub/*.whl >/dev/null 2>&1; then
    echo "diffusers does not import with this huggingface_hub; adding the carried one"
    python3 -m pip install --quiet --no-index --no-deps ci/wheels/hub/*.whl --target /tmp/gpu-pylib
  fi
  python3 -c "import torch, transformers, diffusers; print('torch', torch.__version__, 'transformers', transformers.__version__, 'diffusers', diffusers.__version__, 'cuda', torch.cuda.is_available())"
  export CUBECL_AUTOTUNE_LEVEL=${CUBECL_AUTOTUNE_LEVEL:-balanced}
  python3 ci/gpu_bench.py --xtask ci/bin/xtask --out "$OUT" --work /tmp/gpu-work "${@:2}"
  ;;
*)
  echo "usage: ci/gpu-check.sh prepare|run" >&2
  exit 2
  ;;
esac
