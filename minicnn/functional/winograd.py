"""Winograd's minimal filtering F(m×m, 3×3), m = 4 or 2: a 3×3 stride-1 convolution with fewer multiplications.

Why. On the CPU a convolution done as im2col + GEMM is bounded by how fast BLAS multiplies: 9 multiply-
adds per input channel per output pixel. Winograd (Lavin & Gray, "Fast Algorithms for Convolutional
Neural Networks", 2015) computes an m×m block of outputs of a 3×3 filter from the L×L block of input
around it (L = m + 2) with L² multiplications instead of 9·m², by moving both into a transformed space
where the convolution becomes an elementwise product:

    Y = Aᵀ [ (G g Gᵀ) ⊙ (Bᵀ d B) ] A        d: L×L input tile, g: 3×3 filter, Y: m×m output tile

F(4×4, 3×3) (the default) needs 36 products per 16 outputs, 4× fewer than the direct 144; F(2×2, 3×3)
needs 16 per 4, 2.25× fewer. The matrices (Lavin & Gray's) are ``_BT``, ``_G`` and ``_AT`` below: for
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
two GEMMs (Aᵀ along a, then along b: ξ is the outermost axis of M) and a copy back to NCHW. (Written
instead as sums and differences of whole arrays, the column transform took 3.6× as long.) Exactness:
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

As in ``Conv2dFunction`` (whose docstring explains it), the batch is shared out between the CPU
threads and each thread works through its images a few at a time, so that a chunk's V and M stay
near the cache; backward makes V again from x (cheaper than keeping 2.25× x alive). The chunks' buffers
and U are a per-thread workspace kept between calls (``parallel.workspace``). The transforms are memory
passes and the filter transform a fixed cost per call, so it pays only when the GEMMs are wide and
many: ``conv2d`` takes this route for 3×3 kernels, stride 1, dilation 1, one group, padding ≤ 2,
float32 or float64, on the CPU, with at least ``min_channels`` channels in and out, outputs of at
least ``min_output_size`` and ``min_tiles_per_thread`` tiles per CPU thread, with the tile size that
needs fewer products (``WinogradConv2dFunction.choose``); the GPU keeps im2col + cuBLAS.
"""
from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

from .. import parallel
from .conv import Conv2dFunction

__all__ = ["WinogradConv2dFunction"]

_BT = {2: ((1, 0, -1, 0), (0, 1, 1, 0), (0, -1, 1, 0), (0, 1, 0, -1)),
       4: ((4, 0, -5, 0, 1, 0), (0, -4, -4, 1, 1, 0), (0, 4, -4, -1, 1, 0),
           (0, -2, -1, 2, 1, 0), (0, 2, -1, -2, 1, 0), (0, 4, 0, -5, 0, 1))}
_G = {2: ((1, 0, 0), (1 / 2, 1 / 2, 1 / 2), (1 / 2, -1 / 2, 1 / 2), (0, 0, 1)),
      4: ((1 / 4, 0, 0), (-1 / 6, -1 / 6, -1 / 6), (-1 / 6, 1 / 6, -1 / 6),
          (1 / 24, 1 / 12, 1 / 6), (1 / 24, -1 / 12, 1 / 6), (0, 0, 1))}
_AT = {2: ((1, 1, 1, 0), (0, 1, -1, -1)),
       4: ((1, 1, 1, 1, 1, 0), (0, 1, -1, 2, -2, 0), (0, 1, 1, 4, 4, 0), (0, 1, -1, 8, -8, 1))}


