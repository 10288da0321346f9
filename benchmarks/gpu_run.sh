#!/usr/bin/env bash
# Everything issue 7 asks of an NVIDIA GPU, in one call (a lent GPU comes with little device time):
# the GPU half of the test suite, then the GPU benchmark rows with TF32 off (the targets) and on.
#
#     benchmarks/gpu_run.sh [OUTDIR]          # default OUTDIR: gpu-results/ (on the device tool: "$OUT")
#
# Each step writes its own file in OUTDIR and a failing step does not stop the next. Needs CuPy and
# PyTorch with CUDA; installs nothing (the device machine has no network).
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:-gpu-results}
mkdir -p "$out"
export PYTHONPATH=.${PYTHONPATH:+:$PYTHONPATH}
{
    date -u
    nvidia-smi
    python -c "import cupy, numpy, torch; print('cupy', cupy.__version__, 'numpy', numpy.__version__, 'torch', torch.__version__)"
    git log -1 --format='commit %H %s' 2>/dev/null
} > "$out/machine.txt" 2>&1
python -m pytest -m gpu -q -p no:cacheprovider --continue-on-collection-errors > "$out/gpu-tests.txt" 2>&1
echo "exit status $?" >> "$out/gpu-tests.txt"
python benchmarks/bench.py --device cuda --gemm --reps 15 > "$out/bench-cuda.txt" 2>&1
echo "exit status $?" >> "$out/bench-cuda.txt"
python benchmarks/bench.py --device cuda --tf32 --layers --steps resnet50 --reps 15 > "$out/bench-cuda-tf32.txt" 2>&1
echo "exit status $?" >> "$out/bench-cuda-tf32.txt"
tail -n 3 "$out"/*.txt
