#!/usr/bin/env bash
# GPU check (issue 9, item 8): SFT and SDFT in bfloat16 on a random ~0.5B Qwen2 built locally, on one GPU, in at
# most 8 minutes; prints time per example, tokens per second and peak memory, writes results/gpu_check/.
# Usage: benchmarks/gpu/check.sh [extra check.py options, e.g. --tiny to try it on a CPU]
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHON="${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python )}"
if [[ " $* " != *" --tiny "* ]]; then
  "$PYTHON" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else "no CUDA device: pass --tiny to run the small version on a CPU")'
  "$PYTHON" -c 'import torch; print(torch.cuda.get_device_name(0), torch.__version__, "CUDA", torch.version.cuda)'
fi
exec timeout 480 "$PYTHON" benchmarks/gpu/check.py "$@"
