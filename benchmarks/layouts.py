"""Why minicnn's im2col columns are (C, KH, KW, N, OH, OW): a comparison on raw arrays.

    PYTHONPATH=. python benchmarks/layouts.py --threads 1 --clock cpu --reps 11

minicnn's layout (C, KH, KW, N, OH, OW) against DeZero/Chainer's (N, C, KH, KW, OH, OW), both written
the same way (a loop over the KH·KW taps, one strided copy or ``+=`` each): im2col alone, col2im alone,
and a whole conv step (forward + gx, gW, gb) — minicnn's single GEMM per group against one GEMM per
image plus a sum over N for gW. Results in benchmarks/README.md, "Column layouts".
"""
import argparse
import statistics

import numpy as np

from bench import LAYERS, restart_with_threads, timer

LAYOUT_CASES = {   # the im2col anchor cases, in the same tuple form as bench.LAYERS
    "32,64,32 k3 s1 p1": (32, 64, 32, 32, 64, (3, 3), 1, 1, 1),
    "8,3,227 k11 s4 p0": (8, 3, 227, 227, 96, (11, 11), 4, 0, 1),
    "8,64,56 k3 s1 p1": (8, 64, 56, 56, 64, (3, 3), 1, 1, 1),
}


def _windows(k, s, O):
    """(tap, (row slice, column slice)) of the padded input for each kernel tap."""
    return [((i, j), (slice(i, i + s[0] * (O[0] - 1) + 1, s[0]), slice(j, j + s[1] * (O[1] - 1) + 1, s[1])))
            for i in range(k[0]) for j in range(k[1])]


def im2col_nc(x, k, s, p, O):
    """im2col into (N, C, KH, KW, OH, OW): the same kernel-offset loop, batch axis first."""
    N, C, H, W = x.shape
    padded = np.zeros((N, C, H + 2 * p[0], W + 2 * p[1]), x.dtype)
    padded[:, :, p[0]:p[0] + H, p[1]:p[1] + W] = x
    col = np.empty((N, C, *k, *O), x.dtype)
    for (i, j), (rows, cols) in _windows(k, s, O):
        col[:, :, i, j] = padded[:, :, rows, cols]
    return col


def col2im_nc(col, x_shape, k, s, p, O):
    N, C, H, W = x_shape
    padded = np.zeros((N, C, H + 2 * p[0], W + 2 * p[1]), col.dtype)
    for (i, j), (rows, cols) in _windows(k, s, O):
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
    """minicnn's layout: the GEMMs of Conv2dFunction without the autograd wrapping."""
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


def compare_layouts(reps, clock):
    from minicnn.functional.im2col import as_pair, col2im, conv_output_size, im2col
    print(f"column layouts, float32, median of {reps} interleaved runs, ms "
          f"(C-first = minicnn's (C, KH, KW, N, OH, OW); N-first = (N, C, KH, KW, OH, OW))")
    print(f"{'case':18s} {'im2col C-first':>14s} {'N-first':>8s} {'col2im C-first':>15s} {'N-first':>8s} "
          f"{'conv step C-first':>18s} {'N-first':>8s}")
    for name, (N, C, H, W, Cout, k, s, p, G) in {**LAYOUT_CASES, **LAYERS}.items():
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
        times = [[timer(step, clock) for step in steps] for _ in range(reps)]
        medians = [statistics.median(t[i] for t in times) * 1e3 for i in range(len(steps))]
        print(f"{name:18s} {medians[0]:14.1f} {medians[1]:8.1f} {medians[2]:15.1f} {medians[3]:8.1f} "
              f"{medians[4]:18.1f} {medians[5]:8.1f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=11)
    parser.add_argument("--threads", type=int, default=0, help="BLAS threads (default: all cores)")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall")
    args = parser.parse_args()
    restart_with_threads(args.threads)
    compare_layouts(args.reps, args.clock)


if __name__ == "__main__":
    main()
