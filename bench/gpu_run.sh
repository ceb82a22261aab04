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
  # QLoRA (issue 13): bitsandbytes has no network to come from on the GPU machine; fetch its wheel first:
  #   pip download --no-deps -d .gpu/wheels bitsandbytes
  python3 -m pip install --quiet --no-deps --no-index --find-links .gpu/wheels bitsandbytes 2>&1 | tail -2
fi
export PYTHONPATH=$PWD HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
python3 -c "import torch, transformers, peft; print('torch', torch.__version__, 'transformers', transformers.__version__, 'peft', peft.__version__)" | tee -a "$OUT/gpu.txt"
# GPU_RUN_ONLY=qlora runs only the issue-13 part below (the whole script can exceed one 10-minute call).
if [ "${GPU_RUN_ONLY:-}" != "qlora" ]; then
  timeout 170 python3 bench/generate.py --device cuda 2>&1 | tee "$OUT/generate.txt"
  timeout 120 python3 bench/reward.py --device cuda 2>&1 | tee "$OUT/reward.txt"
  timeout 170 python3 bench/policy.py --device cuda 2>&1 | tee "$OUT/policy.txt"
fi
# Issue 13: QLoRA reward and PPO steps on Qwen2.5-7B shapes (random init): peak memory
# (torch.cuda.max_memory_allocated, target <= 24 GiB), throughput against a plain loop, rollouts on the
# 4-bit policy; and the rollout speed-up with the compiled decode step.
if python3 -c "import bitsandbytes" 2>/dev/null; then
  timeout 420 python3 bench/qlora.py --device cuda 2>&1 | tee "$OUT/qlora-7b.txt"
else
  echo "bitsandbytes is not installed: QLoRA figures skipped (pip download --no-deps -d .gpu/wheels bitsandbytes)" \
    | tee "$OUT/qlora-7b.txt"
fi
timeout 200 python3 bench/generate.py --device cuda --compile 2>&1 | tee "$OUT/generate-compile.txt"
