"""Winograd's minimal filtering F(2×2, 3×3): a 3×3 stride-1 convolution with 2.25× fewer multiplications.

Why. On the CPU a convolution done as im2col + GEMM is bounded by how fast BLAS multiplies: 9 multiply-
adds per input channel per output pixel. Winograd (Lavin & Gray, "Fast Algorithms for Convolutional
Neural Networks", 2015) computes a 2×2 block of outputs of a 3×3 filter from the 4×4 block of input
around it with 16 multiplications instead of 4·9 = 36, by moving both into a transformed space where
the convolution becomes an elementwise product:

    Y = Aᵀ [ (G g Gᵀ) ⊙ (Bᵀ d B) ] A        d: 4×4 input tile, g: 3×3 filter, Y: 2×2 output tile

          ⎡1  0 −1  0⎤         ⎡ 1    0    0 ⎤
    Bᵀ =  ⎢0  1  1  0⎥    G =  ⎢1/2  1/2  1/2⎥    Aᵀ = ⎡1  1  1  0⎤
          ⎢0 −1  1  0⎥         ⎢1/2 −1/2  1/2⎥         ⎣0  1 −1 −1⎦
          ⎣0  1  0 −1⎦         ⎣ 0    0    1 ⎦

Summed over the input channels, the 16 positions ξ of the transformed tile are 16 independent matrix
products — the GEMMs that do the work (P = N·⌈OH/2⌉·⌈OW/2⌉ tiles):

    V[ξ] = (Bᵀ d B)[ξ]       (P, C)        every tile of every image, channels last
    U[ξ] = (G g Gᵀ)[ξ]       (C, Cout)     the filters, transformed once per call
    M[ξ] = V[ξ] · U[ξ]       (P, Cout)     16 GEMMs
    y    = Aᵀ M A, tile by tile

Input tiles overlap by 2 pixels (a tile every 2 pixels). The padded input is first cut into its 4 (row
parity, column parity) planes, channels last: then every transform is a handful of whole-array
additions whose inner runs are long (a run of channels, or of tile columns × channels); in NCHW order
they would be one tile row long and ran 2–3× slower. Exactness: the identity holds for every d and g,
so the result equals the direct convolution up to rounding (the coefficients are 0, ±1/2, ±1:
F(2×2, 3×3) is the numerically tame member of the family).

Backward. y is linear in g through U, so the gradients are the adjoints of the same steps:

    gM    = A gY Aᵀ, tile by tile     (the output transform run backwards)
    gU[ξ] = V[ξ]ᵀ · gM[ξ]             (C, Cout), 16 GEMMs over the tiles
    gW    = Gᵀ gU G
    gx    = the stride-1 conv of gy with the flipped, channel-swapped kernel (``Conv2dFunction``), which
            is itself a 3×3 stride-1 conv, so it runs through Winograd too.

As in ``Conv2dFunction`` (whose docstring explains it), the batch is shared out between the CPU
threads and each thread works through its images a few at a time, so that a chunk's V and M stay
near the cache; backward makes V again from x (cheaper than keeping 4× x alive). The chunks' buffers
are a per-thread workspace kept between calls (``parallel.workspace``). Cost: 2.25× fewer multiplications
than im2col, but the transforms are memory passes, so it pays only when the GEMMs are wide: ``conv2d``
takes this route for 3×3 kernels, stride 1, dilation 1, one group, padding ≤ 2, float32 or float64,
on the CPU, with at least ``min_channels`` channels in and out, outputs of at least ``min_output_size``
and ``min_tiles_per_thread`` tiles per CPU thread (``WinogradConv2dFunction.applies``); the GPU keeps
im2col + cuBLAS.
"""
from __future__ import annotations

import numpy as np

from .. import parallel
from .conv import Conv2dFunction

__all__ = ["WinogradConv2dFunction"]

# The transforms as sums and differences: row i of a matrix is (indices added, indices subtracted).
_BT = (((0,), (2,)), ((1, 2), ()), ((2,), (1,)), ((1,), (3,)))      # Bᵀ: 4 inputs → 4
_AT = (((0, 1, 2), ()), ((1,), (2, 3)))                             # Aᵀ: 4 → 2 outputs
_A = (((0,), ()), ((0, 1), ()), ((0,), (1,)), ((), (1,)))            # A = the adjoint of Aᵀ: 2 → 4
_G = ((1.0, 0.0, 0.0), (0.5, 0.5, 0.5), (0.5, -0.5, 0.5), (0.0, 0.0, 1.0))


