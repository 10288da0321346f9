"""2-D convolution as im2col + one GEMM per group (PyTorch's ``conv2d`` semantics).

Notation: N batch, C input channels, Cout output channels, G groups, H W input, KH KW kernel,
SH SW stride, PH PW padding, DH DW dilation, OH OW output, K = C/G·KH·KW (one column's length),
P = N·OH·OW (the number of columns). Gradients: gy = dL/dy, gx, gW, gb.

    x       (N, C, H, W)
    weight  (Cout, C/G, KH, KW)
    bias    (Cout,) or None
    y       (N, Cout, OH, OW),   OH = floor((H + 2·PH − DH·(KH − 1) − 1) / SH) + 1  (same for OW)

What "convolution" means here is cross-correlation (the kernel is not flipped), as in every deep
learning library. With col = im2col(x) viewed as (G, K, P) and W viewed as (G, Cout/G, K):

    forward    y[g]   = W[g] · col[g]            (+ b, broadcast over N, OH, OW)
    backward   gW[g]  = gy[g] · col[g]ᵀ
               gcol[g] = W[g]ᵀ · gy[g],    gx = col2im(gcol)
               gb     = Σ over N, OH, OW of gy
    stride 1   gx     = conv2d(gy, W flipped in KH and KW with C and Cout swapped, padding D·(K − 1) − P),
                        the same products as gcol + col2im, computed as a forward convolution (faster)

For speed on the CPU the columns are built a few images at a time (``Conv2dFunction``), the batch is
shared out between ``minicnn.get_num_threads()`` threads (each builds and multiplies the columns of its
own images; gW is the sum of their parts), the depthwise 3×3 of MobileNet is a direct sum over the
taps (``DepthwiseConv2dFunction``, depthwise.py), and wide 3×3 stride-1 convs use Winograd's F(4×4, 3×3) or F(2×2, 3×3),
4× or 2.25× fewer multiplications, wide 1×7 and 7×1 convs F(1×2, 1×7), 1.75× fewer (``winograd.py``).

Groups split the channels into G independent convolutions (each output channel sees C/G input
channels); G = C with Cout = m·C is the depthwise convolution of MobileNet. A 1×7 kernel with
padding (0, 3) is the Inception-v3 factorized convolution: every size argument is an int or a
(height, width) pair.
"""
from __future__ import annotations

import numbers

from .. import backend, parallel
from ..autograd import Function, Tensor
from .im2col import as_pair, col2im, conv_output_size, im2col

__all__ = ["Conv2dFunction", "conv2d"]


