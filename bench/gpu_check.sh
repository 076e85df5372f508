#!/usr/bin/env bash
# The GPU check of `prh train` and the hf candidate: CUDA placement, bf16 autocast, a LoRA step on the GPU,
# 4-bit (bitsandbytes) loading for the hf candidate with a QLoRA step, and `accelerate launch` on one GPU.
# One GPU, under 8 minutes, nothing downloaded: the models are the tiny ones the script builds
# (bench/gpu_check.py says what each check asserts). Needs torch (CUDA), transformers, peft, accelerate,
# sentence-transformers; bitsandbytes for the 4-bit check (SKIP without it).
#
#   bash bench/gpu_check.sh            # from anywhere; PYTHON=python3.12 picks the interpreter
#
# Exit 0 when no check failed. Output: one PASS / FAIL / SKIP line per check, then a summary line.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || echo "nvidia-smi: not found"
"$PYTHON" -c "import torch, transformers, peft, accelerate; print('torch', torch.__version__, '| transformers', transformers.__version__, '| peft', peft.__version__, '| accelerate', accelerate.__version__)"
started=$(date +%s)
status=0
timeout 470 "$PYTHON" bench/gpu_check.py "$@" || status=$?
echo "gpu_check.sh: $(( $(date +%s) - started )) s, exit $status"
exit "$status"