def _combine(row, term, out):
    """out = Σ term(i) for i in row's added indices − Σ term(i) for its subtracted ones (no temporaries)."""
    plus, minus = row
    if len(plus) >= 2:
        np.add(term(plus[0]), term(plus[1]), out=out)
        plus = plus[2:]
    elif plus and minus:
        np.subtract(term(plus[0]), term(minus[0]), out=out)
        plus, minus = (), minus[1:]
    elif plus:
        np.copyto(out, term(plus[0]))
        plus = ()
    else:
        np.negative(term(minus[0]), out=out)
        minus = minus[1:]
    for i in plus:
        out += term(i)
    for i in minus:
        out -= term(i)


def _channel_blocks(a, C):
    """The channel slices in which to copy between NCHW array ``a`` and a channels-last one: all at
    once, or 16 at a time when a's channel stride is a multiple of 4 KiB (32×32 float32 maps), where
    a transposing copy reads or writes addresses that all fall in the same cache sets and runs 3×
    slower (measured: 0.83 against 0.26 ms for 4 images of 64×32×32)."""
    if a.strides[1] % 4096:
        return [slice(None)]
    return [slice(c, c + 16) for c in range(0, C, 16)]


def _parity_planes(x, padding, tiles, planes):
    """planes[p, q, n, i, j, c] = x_padded[n, c, 2i + p, 2j + q]: the zero-padded input cut into its
    4 (row parity, column parity) planes, (2, 2, n, th + 1, tw + 1, C), channels last, so that the 4
    input rows (or columns) of every tile are 4 slices of planes whose inner runs are long."""
    (PH, PW), (th, tw) = padding, tiles
    planes.fill(0)
    x_last = x.transpose(0, 2, 3, 1)                              # (n, H, W, C), a view
    for p in range(2):
        for q in range(2):
            h0, w0 = (p - PH) % 2, (q - PW) % 2         # the first row / column of x of this parity
            i0, j0 = (h0 + PH) // 2, (w0 + PW) // 2     # … and where it lands in the plane
            source = x_last[:, h0::2, w0::2][:, :th + 1 - i0, :tw + 1 - j0]
            target = planes[p, q, :, i0:i0 + source.shape[1], j0:j0 + source.shape[2]]
            for c in _channel_blocks(x, x.shape[1]):
                target[..., c] = source[..., c]


