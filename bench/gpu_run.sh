#!/usr/bin/env bash
# The GPU figures in one call (the lead runs this on a lent GPU machine, whose image has torch,
# transformers and peft but not sqlite-utils/cryptography: those come as wheels in .gpu/wheels).
set -uo pipefail
OUT=${OUT:-/tmp/gpu-out}
mkdir -p "$OUT"
if [ -d .gpu/wheels ]; then
  python3 -m pip install --quiet --no-index --find-links .gpu/wheels sqlite-utils cryptography filelock 2>&1 | tail -2
  # The versions the project is tested with (the image's transformers 5.17 lays out static-cache
  # prefill differently).
  python3 -m pip install --quiet --no-deps --no-index --find-links .gpu/wheels transformers==5.24.0 \
    huggingface_hub peft==0.21.2 2>&1 | tail -2
fi
export PYTHONPATH=$PWD HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
python3 -c "import torch, transformers, peft; print('torch', torch.__version__, 'transformers', transformers.__version__, 'peft', peft.__version__)" | tee -a "$OUT/gpu.txt"
timeout 170 python3 bench/generate.py --device cuda 2>&1 | tee "$OUT/generate.txt"
timeout 120 python3 bench/reward.py --device cuda 2>&1 | tee "$OUT/reward.txt"
timeout 170 python3 bench/policy.py --device cuda 2>&1 | tee "$OUT/policy.txt"