class Conv2dFunction(Function):
    """y = conv2d(x, weight[, bias]); see the module docstring for shapes and gradients.

    Chunks. The columns are made for a few images at a time and consumed at once by the GEMMs, in
    ONE buffer reused from chunk to chunk: a whole batch's columns are KH·KW/(SH·SW) times the size of
    x (1.1 GiB for the first stage of ResNet-18 at batch 128), while a chunk of about ``chunk_bytes``
    (2 MiB on the CPU) stays in the cache, where the GEMMs read it, and bounds the memory for any
    batch (on a GPU the 1 GiB chunk only does the latter). A chunk holds at least
    ``min_chunk_columns`` columns (n·OH·OW), so that small feature maps still make wide GEMMs, and
    the batch is cut into chunks of equal size. For stride 1, backward makes the columns of gy (gx is
    a convolution of gy, and gW is read from the same columns: ``_gradients_by_convolution``).
    Otherwise it makes each chunk's columns of x again (gW = gy·colᵀ needs them: one more im2col pass,
    cheaper than keeping them all) and overwrites them with gcol = Wᵀ·gy for col2im; there, when each
    thread's share of the batch is one chunk, forward's columns are kept for backward. Both limits
    are class attributes: ``Conv2dFunction.chunk_bytes["cpu"] = 2 ** 30`` makes bigger chunks. The buffer is the thread's workspace (``minicnn.parallel.workspace``), kept
    from call to call, unless forward keeps its columns for backward.
    Threads. On the CPU the batch is first cut into one contiguous share per thread (``_shares``;
    ``minicnn.set_num_threads``), and each thread runs the loop above over its own share, with its own
    buffer, writing its own images of y (or gx) and returning its own part of gW, summed at the end;
    BLAS is held at one thread meanwhile (``minicnn.parallel``). So the im2col copies run in
    parallel too, not only the GEMMs, and the column memory is one buffer per thread.
    Memory of a 3×3 stride-1 conv step, everything included (y, gx, gW, gb, temporaries): at most
    1.5× its whole column matrix, 0.3–0.6× when it is cut into chunks (tests/test_conv_chunks.py).
    """

    chunk_bytes = {"cpu": 2 * 2 ** 20, "cuda": 2 ** 30}
    min_chunk_columns = 1024
    fresh_gradients = True       # gx, gW, gb are new arrays (autograd.Function): a leaf keeps them uncopied
    min_share_columns = 256

    def __init__(self, stride=1, padding=0, dilation=1, groups=1):
        self.stride = as_pair(stride, "stride", "conv2d")
        self.padding = as_pair(padding, "padding", "conv2d")
        self.dilation = as_pair(dilation, "dilation", "conv2d")
        if min(*self.stride, *self.dilation) < 1 or min(self.padding) < 0:
            raise ValueError(f"conv2d: stride and dilation must be ≥ 1 and padding ≥ 0, got "
                             f"stride={self.stride}, padding={self.padding}, dilation={self.dilation}")
        if not isinstance(groups, numbers.Integral) or groups < 1:
            raise ValueError(f"conv2d: groups must be a positive int, got {groups!r}")
        self.groups = int(groups)

    def forward(self, x, weight, bias=None):
        self._check_shapes(x, weight, bias)
        xp = backend.get_array_module(x)
        N, Cout = x.shape[0], weight.shape[0]
        out = xp.empty((N, Cout, *self._output_size(x, weight)), dtype=x.dtype)
        # Backward needs x's columns again only for gW without gx, or for a strided conv (stride 1: see
        # _gradients_by_convolution); then a share that is one chunk keeps forward's columns for it.
        keep = self.needs_input_grad[1] and not (self.needs_input_grad[0]
                                                 and self._input_gradient_is_a_convolution(weight))
        kept = parallel.run(lambda share: self._forward_share(x, weight, bias, out, share, keep),
                            self._shares(x, weight))
        self.x, self.weight = x, weight
        self.cols = kept if keep and all(col is not None for _, col in kept) else None
        return out

    def _forward_share(self, x, weight, bias, out, share, keep=False, each_chunk=None):
        """One thread's images of out = conv(x, weight) + bias, chunk by chunk: y = W·col, written into
        out as NCHW. each_chunk(images, col), if given, also sees every chunk's columns. Returns
        (images, col) with the share's columns when it was one chunk and ``keep``."""
        xp = backend.get_array_module(x)
        G, (Cout, OH, OW) = self.groups, (weight.shape[0], *self._output_size(x, weight))
        w = weight.reshape(G, Cout // G, -1)
        images = col = None
        for images, col in self._column_chunks(x, weight, share, keep=keep):
            y = xp.matmul(w, col).reshape(Cout, -1, OH, OW).transpose(1, 0, 2, 3)     # NCHW view
            if bias is None:
                out[images] = y
            else:                 # the bias add and the CNHW → NCHW copy in one pass
                xp.add(y, bias.reshape(Cout, 1, 1), out=out[images])
            if each_chunk is not None:
                each_chunk(images, col)
        return images, (col if keep and images == share else None)   # one chunk: its columns can be kept

    def backward(self, gy):
        xp = backend.get_array_module(gy)
        x, weight, G = self.x, self.weight, self.groups
        C, (Cout, Cg, KH, KW), (OH, OW) = x.shape[1], weight.shape, gy.shape[2:]
        needs_x, needs_w = self.needs_input_grad[:2]
        if needs_x and self._input_gradient_is_a_convolution(weight):
            gx, gW = self._gradients_by_convolution(gy, needs_w)
            if len(self.needs_input_grad) == 2:
                return gx, gW
            return gx, gW, gy.sum(axis=(0, 2, 3)) if self.needs_input_grad[2] else None
        gx = xp.empty(x.shape, dtype=gy.dtype) if needs_x else None
        weight_t = weight.reshape(G, Cout // G, -1).transpose(0, 2, 1)          # (G, K, Cout/G)

        def backward_share(share_and_columns):     # one thread's images: its part of gW, its rows of gx
            share, cached = share_and_columns
            gW = xp.zeros((G, Cout // G, Cg * KH * KW), dtype=gy.dtype) if needs_w else None
            for images, col in self._column_chunks(x, weight, share, fill=needs_w, cached=cached):
                g = xp.ascontiguousarray(gy[images].transpose(1, 0, 2, 3)).reshape(G, Cout // G, -1)
                if needs_w:
                    # col·gᵀ then a transpose of the small result: BLAS reads the big col in its stored order.
                    gW += xp.matmul(col, g.transpose(0, 2, 1)).transpose(0, 2, 1)
                if needs_x:     # gcol = Wᵀ·g goes into the chunk's column buffer, then col2im
                    if Cout == G:   # depthwise: an outer product, which multiply does ~4× faster than matmul
                        xp.multiply(weight_t, g, out=col)
                    else:
                        xp.matmul(weight_t, g, out=col)
                    del g       # free this chunk of gy before col2im allocates its padded image
                    col2im(col.reshape(C, KH, KW, -1, OH, OW), gx[images].shape, (KH, KW), self.stride,
                           self.padding, self.dilation, out=gx[images])
            return gW

        shares = self.cols or [(share, None) for share in self._shares(x, weight)]
        # The columns are gcol after this, or no longer needed: free them (a retained graph makes them again).
        self.cols = None
        gWs = parallel.run(backward_share, shares) if needs_w or needs_x else []
        del shares
        gW = sum(gWs[1:], gWs[0]).reshape(weight.shape) if needs_w else None
        if len(self.needs_input_grad) == 2:
            return gx, gW
        return gx, gW, gy.sum(axis=(0, 2, 3)) if self.needs_input_grad[2] else None

    def _input_gradient_is_a_convolution(self, weight):
        """Stride 1 and padding ≤ the dilated kernel's extent − 1 (every "same" or "valid" conv)."""
        return self.stride == (1, 1) and all(d * (k - 1) >= p for d, k, p in
                                             zip(self.dilation, weight.shape[2:], self.padding))

    def _transposed(self, weight):
        """The stride-1 conv that gives gx from gy (see ``_gradients_by_convolution``): (function, its
        weight W flipped in KH and KW with C and Cout swapped within each group)."""
        xp = backend.get_array_module(weight)
        G, (Cout, Cg, KH, KW) = self.groups, weight.shape
        flipped = weight[:, :, ::-1, ::-1].reshape(G, Cout // G, Cg, KH, KW).transpose(0, 2, 1, 3, 4)
        flipped = xp.ascontiguousarray(flipped).reshape(G * Cg, Cout // G, KH, KW)
        padding = tuple(d * (k - 1) - p for d, k, p in zip(self.dilation, (KH, KW), self.padding))
        transposed = self._sibling(padding)      # of this kind: Winograd's gx runs through Winograd
        transposed.needs_input_grad = (False, False)
        return transposed, flipped

    def _input_gradient_by_convolution(self, gy, weight):
        """gx alone as the conv of gy by the transposed function (Winograd's backward uses it)."""
        transposed, flipped = self._transposed(weight)
        return transposed.forward(gy, flipped)

    def _gradients_by_convolution(self, gy, needs_w):
        """gx and gW of a stride-1 conv from ONE set of columns, those of gy. gx is the conv of gy, padded
        by D·(K − 1) − P, with the kernel flipped in both spatial axes and its channel axes swapped
        within each group, and gW reads the same columns colgy = im2col(gy_pad) (its (h, w) run over x's):

            gx[n, c, h, w]   = Σ_(f, kh, kw) W[f, c, KH−1−kh, KW−1−kw] · colgy[f, kh, kw, n, h, w]
            gW[f, c, kh, kw] = Σ_(n, h, w)  x[n, c, h, w] · colgy[f, KH−1−kh, KW−1−kw, n, h, w]

        The same products as gcol = Wᵀ·gy + col2im and gW = gy·im2col(x)ᵀ, but backward makes one set of
        columns instead of two, and a copy per tap replaces col2im's read-modify-write per tap."""
        xp = backend.get_array_module(gy)
        x, G, (Cout, Cg, KH, KW) = self.x, self.groups, self.weight.shape
        transposed, flipped = self._transposed(self.weight)
        gx = xp.empty(x.shape, dtype=gy.dtype)

        def gradients_share(share):                # one thread's images: their gx, their part of gWᵀ
            gWt = xp.zeros((G, Cout // G * KH * KW, Cg), dtype=gy.dtype) if needs_w else None

            def weight_gradient(images, col):      # colgy·xᵀ, (G, Cout/G·KH·KW, C/G): BLAS reads col in order
                xg = xp.ascontiguousarray(x[images].transpose(1, 0, 2, 3)).reshape(G, Cg, -1)
                gWt.__iadd__(xp.matmul(col, xg.transpose(0, 2, 1)))
            transposed._forward_share(gy, flipped, None, gx, share, each_chunk=weight_gradient if needs_w else None)
            return gWt

        gWts = parallel.run(gradients_share, transposed._shares(gy, flipped))
        if not needs_w:
            return gx, None
        gWt = sum(gWts[1:], gWts[0]).reshape(G, Cout // G, KH, KW, Cg)[:, :, ::-1, ::-1]
        return gx, xp.ascontiguousarray(gWt.transpose(0, 1, 4, 2, 3)).reshape(Cout, Cg, KH, KW)

    def _sibling(self, padding):
        """A new function of this kind, stride 1, this padding (the conv that gives gx)."""
        return type(self)(1, padding, self.dilation, self.groups)

    def _output_size(self, x, weight):
        (PH, PW), (DH, DW) = self.padding, self.dilation
        return (conv_output_size(x.shape[2], weight.shape[2], self.stride[0], PH, DH),
                conv_output_size(x.shape[3], weight.shape[3], self.stride[1], PW, DW))

    def _shares(self, x, weight):
        """The batch cut into one contiguous slice per CPU thread (``minicnn.set_num_threads``), fewer
        when the batch is too small for each thread to make GEMMs of ``min_share_columns`` columns;
        on the GPU the whole batch."""
        OH, OW = self._output_size(x, weight)
        return parallel.split(x.shape[0], OH * OW, self.min_share_columns, backend.device_of(x))

    def _column_chunks(self, x, weight, share, fill=True, cached=None, keep=False):
        """Yield (images, col): a slice of the share of the batch and its columns, (G, K, n·OH·OW), all
        chunks in one buffer (so each col is only valid until the next is made). fill=False: the
        buffer only. cached: the share's columns, kept from forward. The buffer is the thread's
        workspace (``parallel.workspace``: no fresh memory to fault in at every call), except on the
        GPU (CuPy's pool does that) and when ``keep`` and the share is one chunk, whose columns
        forward keeps for backward."""
        xp = backend.get_array_module(x)
        C, (KH, KW), (OH, OW) = x.shape[1], weight.shape[2:], self._output_size(x, weight)
        G, K, N = self.groups, C // self.groups * KH * KW, share.stop - share.start
        if cached is not None:
            yield share, cached
            return
        budget = self.chunk_bytes[backend.device_of(x)]
        n = max(budget // (G * K * OH * OW * x.itemsize), -(-self.min_chunk_columns // (OH * OW)), 1)
        n = -(-N // -(-N // n)) if N else 1                 # chunks of equal size: no thin last GEMM
        if (keep and n >= N) or backend.device_of(x) != "cpu":
            buffer = xp.empty(G * K * n * OH * OW, dtype=x.dtype)
        else:
            buffer = parallel.workspace().get("im2col", (G * K * n * OH * OW,), x.dtype)
        for start in range(share.start, share.stop, n):
            images = slice(start, min(start + n, share.stop))
            m = images.stop - start
            col = buffer[:G * K * m * OH * OW].reshape(C, KH, KW, m, OH, OW)
            if fill:
                im2col(x[images], (KH, KW), self.stride, self.padding, self.dilation, out=col)
            yield images, col.reshape(G, K, m * OH * OW)

    def _check_shapes(self, x, weight, bias):
        """Raise a ValueError naming conv2d and the shapes for every inconsistent input."""
        G = self.groups
        if x.ndim != 4:
            raise ValueError(f"conv2d: x must be 4-D (N, C, H, W), got shape {x.shape}")
        if weight.ndim != 4:
            raise ValueError(f"conv2d: weight must be 4-D (Cout, C/groups, KH, KW), got shape {weight.shape}")
        (_, C, H, W), (Cout, Cg, KH, KW) = x.shape, weight.shape
        if C % G:
            raise ValueError(f"conv2d: input channels C={C} (x shape {x.shape}) are not divisible by "
                             f"groups={G}")
        if Cout % G:
            raise ValueError(f"conv2d: output channels Cout={Cout} (weight shape {weight.shape}) are not "
                             f"divisible by groups={G}")
        if Cg != C // G:
            raise ValueError(f"conv2d: weight shape {weight.shape} has {Cg} input channels per group, "
                             f"expected C/groups = {C}/{G} = {C // G} for x of shape {x.shape}")
        (PH, PW), (DH, DW) = self.padding, self.dilation
        if (conv_output_size(H, KH, self.stride[0], PH, DH) < 1
                or conv_output_size(W, KW, self.stride[1], PW, DW) < 1):
            raise ValueError(f"conv2d: the kernel {(KH, KW)} with dilation {(DH, DW)} spans "
                             f"{(DH * (KH - 1) + 1, DW * (KW - 1) + 1)}, larger than the padded input "
                             f"{(H + 2 * PH, W + 2 * PW)} (x shape {x.shape}, padding {(PH, PW)})")
        if bias is not None and bias.shape != (Cout,):
            raise ValueError(f"conv2d: bias must have shape (Cout,) = ({Cout},), got {bias.shape}")
        dtypes = {a.dtype for a in (x, weight, bias) if a is not None}
        if len(dtypes) > 1:
            raise TypeError(f"conv2d: x, weight and bias must have one dtype, got "
                            f"{', '.join(str(a.dtype) for a in (x, weight, bias) if a is not None)}")


def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """2-D convolution of x (N, C, H, W) with weight (Cout, C/groups, KH, KW) → (N, Cout, OH, OW).

    stride, padding, dilation: an int or a (height, width) pair; padding is zeros on both sides.
    groups: split channels into independent groups (groups = C: depthwise).
    The algorithm is chosen from the arguments, the numbers are the same up to rounding: im2col + GEMM
    (``Conv2dFunction``), a direct depthwise sum (``DepthwiseConv2dFunction``, CPU; any stride with the compiled
    kernels of ``minicnn.cpu``, else stride 1) or Winograd
    (``WinogradConv2dFunction``, CPU, stride 1: 3×3 with ≥ 64 channels, 1×7 and 7×1 with ≥ 112, fewer
    counted where the tiles overhang the output; see its ``choose``).
    """
    from .depthwise import DepthwiseConv2dFunction   # both subclass Conv2dFunction
    from .winograd import WinogradConv2dFunction
    x_data, w_data = (a.data if isinstance(a, Tensor) else a for a in (x, weight))
    depthwise = DepthwiseConv2dFunction.applies(x_data, w_data, as_pair(stride, "stride", "conv2d"), groups)
    function = (DepthwiseConv2dFunction if depthwise else Conv2dFunction)(stride, padding, dilation, groups)
    m = None if depthwise else WinogradConv2dFunction.choose(x_data, w_data, function.stride, function.padding,
                                                             function.dilation, function.groups)
    if m:
        function = WinogradConv2dFunction(stride, padding, dilation, groups, m=m)
    return function(x, weight) if bias is None else function(x, weight, bias)