def _input_transform(x, padding, tiles, scratch, V):
    """V[a, b, n, i, j, c] = (Bᵀ d B)[a, b] of the tile d whose corner is x_padded[n, c, 2i, 2j]."""
    (n, C), (th, tw) = x.shape[:2], tiles
    planes = scratch.get("planes", (2, 2, n, th + 1, tw + 1, C), x.dtype)
    rows = scratch.get("rows", (4, 2, n, th, tw + 1, C), x.dtype)
    _parity_planes(x, padding, tiles, planes)
    for a in range(4):                                            # Bᵀ along the rows of each tile
        _combine(_BT[a], lambda k: planes[k % 2, :, :, k // 2:k // 2 + th], rows[a])
    for a in range(4):                                            # … then B along its columns
        for b in range(4):
            _combine(_BT[b], lambda k: rows[a, k % 2, :, :, k // 2:k // 2 + tw], V[a, b])


def _output_transform(M, scratch, out, bias=None):
    """out (n, Cout, OH, OW) = Aᵀ M A tile by tile (+ bias), from M (4, 4, n, th, tw, Cout)."""
    th, tw = M.shape[3:5]
    OH, OW = out.shape[2:]
    rows = scratch.get("rows", (2,) + M.shape[1:], M.dtype)
    blocks = scratch.get("planes", (2, 2) + M.shape[2:], M.dtype)
    for a in range(2):                                            # Aᵀ along the rows …
        _combine(_AT[a], lambda k: M[k], rows[a])
    for a in range(2):                                            # … then A along the columns
        for b in range(2):
            _combine(_AT[b], lambda k: rows[a, k], blocks[a, b])
    for p in range(2):        # out[n, f, 2i + p, 2j + q] = blocks[p, q, n, i, j, f] (the last tile may stick out)
        for q in range(2):
            target = out[:, :, p::2, q::2]
            source = blocks[p, q, :, :target.shape[2], :target.shape[3]].transpose(0, 3, 1, 2)
            for c in _channel_blocks(out, out.shape[1]):
                if bias is None:
                    target[:, c] = source[:, c]
                else:
                    np.add(source[:, c], bias[c].reshape(-1, 1, 1), out=target[:, c])


def _output_transform_adjoint(gy, scratch, gM):
    """gM = A gY Aᵀ tile by tile (the adjoint of ``_output_transform``), gM (4, 4, n, th, tw, Cout)."""
    blocks = scratch.get("planes", (2, 2) + gM.shape[2:], gM.dtype)
    rows = scratch.get("rows", (4, 2) + gM.shape[2:], gM.dtype)
    if gy.shape[2] % 2 or gy.shape[3] % 2:
        blocks.fill(0)                    # blocks[p, q, n, i, j, f] = gy[n, f, 2i + p, 2j + q] (0 outside)
    for p in range(2):
        for q in range(2):
            block = gy[:, :, p::2, q::2].transpose(0, 2, 3, 1)
            target = blocks[p, q, :, :block.shape[1], :block.shape[2]]
            for c in _channel_blocks(gy, gy.shape[1]):
                target[..., c] = block[..., c]
    for a in range(4):
        _combine(_A[a], lambda k: blocks[k], rows[a])
    for a in range(4):
        for b in range(4):
            _combine(_A[b], lambda k: rows[a, k], gM[a, b])


def _weight_transform(weight):
    """U = G g Gᵀ for every filter, laid out (16, C, Cout) for the GEMMs M[ξ] = V[ξ]·U[ξ]. As one GEMM:
    U[(a, b)] = Σ_(k, l) (G ⊗ G)[(a, b), (k, l)] · g[k, l], for all Cout·C filters at once."""
    Cout, C = weight.shape[:2]
    GG = np.kron(np.array(_G, dtype=weight.dtype), np.array(_G, dtype=weight.dtype))   # (16, 9)
    U = np.matmul(weight.reshape(Cout * C, 9), GG.T)                                     # (Cout·C, 16)
    return np.ascontiguousarray(U.reshape(Cout, C, 16).transpose(2, 1, 0))


def _weight_transform_adjoint(gU):
    """gW = Gᵀ gU G, from gU (16, C, Cout) to (Cout, C, 3, 3): the transpose of the GEMM above."""
    _, C, Cout = gU.shape
    GG = np.kron(np.array(_G, dtype=gU.dtype), np.array(_G, dtype=gU.dtype))
    gU = np.ascontiguousarray(gU.transpose(2, 1, 0)).reshape(Cout * C, 16)
    return np.matmul(gU, GG).reshape(Cout, C, 3, 3)


class WinogradConv2dFunction(Conv2dFunction):
    """conv2d of a 3×3 kernel, stride 1, dilation 1, one group, on the CPU, by Winograd F(2×2, 3×3);
    the math is in this module's docstring. ``chunk_bytes`` bounds one chunk's transformed input V
    (16·C·tiles floats) and ``min_chunk_tiles`` makes the GEMMs at least that wide."""

    chunk_bytes = 4 * 2 ** 20
    min_chunk_tiles = 256
    # Where conv2d takes this route (benchmarks/winograd.py, 2 cores; benchmarks/README.md "Winograd"):
    # with 32–64 channels the transforms, memory passes, cost about what the GEMMs save (1.0–1.1× the
    # time of im2col); with 128–512 channels and ≥ 256 tiles per thread a step takes 0.57–0.87× im2col's
    # (4×4 maps included); with few tiles per thread the weight transforms, done once per call, weigh
    # more than the GEMMs save (256→256 at 14×14, batch 8, 196 tiles per thread: 0.9–1.0×; 512→512 at
    # 7×7, batch 8, 64 per thread: 1.6–2.2×). Set all three to 0 to send every eligible conv here.
    min_channels = 128
    min_output_size = 4
    min_tiles_per_thread = 256

    @classmethod
    def applies(cls, x, weight, stride, padding, dilation, groups):
        """Whether conv2d should take this route for these arguments (the pairs as from ``as_pair``)."""
        if not (isinstance(x, np.ndarray) and x.ndim == weight.ndim == 4 and weight.shape[2:] == (3, 3)
                and stride == (1, 1) and dilation == (1, 1) and groups == 1 and max(padding) <= 2
                and x.dtype in (np.float32, np.float64) and x.dtype == weight.dtype
                and x.shape[1] == weight.shape[1]):
            return False
        N, (OH, OW) = x.shape[0], (size + 2 * p - 2 for size, p in zip(x.shape[2:], padding))
        tiles_per_thread = N * -(-OH // 2) * -(-OW // 2) / max(1, min(parallel.get_num_threads(), N))
        return (min(x.shape[1], weight.shape[0]) >= cls.min_channels and min(OH, OW) >= cls.min_output_size
                and tiles_per_thread >= cls.min_tiles_per_thread)

    def forward(self, x, weight, bias=None):
        with parallel.blas_held():          # the weight transform's GEMM, too, on one BLAS thread
            return self._forward(x, weight, bias)

    def backward(self, gy):
        with parallel.blas_held():
            return self._backward(gy)

    def _forward(self, x, weight, bias):
        self._check_shapes(x, weight, bias)
        N, (Cout, C), (OH, OW) = x.shape[0], weight.shape[:2], self._output_size(x, weight)
        U = _weight_transform(weight)
        out = np.empty((N, Cout, OH, OW), dtype=x.dtype)

        def forward_share(share):
            for images, V, M, scratch in self._chunks(x, Cout, share):
                np.matmul(V.reshape(16, -1, C), U, out=M.reshape(16, -1, Cout))
                _output_transform(M, scratch, out[images], bias)

        parallel.run(forward_share, self._shares(x, weight))
        self.x, self.weight = x, weight
        return out

    def _backward(self, gy):
        x, weight = self.x, self.weight
        needs_x, needs_w = self.needs_input_grad[:2]
        gW = None
        if needs_w:
            Cout, C = weight.shape[:2]

            def weight_gradient_share(share):     # one thread's images: their part of gU
                gU = np.empty((16, C, Cout), dtype=gy.dtype)
                for images, V, gM, scratch in self._chunks(x, Cout, share):   # V made again from x
                    _output_transform_adjoint(gy[images], scratch, gM)
                    first = images.start == share.start
                    part = gU if first else scratch.get("gU", gU.shape, gU.dtype)
                    np.matmul(V.reshape(16, -1, C).transpose(0, 2, 1), gM.reshape(16, -1, Cout), out=part)
                    if not first:
                        gU += part
                return gU
            gUs = parallel.run(weight_gradient_share, self._shares(x, weight))
            gW = _weight_transform_adjoint(sum(gUs[1:], gUs[0]))
        gx = self._input_gradient_by_convolution(gy, weight) if needs_x else None
        if len(self.needs_input_grad) == 2:
            return gx, gW
        return gx, gW, gy.sum(axis=(0, 2, 3)) if self.needs_input_grad[2] else None

    def _chunks(self, x, Cout, share):
        """Yield (images, V, M, scratch) for a few images of the share at a time: V (4, 4, n, th, tw, C)
        their transformed input, M a (4, 4, n, th, tw, Cout) buffer for the products, scratch the
        thread's ``parallel.Workspace`` for the transforms' intermediate arrays. All of them live in this thread's
        workspace, reused from chunk to chunk and from call to call: valid until the next chunk."""
        (N, C, H, W), (PH, PW) = x.shape, self.padding
        th, tw = -(-(H + 2 * PH - 2) // 2), -(-(W + 2 * PW - 2) // 2)
        share_size = share.stop - share.start
        n = max(self.chunk_bytes // (16 * C * th * tw * x.itemsize), -(-self.min_chunk_tiles // (th * tw)), 1)
        n = -(-share_size // -(-share_size // n))                     # chunks of equal size
        workspace = parallel.workspace()
        for start in range(share.start, share.stop, n):
            images = slice(start, min(start + n, share.stop))
            m = images.stop - start
            V = workspace.get("V", (4, 4, m, th, tw, C), x.dtype)
            M = workspace.get("M", (4, 4, m, th, tw, Cout), x.dtype)
            _input_transform(x[images], self.padding, (th, tw), workspace, V)
            yield images, V, M, workspace

