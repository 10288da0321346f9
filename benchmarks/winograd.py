"""Winograd F(4×4, 3×3) and F(2×2, 3×3) against im2col + GEMM, minicnn only: where does each win? (issue 7)

    PYTHONPATH=. python benchmarks/winograd.py                 # all cores (minicnn's threads)
    PYTHONPATH=. python benchmarks/winograd.py --threads 1     # one thread, minicnn and BLAS

One training step of a single 3×3 stride-1 "same" convolution on raw float32 arrays — forward, then
backward for gx and gW — by ``WinogradConv2dFunction`` with m = 4 and m = 2 and by ``Conv2dFunction``
(im2col), run interleaved with a pause before each run, median over the repetitions; ratios =
Winograd / im2col.
The shapes are those of ResNet's 3×3 layers (ResNet-18-small at batch 128, resnet8 at 64, single
layers at batch 8). What ``conv2d`` takes (``WinogradConv2dFunction.choose``) is printed beside each:
its thresholds come from this table.
"""
import argparse
import os
import statistics
import sys
import time

import numpy as np

import minicnn
from minicnn.functional.conv import Conv2dFunction
from minicnn.functional.winograd import WinogradConv2dFunction

SHAPES = [  # N, C (= Cout), H (= W)
    (8, 64, 56), (8, 256, 14), (8, 128, 28), (8, 512, 7), (32, 64, 28), (64, 32, 14), (64, 64, 7),
    (64, 256, 8), (128, 64, 32), (128, 128, 16), (128, 256, 8), (128, 512, 4),
]


class F4(WinogradConv2dFunction):
    m = 4


class F2(WinogradConv2dFunction):
    m = 2


def step(cls, x, w, gy):
    f = cls(1, 1)
    f.needs_input_grad = (True, True)
    f.forward(x, w)
    f.backward(gy)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=0, help="minicnn and BLAS threads (default: all cores)")
    parser.add_argument("--reps", type=int, default=7)
    parser.add_argument("--shapes", nargs="*", metavar="N,C,H", help="only these shapes (default: the list above)")
    parser.add_argument("--pause", type=float, default=0.02, help="seconds of idle before each run")
    args = parser.parse_args()
    if args.threads and os.environ.get("OPENBLAS_NUM_THREADS") != str(args.threads):
        for variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MINICNN_NUM_THREADS"):
            os.environ[variable] = str(args.threads)
        os.execv(sys.executable, [sys.executable, *sys.argv])     # BLAS fixes its threads at load
    print(f"{os.cpu_count()} cores, minicnn {minicnn.get_num_threads()} threads, numpy {np.__version__}; "
          f"float32, forward + gx + gW, median of {args.reps} interleaved runs, ms")
    print(f"{'N, C, H':16s} {'F(4×4)':>8s} {'F(2×2)':>8s} {'im2col':>8s} {'ratio 4':>8s} {'ratio 2':>8s}"
          f"   conv2d takes")
    rng = np.random.default_rng(0)
    shapes = [tuple(int(v) for v in shape.split(",")) for shape in args.shapes] if args.shapes else SHAPES
    for N, C, H in shapes:
        x = rng.standard_normal((N, C, H, H), dtype=np.float32)
        w = rng.standard_normal((C, C, 3, 3), dtype=np.float32) * 0.1
        gy = rng.standard_normal((N, C, H, H), dtype=np.float32)
        times = {F4: [], F2: [], Conv2dFunction: []}
        for cls in times:
            step(cls, x, w, gy)                                   # warm-up (workspaces, caches)
        for _ in range(args.reps):
            for cls in times:
                time.sleep(args.pause)
                start = time.perf_counter()
                step(cls, x, w, gy)
                times[cls].append(time.perf_counter() - start)
        four, two, theirs = (statistics.median(times[cls]) * 1e3 for cls in times)
        taken = WinogradConv2dFunction.choose(x, w, (1, 1), (1, 1), (1, 1), 1)
        print(f"{str((N, C, H)):16s} {four:8.1f} {two:8.1f} {theirs:8.1f} {four / theirs:8.2f} {two / theirs:8.2f}"
              f"   {f'F({taken}×{taken})' if taken else 'im2col'}", flush=True)


if __name__ == "__main__":
    main()
