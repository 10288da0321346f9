"""Forward + backward time of minicnn's conv2d against PyTorch's, float32 on the CPU.

    PYTHONPATH=. python benchmarks/bench_conv.py [--reps 15] [--warmup 3] [--case resnet ...]
    PYTHONPATH=. python benchmarks/bench_conv.py --threads 1 --clock cpu   # on a shared, busy machine
    PYTHONPATH=. python benchmarks/bench_conv.py --layouts      # why col is (C, KH, KW, N, OH, OW)

PyTorch is only the yardstick (``pip install torch``); minicnn never imports it. Each repetition runs
minicnn then torch back to back (interleaved, so a slow phase of the machine hits both), and the
median over repetitions is reported. One "step" = forward, then backward with a fixed random
upstream gradient, computing gx, gW and gb. GFLOP/s counts 3 GEMM-sized products per step
(forward, gx, gW), each 2·N·Cout·OH·OW·(C/G)·KH·KW flops, whatever the algorithm really does.

On a machine shared with other jobs wall-clock times swing by 2-3x; ``--threads 1 --clock cpu`` (one
BLAS/OpenMP thread on both sides, CPU time of the process) is the stable alternative, because a
single thread's CPU time does not include the time it waited for a core.
"""
import argparse
import os
import platform
import statistics
import sys
import time

import numpy as np

import minicnn
from minicnn.functional.conv import conv2d

# name: (N, C, H, W, Cout, kernel, stride, padding, groups)
CASES = {
    "resnet":    (8, 64, 56, 56, 64, (3, 3), 1, 1, 1),        # ResNet 64→64 3×3 at 56×56
    "conv14":    (8, 256, 14, 14, 256, (3, 3), 1, 1, 1),      # 256→256 3×3 at 14×14
    "alexnet":   (8, 3, 227, 227, 96, (11, 11), 4, 0, 1),     # AlexNet conv1
    "inception": (8, 192, 17, 17, 192, (1, 7), 1, (0, 3), 1),  # Inception-v3 1×7
    "depthwise": (8, 256, 14, 14, 256, (3, 3), 1, 1, 256),    # depthwise 3×3
}


