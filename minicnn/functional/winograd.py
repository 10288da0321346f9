"""Winograd's minimal filtering F(m×m, 3×3) (m = 4 or 2) and F(1×2, 1×7): stride-1 convolutions with fewer multiplications.

Why. On the CPU a convolution done as im2col + GEMM is bounded by how fast BLAS multiplies: 9 multiply-
adds per input channel per output pixel. Winograd (Lavin & Gray, "Fast Algorithms for Convolutional
Neural Networks", 2015) computes an m×m block of outputs of a 3×3 filter from the L×L block of input
around it (L = m + 2) with L² multiplications instead of 9·m², by moving both into a transformed space
where the convolution becomes an elementwise product:

    Y = Aᵀ [ (G g Gᵀ) ⊙ (Bᵀ d B) ] A        d: L×L input tile, g: 3×3 filter, Y: m×m output tile

F(4×4, 3×3) (the default) needs 36 products per 16 outputs, 4× fewer than the direct 144; F(2×2, 3×3)
needs 16 per 4, 2.25× fewer. The matrices come from ``toom_cook.py`` (they are Lavin & Gray's): for
m = 2 their entries are 0, ±1/2, ±1; for m = 4 they come from the points 0, ±1, ±2 and reach 8.

Summed over the input channels, the L² positions ξ of the transformed tile are L² independent matrix
products — the GEMMs that do the work (P = N·⌈OH/m⌉·⌈OW/m⌉ tiles):

    V[ξ] = (Bᵀ d B)[ξ]       (P, C)        every tile of every image, channels last
    U[ξ] = (G g Gᵀ)[ξ]       (C, Cout)     the filters, transformed once per call
    M[ξ] = V[ξ] · U[ξ]       (P, Cout)     L² GEMMs
    y    = Aᵀ M A, tile by tile

How the transforms run. Input tiles overlap by 2 pixels (a tile every m pixels). The padded input is
first copied channels last, rows outermost (``_planes``: (rows, n, columns, C)). Bᵀ along the rows of
every tile is then a GEMM per tile row — its L input rows are L consecutive rows of that array, each a
long contiguous run — and B along the columns a GEMM (L×L)·(L×C) per tile, both handed to BLAS as
one strided batch (``np.matmul`` of a view: no copy of the overlapping tiles). The output transform is
two GEMMs (Aᵀ along a, then along b: ξ is the outermost axis of M) and two copies back to NCHW (the
tiles interleaved channels last, then one transposing copy). (Written instead as sums and differences
of whole arrays, the column transform took 3.6× as long.) Each thread works through its images ~1 MiB
of V at a time, so that the transforms' passes stay in its core's L2 cache. Exactness:
the identity holds for every d and g, so in float64 the result equals the direct convolution to
~1e-14. In float32 the larger coefficients of F(4×4) cost accuracy: its largest error is 5–30×
im2col's (measured: 2e-6 to 1.5e-5 of max|y| for 16–256 channels, im2col 2e-7 to 7e-7), as in every
F(4×4) implementation; F(2×2)'s is about im2col's. ``WinogradConv2dFunction(m=...)`` chooses.

Backward. y is linear in g through U, so the gradients are the adjoints of the same steps:

    gM    = A gY Aᵀ, tile by tile     (the output transform run backwards: two GEMMs)
    gU[ξ] = V[ξ]ᵀ · gM[ξ]             (C, Cout), L² GEMMs over the tiles
    gW    = Gᵀ gU G
    gx    = the stride-1 conv of gy with the flipped, channel-swapped kernel (``Conv2dFunction``), which
            is itself a 3×3 stride-1 conv, so it runs through Winograd too.

1×7 and 7×1 (Inception-v3's factorised 7×7). The 2-D algorithm is the 1-D F(m, r) applied along each
axis (B, G and A above are one axis' matrices, used on both sides). Along an axis whose kernel is 1
long it is the trivial F(1, 1) (all matrices [[1]], no transform), so a 1×7 conv is F(1×2, 1×7): tiles
of 1×8 inputs, 8 products per 2 outputs instead of 14 (1.75× fewer), with F(2, 7)'s matrices from the
points 0, ±1, ±2, ±1/2 (coefficients up to 5.25: float32 error 1.5–7× im2col's, measured). Every step
below is written for a (rows, columns) pair of such 1-D algorithms (``_Axis``), and skips the axis of
F(1, 1). A 1×7 conv runs as the 7×1 conv of the images with H and W swapped (views): along the rows
its input transform is one GEMM per tile row instead of one per tile. F(3, 7) would save more but its
float32 error is 10–60× im2col's.

As in ``Conv2dFunction`` (whose docstring explains it), the batch is shared out between the CPU
threads and each thread works through its images a few at a time, so that a chunk's V and M stay
near the cache; backward makes V again from x (cheaper than keeping 2.25× x alive). The chunks' buffers
and U are a per-thread workspace kept between calls (``parallel.workspace``). The transforms are memory
passes and the filter transform a fixed cost per call, so it pays only when the GEMMs are wide and
many: ``conv2d`` takes this route for 3×3, 1×7 and 7×1 kernels (``TILES``), stride 1, dilation 1,
one group, padding ≤ kernel − 1, float32 or float64, on the CPU, with at least ``min_channels``
channels in and out (counted as fewer where the tiles overhang the output), outputs of at least
``min_output_size`` and ``min_tiles_per_thread`` tiles per CPU thread, with the tile size that needs
fewer products (``WinogradConv2dFunction.choose``); the GPU keeps im2col + cuBLAS.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.lib.stride_tricks import as_strided

from .. import parallel
from .conv import Conv2dFunction
from .toom_cook import matrices

__all__ = ["WinogradConv2dFunction", "TILES"]

# The kernels this module takes, and for each the output tiles m it has (along every axis whose kernel
# is longer than 1; the first is the default). F(3, 7) and larger tiles of a 7-tap kernel exist too,
# but their float32 error is 10–60× im2col's (F(2, 7): 3–8×).
TILES = {(3, 3): (4, 2), (1, 7): (2,), (7, 1): (2,)}


class _Axis(NamedTuple):
    """F(m, r) along one axis (rows or columns), L = m + r − 1 inputs per tile: Bᵀ (L×L), G (L×r), Aᵀ (m×L)."""
    m: int
    r: int
    BT: np.ndarray
    G: np.ndarray
    AT: np.ndarray

    @property
    def L(self):
        return self.m + self.r - 1


def _axis_pair(m, kernel, dtype):
    """(rows, columns): F(m, r) along an axis whose kernel is r > 1 long, the trivial F(1, 1) along one of 1."""
    return tuple(_Axis(1 if r == 1 else m, r, *matrices(1 if r == 1 else m, r, np.dtype(dtype))) for r in kernel)


def _channel_blocks(a, C):
    """The channel slices in which to copy between NCHW array ``a`` and a channels-last one: all at
    once, or 16 at a time when a's channel stride is a multiple of 4 KiB (32×32 float32 maps), where
    a transposing copy reads or writes addresses that all fall in the same cache sets and runs 3×
    slower (measured: 0.83 against 0.26 ms for 4 images of 64×32×32)."""
    if a.strides[1] % 4096:
        return [slice(None)]
    return [slice(c, c + 16) for c in range(0, C, 16)]


def _planes(x, padding, planes):
    """planes[h, n, w, c] = x_padded[n, c, h, w]: the zero-padded input channels last, rows outermost,
    (a.m·th + a.r − 1, n, b.m·tw + b.r − 1, C) (zeros also below and right of the padding, where the
    last tiles stick out)."""
    (PH, PW), (H, W) = padding, x.shape[2:]
    planes[:PH], planes[PH + H:], planes[:, :, :PW], planes[:, :, PW + W:] = 0, 0, 0, 0
    target, source = planes[PH:PH + H, :, PW:PW + W], x.transpose(2, 0, 3, 1)   # (H, n, W, C)
    for c in _channel_blocks(x, x.shape[1]):
        target[..., c] = source[..., c]


def _input_transform(x, padding, axes, tiles, scratch, V):
    """V[α, i, n, j, β, c] = (Bᵀ d B)[α, β] of the tile d whose corner is x_padded[n, c, a.m·i, b.m·j]:
    Bᵀ along the rows (one GEMM per tile row), then B along the columns (one per tile row and column);
    nothing to do along an axis of F(1, 1)."""
    (a, b), (n, C), (th, tw), s = axes, x.shape[:2], tiles, x.itemsize
    Wp = b.m * tw + b.r - 1
    planes = scratch.get("planes", (a.m * th + a.r - 1, n, Wp, C), x.dtype)
    _planes(x, padding, planes)
    R = n * Wp * C                                                # one row of planes
    windows = as_strided(planes, (th, a.L, R), (a.m * R * s, R * s, s))
    if b.L == 1:                    # a 7×1 kernel: the rows' transform is V
        np.matmul(a.BT, windows, out=V.reshape(a.L, th, R).transpose(1, 0, 2))
        return
    if a.L == 1:                    # a 1×7 kernel: the rows are the planes
        rows = planes
    else:
        rows = scratch.get("rows", (th, a.L, n, Wp, C), x.dtype)
        np.matmul(a.BT, windows, out=rows.reshape(th, a.L, R))
    columns = as_strided(rows, (th, a.L, n, tw, b.L, C), (a.L * R * s, R * s, Wp * C * s, b.m * C * s, C * s, s))
    np.matmul(b.BT, columns, out=V.transpose(1, 0, 2, 3, 4, 5))


def _by_position(V):
    """V (La, th, n, tw, Lb, C) as (La, Lb, P, C): V[ξ] (P, C) for each position ξ = (α, β) of the tile (a view)."""
    La, Lb, C = V.shape[0], V.shape[-2], V.shape[-1]
    return V.reshape(La, -1, Lb, C).transpose(0, 2, 1, 3)


def _output_transform(M, axes, scratch, out, bias=None):
    """out (n, Cout, OH, OW) = Aᵀ M A tile by tile (+ bias), from M (La, Lb, th, n, tw, Cout)."""
    (a, b), (th, n, tw, Cout) = axes, M.shape[2:]
    Q = th * n * tw * Cout
    if a.L == 1:
        rows = M.reshape(1, b.L * Q)
    else:
        rows = scratch.get("out_rows", (a.m, b.L * Q), M.dtype)
        np.matmul(a.AT, M.reshape(a.L, b.L * Q), out=rows)        # Aᵀ along α …
    if b.L == 1:
        Y = rows
    else:
        Y = scratch.get("out_tiles", (a.m, b.m, Q), M.dtype)
        np.matmul(b.AT, rows.reshape(a.m, b.L, Q), out=Y)         # … then along β
    # out[n, f, a.m·i + r, b.m·j + s] = Y[r, s, i, n, j, f] (the last tile may stick out), in two copies
    # that each read or write whole runs: the tiles interleaved channels last, then to channels first
    # (2–4.6× faster than one strided copy per (r, s), measured for 56×56 and 4×4 maps).
    Y = Y.reshape(a.m, b.m, th, n, tw, Cout)
    Z = scratch.get("out_nhwc", (n, th, a.m, tw, b.m, Cout), M.dtype)
    np.copyto(Z, Y.transpose(3, 2, 0, 4, 1, 5))
    OH, OW = out.shape[2:]
    source = Z.reshape(n, th * a.m, tw * b.m, Cout)[:, :OH, :OW].transpose(0, 3, 1, 2)   # (n, Cout, OH, OW)
    for c in _channel_blocks(out, Cout):
        if bias is None:
            out[:, c] = source[:, c]
        else:
            np.add(source[:, c], bias[c].reshape(-1, 1, 1), out=out[:, c])


def _output_transform_adjoint(gy, axes, tiles, scratch, gM):
    """gM = A gY Aᵀ tile by tile (the adjoint of ``_output_transform``), gM (La, Lb, th, n, tw, Cout)."""
    (a, b), (n, Cout), (th, tw) = axes, gy.shape[:2], tiles
    gY = scratch.get("out_tiles", (a.m, b.m, th, n, tw, Cout), gy.dtype)
    # gY[r, s, i, n, j, f] = gy[n, f, a.m·i + r, b.m·j + s] (0 outside): channels last, then the tiles
    # taken apart, the two copies of _output_transform in reverse.
    Z = scratch.get("out_nhwc", (n, th * a.m, tw * b.m, Cout), gy.dtype)
    OH, OW = gy.shape[2:]
    Z[:, OH:], Z[:, :, OW:] = 0, 0
    target = Z[:, :OH, :OW].transpose(0, 3, 1, 2)                                     # (n, Cout, OH, OW)
    for c in _channel_blocks(gy, Cout):
        target[:, c] = gy[:, c]
    np.copyto(gY, Z.reshape(n, th, a.m, tw, b.m, Cout).transpose(2, 4, 1, 0, 3, 5))
    Q = th * n * tw * Cout
    if b.L == 1:
        np.matmul(a.AT.T, gY.reshape(a.m, Q), out=gM.reshape(a.L, Q))
        return
    rows = gM if a.L == 1 else scratch.get("out_rows", (a.m, b.L * Q), gy.dtype)
    np.matmul(b.AT.T, gY.reshape(a.m, b.m, Q), out=rows.reshape(a.m, b.L, Q))   # A along s …
    if a.L > 1:
        np.matmul(a.AT.T, rows, out=gM.reshape(a.L, b.L * Q))                # … then along r


def _kron_G(axes):
    a, b = axes
    return np.kron(a.G, b.G)                   # (La·Lb, KH·KW): U[(α, β)] = Σ (G⊗G)[(α, β), (k, l)]·g[k, l]


def _channel_shares(C, Cout, K):
    """The input channels cut into one slice per thread for the filter transforms (a few MiB each,
    run on one thread they took ~1/5 of a 256-channel layer step on two threads)."""
    return parallel.split(C, Cout * K, 2 ** 16)


def _weight_transform(weight, axes, U):
    """U = G g Gᵀ for every filter, laid out (La, Lb, C, Cout) for the GEMMs M[ξ] = V[ξ]·U[ξ]: one GEMM
    (La·Lb, KH·KW)·(KH·KW, C·Cout) with G ⊗ G, into the buffer U, its columns shared out between the
    threads by input channel."""
    Cout, C, KH, KW = weight.shape
    G, rows = _kron_G(axes), U.reshape(-1, C * Cout)

    def transform_share(channels):           # taps (KH·KW, c, Cout) of these input channels, then the GEMM
        taps = np.ascontiguousarray(weight[:, channels].reshape(Cout, -1, KH * KW).transpose(2, 1, 0))
        np.matmul(G, taps.reshape(KH * KW, -1), out=rows[:, channels.start * Cout:channels.stop * Cout])
    parallel.run(transform_share, _channel_shares(C, Cout, KH * KW))
    return U


def _weight_transform_adjoint(gU, axes):
    """gW = Gᵀ gU G, from the shares' parts gU (S, La·Lb, C, Cout), summed, to (Cout, C, KH, KW): the
    transpose of the GEMM above, shared out between the threads by input channel as it is."""
    (a, b), (S, _, C, Cout) = axes, gU.shape
    G_t, gW = _kron_G(axes).T, np.empty((Cout, C, a.r, b.r), dtype=gU.dtype)

    def adjoint_share(channels):
        part = gU[0, :, channels]                                         # (La·Lb, c, Cout), a view
        for k in range(1, S):
            part += gU[k, :, channels]
        taps = np.matmul(G_t, part.reshape(a.L * b.L, -1))                 # (KH·KW, c·Cout)
        gW[:, channels] = taps.reshape(a.r, b.r, -1, Cout).transpose(3, 2, 0, 1)
    parallel.run(adjoint_share, _channel_shares(C, Cout, a.r * b.r))
    return gW


class WinogradConv2dFunction(Conv2dFunction):
    """conv2d of a 3×3, 1×7 or 7×1 kernel (``TILES``), stride 1, dilation 1, one group, on the CPU, by
    Winograd F(m×m, 3×3), F(1×m, 1×7) or F(m×1, 7×1); the math is in this module's docstring. ``m``:
    for 3×3, 4 (F(4×4, 3×3), the default: 4× fewer multiplications, float32 error ~20× im2col's) or 2
    (F(2×2, 3×3): 2.25× fewer, float32 error as im2col's); for 1×7 and 7×1, 2 (1.75× fewer, float32
    error 3–8× im2col's). ``chunk_bytes`` bounds one chunk's transformed input V (La·Lb·C·tiles
    floats) and ``min_chunk_tiles`` makes the GEMMs at least that wide. 1 MiB, about a core's L2
    cache, keeps the transforms' passes there: against 4 MiB, layer steps took 0.82–0.87× the time
    for 64 channels at 56×56 (batch 8), 0.87–0.91× for 1×7 and 7×1 at 17×17, 0.93–1.07× elsewhere."""

    m = None
    chunk_bytes = 2 ** 20
    min_chunk_tiles = 128
    # Where conv2d takes this route, for each (kernel, m) (``choose``; measured with
    # benchmarks/winograd.py on 2 cores, benchmarks/README.md "Winograd"). Per step, the transforms of
    # x and y (memory passes) grow with C + Cout and the GEMMs they save with C·Cout, so narrow layers
    # lose (32–48 channels: F(4×4) takes im2col's time); the filter transforms are a fixed cost per call
    # (La·Lb·C·Cout floats, three per step), so few tiles per thread lose too (512 channels at 7×7,
    # batch 8: 16 F(4×4) tiles per thread, 1.2–1.6× im2col's time; 64 F(2×2) tiles, 0.8–1.6×). Set them
    # to 0 to send every eligible conv to Winograd.
    # Inception's 1×7 and 7×1 at 17×17 (benchmarks/README.md, "1-D Winograd"): F(2, 7) took 0.93–0.96×
    # im2col's time with 128–192 channels, batch 8–32, on 2 threads (0.87–0.91× on one), 1.02× with 64.
    # Tiles that overhang the output (``choose``: the threshold is on min(C, Cout)·useful²), measured
    # in session 9 on 2 threads, whole step, Winograd F(4×4) time / im2col's: 64 channels at 8×8, 12×12,
    # 28×28 (tiles fit) 0.75, 0.94, 0.78; at 7×7 and 14×14 (useful 0.77) 1.12–1.24 and 1.04–1.14; at
    # 7×7 96 channels 1.07, 128 0.95. 1×7 at 17×17 (useful 17/18): 128 channels 0.95–0.96, 96 1.10,
    # hence 112 for the 1-D tiles (128·0.944² = 114).
    min_channels = {((3, 3), 4): 64, ((3, 3), 2): 128, ((1, 7), 2): 112, ((7, 1), 2): 112}
    min_output_size = {((3, 3), 4): 4, ((3, 3), 2): 4, ((1, 7), 2): 4, ((7, 1), 2): 4}
    min_tiles_per_thread = {((3, 3), 4): 64, ((3, 3), 2): 128, ((1, 7), 2): 128, ((7, 1), 2): 128}
    # Between F(4×4) and F(2×2) (``choose``): 64 tiles' worth of products for the filter transforms fits
    # every measured pair — 256→256 at 14×14, batch 8: 64 F(4×4) tiles per thread (a 16×16 cover of
    # 14×14) against 196 F(2×2) tiles, F(2×2) faster (0.72 against 0.82× im2col's time); 512→512 at
    # 4×4, batch 128: 64 against 256, F(4×4) faster (0.50 against 0.60).
    fixed_cost_tiles = 64

    def __init__(self, stride=1, padding=0, dilation=1, groups=1, m=None):
        super().__init__(stride, padding, dilation, groups)
        self.m = type(self).m if m is None else m
        tiles = sorted({t for ts in TILES.values() for t in ts})
        if self.m is not None and self.m not in tiles:
            raise ValueError(f"WinogradConv2dFunction: m (the output tile) must be one of {tiles}, got {m!r}")

    @classmethod
    def choose(cls, x, weight, stride, padding, dilation, groups):
        """The output tile m with which conv2d should take this route for these arguments (the pairs
        as from ``as_pair``); None: not this route (im2col). Of the tile sizes whose thresholds hold,
        the one with the fewest products per thread, La·Lb·(tiles per thread + ``fixed_cost_tiles``):
        the second term stands for the filter transforms, a cost per call, not per tile. The channel
        threshold counts min(C, Cout)·useful², useful = the fraction of the tiles' outputs that are kept
        (7×7 or 14×14 in F(4×4) tiles of 8×8 or 16×16: 0.77), since every product and transform is
        paid for the whole tile."""
        kernel = tuple(weight.shape[2:])
        if not (isinstance(x, np.ndarray) and x.ndim == weight.ndim == 4 and kernel in TILES
                and stride == (1, 1) and dilation == (1, 1) and groups == 1
                and all(p <= k - 1 for p, k in zip(padding, kernel))
                and x.dtype in (np.float32, np.float64) and x.dtype == weight.dtype
                and x.shape[1] == weight.shape[1]):
            return None
        N, (OH, OW) = x.shape[0], (size + 2 * p - k + 1 for size, p, k in zip(x.shape[2:], padding, kernel))
        threads = max(1, min(parallel.get_num_threads(), N))
        cost = {}
        for m in TILES[kernel]:
            (ma, mb), key = (1 if k == 1 else m for k in kernel), (kernel, m)
            tiles_per_thread = N * -(-OH // ma) * -(-OW // mb) / threads
            useful = OH * OW / (-(-OH // ma) * ma * -(-OW // mb) * mb)     # outputs kept / outputs computed
            if (min(x.shape[1], weight.shape[0]) * useful ** 2 >= cls.min_channels[key]
                    and min(OH, OW) >= cls.min_output_size[key] and tiles_per_thread >= cls.min_tiles_per_thread[key]):
                La, Lb = (k - 1 + (1 if k == 1 else m) for k in kernel)
                cost[m] = La * Lb * (tiles_per_thread + cls.fixed_cost_tiles)
        return min(cost, key=cost.get) if cost else None     # a tie goes to the first (m = 4 for 3×3)

    def _sibling(self, padding):
        return type(self)(1, padding, self.dilation, self.groups, m=self.m)

    def _axes(self, weight):
        """The (rows, columns) algorithms for this weight's kernel; a ValueError for a kernel or tile it lacks."""
        kernel = tuple(weight.shape[2:])
        if kernel not in TILES:
            raise ValueError(f"WinogradConv2dFunction: kernels {', '.join(f'{h}×{w}' for h, w in TILES)} only, "
                             f"got {kernel[0]}×{kernel[1]}")
        m = TILES[kernel][0] if self.m is None else self.m
        if m not in TILES[kernel]:
            raise ValueError(f"WinogradConv2dFunction: a {kernel[0]}×{kernel[1]} kernel takes m in "
                             f"{list(TILES[kernel])}, got {m}")
        return _axis_pair(m, kernel, weight.dtype)

    def forward(self, x, weight, bias=None):
        with parallel.blas_held():          # the weight transform's GEMM, too, on one BLAS thread
            return self._forward(x, weight, bias)

    def backward(self, gy):
        with parallel.blas_held():
            return self._backward(gy)

    def _oriented(self, weight, *arrays):
        """(axes, arrays, padding) as this conv computes them: a 1×k kernel runs as the k×1 conv of the
        images with H and W swapped (views of the NCHW arrays), since F(m, r) along the rows (the outer
        axis of the transforms' layout) makes one GEMM per tile row where along the columns it makes one
        per tile (measured: 1×7 layer steps 0.93–0.97× the time they took with the column transform)."""
        axes = self._axes(weight)
        if weight.shape[2] == 1 and weight.shape[3] > 1:
            return axes[::-1], [a.swapaxes(2, 3) for a in arrays], self.padding[::-1]
        return axes, list(arrays), self.padding

    def _forward(self, x, weight, bias):
        self._check_shapes(x, weight, bias)
        N, (Cout, C), (OH, OW) = x.shape[0], weight.shape[:2], self._output_size(x, weight)
        out = np.empty((N, Cout, OH, OW), dtype=x.dtype)
        axes, (x_, weight_, out_), padding = self._oriented(weight, x, weight, out)
        a, b = axes
        U = parallel.workspace().get("U", (a.L, b.L, C, Cout), x.dtype)   # valid during this call
        _weight_transform(weight_, axes, U)

        def forward_share(share):
            for images, V, M, scratch in self._chunks(x_, Cout, share, axes, padding):
                np.matmul(_by_position(V), U, out=M.reshape(a.L, b.L, -1, Cout))
                _output_transform(M, axes, scratch, out_[images], bias)

        parallel.run(forward_share, self._shares(x, weight))
        self.x, self.weight = x, weight
        return out

    def _backward(self, gy):
        x, weight = self.x, self.weight
        needs_x, needs_w = self.needs_input_grad[:2]
        gW = None
        if needs_w:
            axes, (x_, gy_), padding = self._oriented(weight, x, gy)
            (a, b), (Cout, C) = axes, weight.shape[:2]

            shares = self._shares(x, weight)
            # One slot of gU per share (a worker thread may run two shares, so not per thread).
            gU = parallel.workspace().get("gU", (len(shares), a.L, b.L, C, Cout), gy.dtype)

            def weight_gradient_share(k_and_share):     # one share of the images: its part of gU
                k, share = k_and_share
                for images, V, gM, scratch in self._chunks(x_, Cout, share, axes, padding):   # V again from x
                    _output_transform_adjoint(gy_[images], axes, gM.shape[2:5:2], scratch, gM)
                    first = images.start == share.start
                    part = gU[k] if first else scratch.get("gU_part", gU.shape[1:], gU.dtype)
                    np.matmul(_by_position(V).transpose(0, 1, 3, 2), gM.reshape(a.L, b.L, -1, Cout), out=part)
                    if not first:
                        gU[k] += part
            parallel.run(weight_gradient_share, list(enumerate(shares)))
            gW = _weight_transform_adjoint(gU.reshape(len(shares), a.L * b.L, C, Cout), axes)
            if gW.shape[2:] != weight.shape[2:]:                       # back to the weight's orientation
                gW = np.ascontiguousarray(gW.swapaxes(2, 3))
        gx = self._input_gradient_by_convolution(gy, weight) if needs_x else None
        if len(self.needs_input_grad) == 2:
            return gx, gW
        return gx, gW, gy.sum(axis=(0, 2, 3)) if self.needs_input_grad[2] else None

    def _chunks(self, x, Cout, share, axes, padding):
        """Yield (images, V, M, scratch) for a few images of the share at a time: V (La, th, n, tw, Lb, C)
        their transformed input (``_by_position`` gives its (La, Lb, P, C) view), M a (La, Lb, th, n,
        tw, Cout) buffer for the products, scratch the thread's ``parallel.Workspace`` for the
        transforms' intermediate arrays. All of them live in this thread's workspace, reused from chunk
        to chunk and from call to call: valid until the next chunk."""
        (_, C, H, W), (PH, PW), (a, b) = x.shape, padding, axes
        th, tw = -(-(H + 2 * PH - a.r + 1) // a.m), -(-(W + 2 * PW - b.r + 1) // b.m)
        share_size = share.stop - share.start
        n = max(self.chunk_bytes // (a.L * b.L * C * th * tw * x.itemsize), -(-self.min_chunk_tiles // (th * tw)), 1)
        n = -(-share_size // -(-share_size // n))                     # chunks of equal size
        workspace = parallel.workspace()
        for start in range(share.start, share.stop, n):
            images = slice(start, min(start + n, share.stop))
            k = images.stop - start
            V = workspace.get("V", (a.L, th, k, tw, b.L, C), x.dtype)
            M = workspace.get("M", (a.L, b.L, th, k, tw, Cout), x.dtype)
            _input_transform(x[images], padding, axes, (th, tw), workspace, V)
            yield images, V, M, workspace