def _matrix(table, m, dtype):
    return np.array(table[m], dtype=dtype)


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
    (m·th + 2, n, m·tw + 2, C) (zeros also below and right of the padding, where the last tiles stick out)."""
    (PH, PW), (H, W) = padding, x.shape[2:]
    planes[:PH], planes[PH + H:], planes[:, :, :PW], planes[:, :, PW + W:] = 0, 0, 0, 0
    target, source = planes[PH:PH + H, :, PW:PW + W], x.transpose(2, 0, 3, 1)   # (H, n, W, C)
    for c in _channel_blocks(x, x.shape[1]):
        target[..., c] = source[..., c]


def _input_transform(x, padding, m, tiles, scratch, V):
    """V[a, i, n, j, b, c] = (Bᵀ d B)[a, b] of the tile d whose corner is x_padded[n, c, m·i, m·j]:
    Bᵀ along the rows (one GEMM per tile row), then B along the columns (one per tile row and column)."""
    (n, C), (th, tw), L, s = x.shape[:2], tiles, m + 2, x.itemsize
    Wp = m * tw + 2
    planes = scratch.get("planes", (m * th + 2, n, Wp, C), x.dtype)
    _planes(x, padding, planes)
    BT, R = _matrix(_BT, m, x.dtype), n * Wp * C                  # R: one row of planes
    rows = scratch.get("rows", (th, L, n, Wp, C), x.dtype)
    np.matmul(BT, as_strided(planes, (th, L, R), (m * R * s, R * s, s)), out=rows.reshape(th, L, R))
    columns = as_strided(rows, (th, L, n, tw, L, C), (L * R * s, R * s, Wp * C * s, m * C * s, C * s, s))
    np.matmul(BT, columns, out=V.transpose(1, 0, 2, 3, 4, 5))


def _by_position(V):
    """V (L, th, n, tw, L, C) as (L, L, P, C): V[ξ] (P, C) for each position ξ = (a, b) of the tile (a view)."""
    L, C = V.shape[0], V.shape[-1]
    return V.reshape(L, -1, L, C).transpose(0, 2, 1, 3)


def _output_transform(M, m, scratch, out, bias=None):
    """out (n, Cout, OH, OW) = Aᵀ M A tile by tile (+ bias), from M (L, L, th, n, tw, Cout)."""
    L, (th, n, tw, Cout) = m + 2, M.shape[2:]
    AT = _matrix(_AT, m, M.dtype)
    Q = th * n * tw * Cout
    rows = scratch.get("out_rows", (m, L * Q), M.dtype)
    np.matmul(AT, M.reshape(L, L * Q), out=rows)                  # Aᵀ along a …
    Y = scratch.get("out_tiles", (m, m, Q), M.dtype)
    np.matmul(AT, rows.reshape(m, L, Q), out=Y)                   # … then along b
    Y = Y.reshape(m, m, th, n, tw, Cout)
    for r in range(m):          # out[n, f, m·i + r, m·j + s] = Y[r, s, i, n, j, f] (the last tile may stick out)
        for s in range(m):
            target = out[:, :, r::m, s::m]
            source = Y[r, s, :target.shape[2], :, :target.shape[3]].transpose(1, 3, 0, 2)
            for c in _channel_blocks(out, Cout):
                if bias is None:
                    target[:, c] = source[:, c]
                else:
                    np.add(source[:, c], bias[c].reshape(-1, 1, 1), out=target[:, c])


def _output_transform_adjoint(gy, m, tiles, scratch, gM):
    """gM = A gY Aᵀ tile by tile (the adjoint of ``_output_transform``), gM (L, L, th, n, tw, Cout)."""
    (n, Cout), (th, tw), L = gy.shape[:2], tiles, m + 2
    gY = scratch.get("out_tiles", (m, m, th, n, tw, Cout), gy.dtype)
    if gy.shape[2] % m or gy.shape[3] % m:
        gY.fill(0)                     # gY[r, s, i, n, j, f] = gy[n, f, m·i + r, m·j + s] (0 outside)
    for r in range(m):
        for s in range(m):
            block = gy[:, :, r::m, s::m].transpose(2, 0, 3, 1)
            target = gY[r, s, :block.shape[0], :, :block.shape[2]]
            for c in _channel_blocks(gy, Cout):
                target[..., c] = block[..., c]
    A = _matrix(_AT, m, gy.dtype).T
    Q = th * n * tw * Cout
    rows = scratch.get("out_rows", (m, L * Q), gy.dtype)
    np.matmul(A, gY.reshape(m, m, Q), out=rows.reshape(m, L, Q))  # A along s …
    np.matmul(A, rows, out=gM.reshape(L, L * Q))                  # … then along r


def _kron_G(m, dtype):
    G = _matrix(_G, m, dtype)
    return np.kron(G, G)                                          # (L², 9): U[(a, b)] = Σ (G⊗G)[(a, b), (k, l)]·g[k, l]


def _weight_transform(weight, m, U):
    """U = G g Gᵀ for every filter, laid out (L², C, Cout) for the GEMMs M[ξ] = V[ξ]·U[ξ]: one GEMM
    (L², 9)·(9, C·Cout) with G ⊗ G, into the buffer U."""
    Cout, C = weight.shape[:2]
    taps = np.ascontiguousarray(weight.reshape(Cout, C, 9).transpose(2, 1, 0)).reshape(9, C * Cout)
    np.matmul(_kron_G(m, weight.dtype), taps, out=U.reshape(-1, C * Cout))
    return U


def _weight_transform_adjoint(gU, m):
    """gW = Gᵀ gU G, from gU (L², C, Cout) to (Cout, C, 3, 3): the transpose of the GEMM above."""
    _, C, Cout = gU.shape
    taps = np.matmul(_kron_G(m, gU.dtype).T, gU.reshape(-1, C * Cout))          # (9, C·Cout)
    return np.ascontiguousarray(taps.reshape(3, 3, C, Cout).transpose(3, 2, 0, 1))


class WinogradConv2dFunction(Conv2dFunction):
    """conv2d of a 3×3 kernel, stride 1, dilation 1, one group, on the CPU, by Winograd F(m×m, 3×3);
    the math is in this module's docstring. ``m``: 4 (F(4×4, 3×3), the default: 4× fewer
    multiplications, float32 error ~20× im2col's) or 2 (F(2×2, 3×3): 2.25× fewer, float32 error as
    im2col's). ``chunk_bytes`` bounds one chunk's transformed input V (L²·C·tiles floats) and
    ``min_chunk_tiles`` makes the GEMMs at least that wide."""

    m = 4
    chunk_bytes = 4 * 2 ** 20
    min_chunk_tiles = 128
    # Where conv2d takes this route, for each m (``choose``; measured with benchmarks/winograd.py on 2
    # cores, benchmarks/README.md "Winograd"). Per step, the transforms of x and y (memory passes)
    # grow with C + Cout and the GEMMs they save with C·Cout, so narrow layers lose (32–48 channels:
    # F(4×4) takes im2col's time); the filter transforms are a fixed cost per call (L²·C·Cout floats,
    # three per step), so few tiles per thread lose too (512 channels at 7×7, batch 8: 16 F(4×4) tiles
    # per thread, 1.2–1.6× im2col's time; 64 F(2×2) tiles, 0.8–1.6×). Set them to 0 to send every
    # eligible conv to F(4×4).
    min_channels = {4: 64, 2: 128}
    min_output_size = {4: 4, 2: 4}
    min_tiles_per_thread = {4: 64, 2: 128}
    # Between the two (``choose``): 64 tiles' worth of products for the filter transforms fits every
    # measured pair — 256→256 at 14×14, batch 8: 64 F(4×4) tiles per thread (a 16×16 cover of 14×14)
    # against 196 F(2×2) tiles, F(2×2) faster (0.72 against 0.82× im2col's time); 512→512 at 4×4,
    # batch 128: 64 against 256, F(4×4) faster (0.50 against 0.60).
    fixed_cost_tiles = 64

    def __init__(self, stride=1, padding=0, dilation=1, groups=1, m=None):
        super().__init__(stride, padding, dilation, groups)
        self.m = type(self).m if m is None else m
        if self.m not in _BT:
            raise ValueError(f"WinogradConv2dFunction: m (the output tile) must be one of {sorted(_BT)}, got {m!r}")

    @classmethod
    def choose(cls, x, weight, stride, padding, dilation, groups):
        """The output tile m with which conv2d should take this route for these arguments (the pairs
        as from ``as_pair``); None: not this route (im2col). Of the tile sizes whose thresholds hold,
        the one with the fewest products per thread, L²·(tiles per thread + ``fixed_cost_tiles``):
        the second term stands for the filter transforms, a cost per call, not per tile."""
        if not (isinstance(x, np.ndarray) and x.ndim == weight.ndim == 4 and weight.shape[2:] == (3, 3)
                and stride == (1, 1) and dilation == (1, 1) and groups == 1 and max(padding) <= 2
                and x.dtype in (np.float32, np.float64) and x.dtype == weight.dtype
                and x.shape[1] == weight.shape[1]):
            return None
        N, (OH, OW) = x.shape[0], (size + 2 * p - 2 for size, p in zip(x.shape[2:], padding))
        threads = max(1, min(parallel.get_num_threads(), N))
        cost = {}
        for m in (4, 2):
            tiles_per_thread = N * -(-OH // m) * -(-OW // m) / threads
            if (min(x.shape[1], weight.shape[0]) >= cls.min_channels[m] and min(OH, OW) >= cls.min_output_size[m]
                    and tiles_per_thread >= cls.min_tiles_per_thread[m]):
                cost[m] = (m + 2) ** 2 * (tiles_per_thread + cls.fixed_cost_tiles)
        return min(cost, key=cost.get) if cost else None     # a tie goes to m = 4

    def _sibling(self, padding):
        return type(self)(1, padding, self.dilation, self.groups, m=self.m)

    def forward(self, x, weight, bias=None):
        with parallel.blas_held():          # the weight transform's GEMM, too, on one BLAS thread
            return self._forward(x, weight, bias)

    def backward(self, gy):
        with parallel.blas_held():
            return self._backward(gy)

    def _forward(self, x, weight, bias):
        self._check_shapes(x, weight, bias)
        N, (Cout, C), (OH, OW), m = x.shape[0], weight.shape[:2], self._output_size(x, weight), self.m
        U = parallel.workspace().get("U", (m + 2, m + 2, C, Cout), x.dtype)   # valid during this call
        _weight_transform(weight, m, U)
        out = np.empty((N, Cout, OH, OW), dtype=x.dtype)

        def forward_share(share):
            for images, V, M, scratch in self._chunks(x, Cout, share):
                np.matmul(_by_position(V), U, out=M.reshape(m + 2, m + 2, -1, Cout))
                _output_transform(M, m, scratch, out[images], bias)

        parallel.run(forward_share, self._shares(x, weight))
        self.x, self.weight = x, weight
        return out

    def _backward(self, gy):
        x, weight, m = self.x, self.weight, self.m
        needs_x, needs_w = self.needs_input_grad[:2]
        gW = None
        if needs_w:
            Cout, C = weight.shape[:2]
            L = m + 2

            shares = self._shares(x, weight)
            # One slot of gU per share (a worker thread may run two shares, so not per thread).
            gU = parallel.workspace().get("gU", (len(shares), L, L, C, Cout), gy.dtype)

            def weight_gradient_share(k_and_share):     # one share of the images: its part of gU
                k, share = k_and_share
                for images, V, gM, scratch in self._chunks(x, Cout, share):   # V made again from x
                    _output_transform_adjoint(gy[images], m, gM.shape[2:5:2], scratch, gM)
                    first = images.start == share.start
                    part = gU[k] if first else scratch.get("gU_part", gU.shape[1:], gU.dtype)
                    np.matmul(_by_position(V).transpose(0, 1, 3, 2), gM.reshape(L, L, -1, Cout), out=part)
                    if not first:
                        gU[k] += part
            parallel.run(weight_gradient_share, list(enumerate(shares)))
            for k in range(1, len(shares)):
                gU[0] += gU[k]
            gW = _weight_transform_adjoint(gU[0].reshape(L * L, C, Cout), m)
        gx = self._input_gradient_by_convolution(gy, weight) if needs_x else None
        if len(self.needs_input_grad) == 2:
            return gx, gW
        return gx, gW, gy.sum(axis=(0, 2, 3)) if self.needs_input_grad[2] else None

    def _chunks(self, x, Cout, share):
        """Yield (images, V, M, scratch) for a few images of the share at a time: V (L, th, n, tw, L, C)
        their transformed input (``_by_position`` gives its (L, L, P, C) view), M a (L, L, th, n, tw, Cout) buffer for the products, scratch the
        thread's ``parallel.Workspace`` for the transforms' intermediate arrays. All of them live in
        this thread's workspace, reused from chunk to chunk and from call to call: valid until the
        next chunk."""
        (_, C, H, W), (PH, PW), m = x.shape, self.padding, self.m
        L = m + 2
        th, tw = -(-(H + 2 * PH - 2) // m), -(-(W + 2 * PW - 2) // m)
        share_size = share.stop - share.start
        n = max(self.chunk_bytes // (L * L * C * th * tw * x.itemsize), -(-self.min_chunk_tiles // (th * tw)), 1)
        n = -(-share_size // -(-share_size // n))                     # chunks of equal size
        workspace = parallel.workspace()
        for start in range(share.start, share.stop, n):
            images = slice(start, min(start + n, share.stop))
            k = images.stop - start
            V = workspace.get("V", (L, th, k, tw, L, C), x.dtype)
            M = workspace.get("M", (L, L, th, k, tw, Cout), x.dtype)
            _input_transform(x[images], self.padding, m, (th, tw), workspace, V)
            yield images, V, M, workspace
