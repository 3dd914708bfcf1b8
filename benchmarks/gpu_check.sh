#!/bin/bash
# The checks that need a CUDA GPU, in one script (what docs/gpu.md reports): the CUDA rollout kernel against
# torch on the real GPU (the test suite runs it on Numba's CUDA simulator), the rollout alone per backend,
# and the ant's default controller in closed loop on the CUDA and the Numba kernel (the same trajectory).
#     bash benchmarks/gpu_check.sh [OUT_DIR]
out=${1:-gpu-check}
mkdir -p "$out"
export PYTHONUNBUFFERED=1
{ nvidia-smi -L; nproc; python3 -c "import sys, numba, numpy, torch, mujoco; from numba import cuda
print(sys.version.split()[0], 'numba', numba.__version__, 'numpy', numpy.__version__, 'torch', torch.__version__,
      'mujoco', mujoco.__version__, 'cuda', cuda.is_available())"; } 2>&1 | tee "$out/machine.txt"
NUMBA_ENABLE_CUDASIM=0 python3 -m pytest -p no:cacheprovider tests/test_planners.py -k fused_rollouts 2>&1 \
  | tail -3 | tee "$out/kernels.txt"
python3 -m benchmarks.planner_speed --quick --robots ant 2>&1 | tee "$out/planner_speed.txt"
for backend in cuda numba; do
  python3 -m scripts.cli run ant --controller adaptive --task broken-leg-3 --steps 300 --mpc backend=$backend 2>&1 \
    | grep -E "latency|rollout" | tee "$out/run-$backend.txt"
done