def flops(N, C, H, W, Cout, kernel, stride, padding, groups):
    from minicnn.functional.im2col import as_pair, conv_output_size
    (KH, KW), (SH, SW), (PH, PW) = kernel, as_pair(stride), as_pair(padding)
    OH, OW = conv_output_size(H, KH, SH, PH), conv_output_size(W, KW, SW, PW)
    return 3 * 2 * N * Cout * OH * OW * (C // groups) * KH * KW


def make_steps(case, seed=0):
    import torch
    N, C, H, W, Cout, kernel, stride, padding, groups = case
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, C, H, W), dtype=np.float32)
    w = rng.standard_normal((Cout, C // groups, *kernel), dtype=np.float32) * 0.1
    b = rng.standard_normal(Cout, dtype=np.float32)

    mx, mw, mb = (minicnn.Tensor(a, requires_grad=True) for a in (x, w, b))
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    with torch.no_grad():
        y = torch.nn.functional.conv2d(tx, tw, tb, stride, padding, 1, groups)
    gy = rng.standard_normal(tuple(y.shape), dtype=np.float32)
    tgy = torch.tensor(gy)

    def minicnn_step():
        for t in (mx, mw, mb):
            t.grad = None
        conv2d(mx, mw, mb, stride, padding, 1, groups).backward(gy)

    def torch_step():
        for t in (tx, tw, tb):
            t.grad = None
        torch.nn.functional.conv2d(tx, tw, tb, stride, padding, 1, groups).backward(tgy)

    def check():
        minicnn_step()
        torch_step()
        for m, t in ((mx, tx), (mw, tw), (mb, tb)):
            np.testing.assert_allclose(m.grad.data, t.grad.numpy(), rtol=2e-3,
                                       atol=2e-3 * float(np.abs(t.grad.numpy()).max()))
    return minicnn_step, torch_step, check


# ---------------------------------------------------------------- column layouts ---------------
# minicnn's layout (C, KH, KW, N, OH, OW) against DeZero/Chainer's (N, C, KH, KW, OH, OW), on raw
# arrays: im2col alone, col2im alone, and a whole conv step (forward + gx, gW, gb).

LAYOUT_CASES = {   # the im2col anchor cases, in the same tuple form as CASES
    "32,64,32 k3 s1 p1": (32, 64, 32, 32, 64, (3, 3), 1, 1, 1),
    "8,3,227 k11 s4 p0": (8, 3, 227, 227, 96, (11, 11), 4, 0, 1),
    "8,64,56 k3 s1 p1": (8, 64, 56, 56, 64, (3, 3), 1, 1, 1),
}


def _windows(k, s, p, O):
    """(row slice, column slice) of the padded input for each kernel tap."""
    return [((i, j), (slice(i, i + s[0] * (O[0] - 1) + 1, s[0]), slice(j, j + s[1] * (O[1] - 1) + 1, s[1])))
            for i in range(k[0]) for j in range(k[1])]


def im2col_nc(x, k, s, p, O):
    """im2col into (N, C, KH, KW, OH, OW): the same kernel-offset loop, batch axis first."""
    N, C, H, W = x.shape
    padded = np.zeros((N, C, H + 2 * p[0], W + 2 * p[1]), x.dtype)
    padded[:, :, p[0]:p[0] + H, p[1]:p[1] + W] = x
    col = np.empty((N, C, *k, *O), x.dtype)
    for (i, j), (rows, cols) in _windows(k, s, p, O):
        col[:, :, i, j] = padded[:, :, rows, cols]
    return col


def col2im_nc(col, x_shape, k, s, p, O):
    N, C, H, W = x_shape
    padded = np.zeros((N, C, H + 2 * p[0], W + 2 * p[1]), col.dtype)
    for (i, j), (rows, cols) in _windows(k, s, p, O):
        padded[:, :, rows, cols] += col[:, :, i, j]
    return np.ascontiguousarray(padded[:, :, p[0]:p[0] + H, p[1]:p[1] + W])


def conv_step_nc(x, w, b, gy, k, s, p, G):
    """Per-image GEMMs: y[n] = W·col[n]; gW = Σ_n gy[n]·col[n]ᵀ; gcol[n] = Wᵀ·gy[n]."""
    (N, C), Cout, O = x.shape[:2], w.shape[0], gy.shape[2:]
    col = im2col_nc(x, k, s, p, O).reshape(N, G, -1, O[0] * O[1])
    W = w.reshape(G, Cout // G, -1)
    y = np.matmul(W, col).reshape(gy.shape) + b.reshape(Cout, 1, 1)
    g = gy.reshape(N, G, Cout // G, -1)
    gW = np.matmul(g, col.transpose(0, 1, 3, 2)).sum(axis=0).reshape(w.shape)
    np.matmul(W.transpose(0, 2, 1), g, out=col)
    gx = col2im_nc(col.reshape(N, C, *k, *O), x.shape, k, s, p, O)
    return y, gx, gW, gy.sum((0, 2, 3))


def conv_step_c(x, w, b, gy, k, s, p, G):
    """minicnn's layout, the GEMMs of Conv2dFunction without the autograd wrapping."""
    from minicnn.functional.im2col import col2im, im2col
    (N, C), Cout, O = x.shape[:2], w.shape[0], gy.shape[2:]
    col = im2col(x, k, s, p).reshape(G, -1, N * O[0] * O[1])
    W = w.reshape(G, Cout // G, -1)
    y = np.empty(gy.shape, x.dtype)
    np.add(np.matmul(W, col).reshape(Cout, N, *O).transpose(1, 0, 2, 3), b.reshape(Cout, 1, 1), out=y)
    g = np.ascontiguousarray(gy.transpose(1, 0, 2, 3)).reshape(G, Cout // G, -1)
    gW = np.matmul(col, g.transpose(0, 2, 1)).transpose(0, 2, 1).reshape(w.shape)
    np.matmul(W.transpose(0, 2, 1), g, out=col)
    gx = col2im(col.reshape(C, *k, N, *O), x.shape, k, s, p)
    return y, gx, gW, g.reshape(Cout, -1).sum(axis=1)


def compare_layouts(reps):
    from minicnn.functional.im2col import as_pair, col2im, conv_output_size, im2col
    print(f"column layouts, float32, median of {reps} interleaved runs, ms "
          f"(C-first = minicnn's (C, KH, KW, N, OH, OW); N-first = (N, C, KH, KW, OH, OW))")
    print(f"{'case':18s} {'im2col C-first':>14s} {'N-first':>8s} {'col2im C-first':>15s} {'N-first':>8s} "
          f"{'conv step C-first':>18s} {'N-first':>8s}")
    for name, (N, C, H, W, Cout, k, s, p, G) in {**LAYOUT_CASES, **CASES}.items():
        s, p = as_pair(s), as_pair(p)
        O = conv_output_size(H, k[0], s[0], p[0]), conv_output_size(W, k[1], s[1], p[1])
        rng = np.random.default_rng(0)
        x = rng.standard_normal((N, C, H, W), dtype=np.float32)
        w = rng.standard_normal((Cout, C // G, *k), dtype=np.float32)
        b = rng.standard_normal(Cout, dtype=np.float32)
        gy = rng.standard_normal((N, Cout, *O), dtype=np.float32)
        col_c, col_n = im2col(x, k, s, p), im2col_nc(x, k, s, p, O)
        for ours, theirs in zip(conv_step_c(x, w, b, gy, k, s, p, G), conv_step_nc(x, w, b, gy, k, s, p, G)):
            np.testing.assert_allclose(ours, theirs, rtol=1e-3, atol=1e-3 * float(np.abs(theirs).max()))
        steps = [lambda: im2col(x, k, s, p), lambda: im2col_nc(x, k, s, p, O),
                 lambda: col2im(col_c, x.shape, k, s, p), lambda: col2im_nc(col_n, x.shape, k, s, p, O),
                 lambda: conv_step_c(x, w, b, gy, k, s, p, G), lambda: conv_step_nc(x, w, b, gy, k, s, p, G)]
        times = [[timed(step) for step in steps] for _ in range(reps)]
        medians = [statistics.median(t[i] for t in times) * 1e3 for i in range(len(steps))]
        print(f"{name:18s} {medians[0]:14.1f} {medians[1]:8.1f} {medians[2]:15.1f} {medians[3]:8.1f} "
              f"{medians[4]:18.1f} {medians[5]:8.1f}")


# ---------------------------------------------------------------- minicnn vs torch -------------

clock = time.perf_counter


def timed(step):
    start = clock()
    step()
    return clock() - start


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=15)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--case", nargs="*", choices=sorted(CASES), default=list(CASES))
    parser.add_argument("--pause", type=float, default=0.2, help="seconds of idle before each timed run")
    parser.add_argument("--threads", type=int, default=0, help="BLAS/OpenMP threads (default: all cores)")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="cpu: process CPU time, meaningful with --threads 1 only")
    parser.add_argument("--layouts", action="store_true", help="compare column layouts instead")
    args = parser.parse_args()
    if args.threads and os.environ.get("OPENBLAS_NUM_THREADS") != str(args.threads):
        # NumPy's BLAS fixes its thread count when it loads: restart with the variables set.
        for variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[variable] = str(args.threads)
        os.execv(sys.executable, [sys.executable, *sys.argv])
    global clock
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    if args.layouts:
        return compare_layouts(args.reps)
    import torch
    torch.set_num_threads(args.threads or os.cpu_count())
    print(f"{cpu_model()}, {os.cpu_count()} cores; numpy {np.__version__}, "
          f"torch {torch.__version__} ({torch.get_num_threads()} threads); float32, forward+backward, "
          f"median of {args.reps}, {args.clock} clock")
    print(f"{'case':10s} {'minicnn ms':>11s} {'torch ms':>9s} {'ratio':>6s} {'minicnn GF/s':>13s} "
          f"{'torch GF/s':>11s}")
    for name in args.case:
        minicnn_step, torch_step, check = make_steps(CASES[name])
        check()
        for _ in range(args.warmup):
            minicnn_step(), torch_step()
        times = []
        for _ in range(args.reps):
            # The pause lets the other library's worker threads stop spin-waiting (OpenBLAS and
            # OpenMP both spin for a while after a parallel region), which would steal the cores.
            time.sleep(args.pause)
            ours = timed(minicnn_step)
            time.sleep(args.pause)
            times.append((ours, timed(torch_step)))
        ours = statistics.median(t for t, _ in times)
        theirs = statistics.median(t for _, t in times)
        gflop = flops(*CASES[name]) / 1e9
        print(f"{name:10s} {ours * 1e3:11.1f} {theirs * 1e3:9.1f} {ours / theirs:6.2f} "
              f"{gflop / ours:13.1f} {gflop / theirs:11.1f}")


if __name__ == "__main__":
    main()
