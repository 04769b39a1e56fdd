#!/usr/bin/env bash
# The GPU checks in one run, on a node where tools/offline_install.py (or
# make install) has put the stack:
#     [PYTHON=...] bash tools/gpu_check.sh [OUT_DIR]
# writes OUT_DIR/env.txt (GPU, driver, torch, CUDA, and mmcv's NMS and
# RoIAlign launched on every GPU by `tools/offline_install.py check`),
# tests.txt (the suite's CUDA tests: every test taking the `device` fixture)
# and figures.txt/.json (tools/analysis/device_figures.py --device cuda).
# Exits non-zero where the check, the tests or the figures fail.
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:-gpu-check}
py=${PYTHON:-python}
mkdir -p "$out"
{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
  "$py" -c "import torch, mmcv, mmdet; from mmcv.ops import get_compiling_cuda_version as v; print('torch', torch.__version__, 'CUDA', torch.version.cuda, 'cuDNN', torch.backends.cudnn.version(), '| mmcv', mmcv.__version__, 'ops built with CUDA', v(), '| mmdet', mmdet.__version__)"
  "$py" tools/offline_install.py check
} 2>&1 | tee "$out/env.txt"
check=${PIPESTATUS[0]}  # the group's status: that of the check, its last
"$py" -m pytest -q -rs -p no:cacheprovider -k cuda \
    tests/test_eca_resnet_equivalence.py tests/test_amp_training.py \
    2>&1 | tee "$out/tests.txt"
tests=${PIPESTATUS[0]}
"$py" tools/analysis/device_figures.py --device cuda \
    --json "$out/figures.json" 2>&1 | tee "$out/figures.txt"
figures=${PIPESTATUS[0]}
echo "gpu_check: check exit $check, tests exit $tests, figures exit $figures"
exit $(( check || tests || figures ))
