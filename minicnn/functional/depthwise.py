"""Depthwise convolution (MobileNet's): groups = C = Cout, one KH×KW filter per input channel, on the CPU.

Notation: N batch, C channels (= Cout = groups), H W input, KH KW kernel, SH SW stride, PH PW padding,
DH DW dilation, OH OW output, Hp = H + 2·PH, Wp = W + 2·PW; gy = dL/dy, gx, gW, gb.

    x (N, C, H, W),  weight (C, 1, KH, KW),  bias (C,) or None  ->  y (N, C, OH, OW)
    y[n, c, oh, ow] = Σ_(kh,kw) w[c, kh, kw] · x_pad[n, c, oh·SH + kh·DH, ow·SW + kw·DW]   (+ b[c])

``conv2d`` sends such a convolution here (``DepthwiseConv2dFunction.applies``); everything else about
it (arguments, checks, output size) is ``Conv2dFunction``'s. On the GPU the im2col kernels do the work.
"""
from __future__ import annotations

import numpy as np

from .. import backend, cpu, parallel
from .conv import Conv2dFunction

__all__ = ["DepthwiseConv2dFunction"]


class DepthwiseConv2dFunction(Conv2dFunction):
    """conv2d with groups = C = Cout (one KH×KW filter per channel, MobileNet's depthwise conv) on the
    CPU: a direct sum over the KH·KW taps instead of im2col + GEMM. Two paths, the same numbers up to
    rounding: the compiled kernels of ``minicnn.cpu.depthwise_kernels`` (any stride; one pass over x
    and y per step) when ``minicnn.cpu.kernels_apply``, else the NumPy path below (stride 1).

        y[n, c, oh, ow] = Σ_(kh,kw) w[c, kh, kw] · x_pad[n, c, oh + kh·DH, ow + kw·DW]   (+ b[c])
        gW[c, kh, kw]   = Σ_(n,oh,ow) gy[n, c, oh, ow] · x_pad[n, c, oh + kh·DH, ow + kw·DW]
        gx_pad[n, c, oh + kh·DH, ow + kw·DW] += w[c, kh, kw] · gy[n, c, oh, ow]   (every tap)

    NumPy path. Why: an output needs only KH·KW multiply-adds, so the GEMM of im2col (inner dimension KH·KW)
    runs far below the BLAS peak while im2col and col2im move KH·KW copies of x, row by short row.
    Here a tap is one multiply and one add over the whole batch, as ONE long slice: each padded
    channel plane (Hp × Wp) is laid flat and the planes of an image follow each other, (N, C·Hp·Wp).
    Output (oh, ow) is kept at flat position oh·Wp + ow of its plane (the positions past OW in a row
    and past OH in a plane are scratch, cropped at the end, and zero in gy), so tap (kh, kw) reads x
    at that position + kh·DH·Wp + kw·DW: the same shift for every pixel of every channel. Each
    channel's weight is repeated over its plane (``w_plane``) so that the multiply needs no broadcast.
    These flat arrays are the calling thread's workspace (``parallel.workspace``), laid out again from x
    in backward, so a step allocates only its outputs (fresh ones cost a page fault per 4 KiB).
    Threads: each takes a share of the images (its rows of the flat arrays) and its part of gW.
    Chunks: a thread runs all the taps over ``chunk_bytes`` (1 MiB) of images of each flat array before
    the next images, so that the ~17 passes over a chunk find it in the core's L2 cache: measured 0.62–
    0.94× the time of whole-share passes (MobileNet's 32 and 128 channels at 112 and 56 px, batch 64:
    0.69 and 0.62; 256 channels at 14 px, batch 8 to 32: 0.94 to 0.79); 256 KiB chunks were slower.
    On the GPU the im2col kernels do the work instead (one launch each, not a loop over the taps).
    """

    chunk_bytes = 2 ** 20    # per flat array and chunk of images: about a core's L2 cache

    @classmethod
    def applies(cls, x, weight, stride, groups):
        """True when conv2d should take this route: a CPU depthwise conv, of stride 1 unless the
        compiled kernels apply (the NumPy path's one shift per tap needs stride 1)."""
        return (x.ndim == weight.ndim == 4 and groups == weight.shape[0] == x.shape[1] and weight.shape[1] == 1
                and backend.device_of(x) == "cpu" and (stride == (1, 1) or cpu.kernels_apply(x, weight)))

    def forward(self, x, weight, bias=None):
        self._check_shapes(x, weight, bias)
        self.by_kernels = cpu.kernels_apply(x, weight)
        if self.by_kernels:
            return self._forward_by_kernels(x, weight, bias)
        if self.stride != (1, 1):
            raise ValueError(f"conv2d (depthwise, NumPy path): stride must be (1, 1) without the compiled "
                             f"kernels of minicnn.cpu, got {self.stride}")
        (N, C, H, W), (KH, KW) = x.shape, weight.shape[2:]
        (PH, PW), (DH, DW) = self.padding, self.dilation
        Hp, Wp, (OH, OW) = H + 2 * PH, W + 2 * PW, self._output_size(x, weight)
        L = C * Hp * Wp
        self.shifts = [kh * DH * Wp + kw * DW for kh in range(KH) for kw in range(KW)]
        self.kernel, self.geometry = (KH, KW), (N, C, H, W, Hp, Wp, OH, OW)
        workspace = parallel.workspace()          # the shares write their own rows of these buffers
        x_flat, w_plane = self._flat_input(x, workspace), self._weight_planes(weight, workspace)
        y_flat, product = (workspace.get(name, (N, L), x.dtype) for name in ("depthwise_y", "depthwise_product"))

        def forward_share(share):                  # one thread's images, a chunk at a time
            for n in self._chunks(share, L * x.itemsize):
                y_n, x_n, product_n = y_flat[n], x_flat[n], product[n]
                np.multiply(x_n[:, :L], w_plane[0], out=y_n)               # the first tap's shift is 0
                for t, shift in enumerate(self.shifts[1:], 1):
                    y_n += np.multiply(x_n[:, shift:shift + L], w_plane[t], out=product_n)
        self.shares = self._shares(x, weight)
        parallel.run(forward_share, self.shares)
        self.x, self.weight = x, weight            # backward lays x out flat again (in the workspace)
        y = y_flat.reshape(N, C, Hp, Wp)[:, :, :OH, :OW]
        return y.copy() if bias is None else y + bias.reshape(C, 1, 1)    # never a view of the workspace

    def _chunks(self, share, image_bytes):
        """The share cut into runs of images of about ``chunk_bytes`` (at least one image each)."""
        n = max(1, self.chunk_bytes // image_bytes)
        return [slice(start, min(start + n, share.stop)) for start in range(share.start, share.stop, n)]

    def _flat_input(self, x, workspace):
        """x zero-padded, each (Hp, Wp) plane laid flat, planes of an image one after the other, plus room
        for the last tap's shift: (N, C·Hp·Wp + shift), in this thread's workspace."""
        (N, C, H, W, Hp, Wp, _, _), (PH, PW) = self.geometry, self.padding
        x_flat = workspace.get("depthwise_x", (N, C * Hp * Wp + self.shifts[-1]), x.dtype)
        x_flat.fill(0)
        x_flat[:, :C * Hp * Wp].reshape(N, C, Hp, Wp)[:, :, PH:PH + H, PW:PW + W] = x
        return x_flat

    def _weight_planes(self, weight, workspace):
        """w_plane[t, c·Hp·Wp + i] = weight[c, 0, t] over channel c's whole plane: (KH·KW, C·Hp·Wp)."""
        (_, C, _, _, Hp, Wp, _, _), T = self.geometry, len(self.shifts)
        w_plane = workspace.get("depthwise_w", (T, C * Hp * Wp), weight.dtype)
        w_plane.reshape(T, C, Hp * Wp)[...] = weight.reshape(C, T).T[:, :, None]
        return w_plane

    def _forward_by_kernels(self, x, weight, bias):
        from ..cpu import depthwise_kernels         # imports numba (minicnn.cpu)
        (N, C, _, _), (OH, OW) = x.shape, self._output_size(x, weight)
        x, w = np.ascontiguousarray(x), np.ascontiguousarray(weight[:, 0])
        b = np.zeros(C, x.dtype) if bias is None else np.ascontiguousarray(bias)
        y = np.empty((N, C, OH, OW), dtype=x.dtype)
        self.shares, self.x, self.w = self._shares(x, weight), x, w
        if self._three_by_three(w):
            parallel.run(lambda share: depthwise_kernels.depthwise3x3_forward(
                x, w, b, y, share.start, share.stop, *self.padding, *self.dilation), self.shares)
        else:
            parallel.run(lambda share: depthwise_kernels.depthwise_forward(
                x, w, b, y, share.start, share.stop, *self.stride, *self.padding, *self.dilation), self.shares)
        return y

    def _three_by_three(self, w):
        """The kernels' special case: 3×3, stride 1 (MobileNet's depthwise layers but the strided ones)."""
        return w.shape[1:] == (3, 3) and self.stride == (1, 1)

    def _backward_by_kernels(self, gy):
        """(gx, gW, gb): the kernels sum gb in the loop that reads gy for gW (a NumPy sum over gy
        took ~1/8 of the bench's depthwise step)."""
        from ..cpu import depthwise_kernels
        (needs_x, needs_w), gy = self.needs_input_grad[:2], np.ascontiguousarray(gy)
        gx = np.empty(self.x.shape, dtype=gy.dtype)

        def backward_share(share):                 # one thread's images: their gx, their part of gW and gb
            gW, gb = np.zeros(self.w.shape, dtype=gy.dtype), np.zeros(self.w.shape[0], dtype=gy.dtype)
            if self._three_by_three(self.w):
                depthwise_kernels.depthwise3x3_backward(self.x, self.w, gy, gx, gW, gb, share.start, share.stop,
                                                        *self.padding, *self.dilation)
            else:
                depthwise_kernels.depthwise_backward(self.x, self.w, gy, gx, gW, gb, share.start, share.stop,
                                                     *self.stride, *self.padding, *self.dilation)
            return gW, gb
        parts = parallel.run(backward_share, self.shares)
        gW, gb = (sum(p[1:], p[0]) for p in zip(*parts))
        return gx if needs_x else None, gW[:, None] if needs_w else None, gb

    def backward(self, gy):
        if self.by_kernels:
            gx, gW, gb = self._backward_by_kernels(gy)
        else:
            (gx, gW), gb = self._backward_by_numpy(gy), None
        if len(self.needs_input_grad) == 2:
            return gx, gW
        if not self.needs_input_grad[2]:
            return gx, gW, None
        return gx, gW, gy.sum(axis=(0, 2, 3)) if gb is None else gb

    def _backward_by_numpy(self, gy):
        (N, C, H, W, Hp, Wp, OH, OW), (PH, PW) = self.geometry, self.padding
        L, (needs_x, needs_w), workspace = C * Hp * Wp, self.needs_input_grad[:2], parallel.workspace()
        x_flat = self._flat_input(self.x, workspace) if needs_w else None
        w_plane = self._weight_planes(self.weight, workspace) if needs_x else None
        gy_flat = workspace.get("depthwise_gy", (N, C, Hp, Wp), gy.dtype)
        gy_flat.fill(0)                            # scratch positions are 0 (one pass: faster than the strips)
        gy_flat[:, :, :OH, :OW] = gy
        gy_flat = gy_flat.reshape(N, L)
        gx_flat = workspace.get("depthwise_gx", (N, L + self.shifts[-1]), gy.dtype) if needs_x else None
        if needs_x:
            gx_flat.fill(0)
        product = workspace.get("depthwise_product", (N, L), gy.dtype)

        def backward_share(share):                 # one thread's images: their part of gW, their gx
            gW = np.zeros((len(self.shifts), C), dtype=gy.dtype)
            for n in self._chunks(share, L * gy.itemsize):
                gy_n, product_n = gy_flat[n], product[n]
                for t, shift in enumerate(self.shifts):
                    if needs_w:
                        x_shifted = x_flat[n, shift:shift + L].reshape(-1, C, Hp * Wp)
                        gW[t] += np.einsum("ncl,ncl->c", gy_n.reshape(-1, C, Hp * Wp), x_shifted)
                    if needs_x:
                        gx_flat[n, shift:shift + L] += np.multiply(gy_n, w_plane[t], out=product_n)
            return gW
        gWs = parallel.run(backward_share, self.shares)
        gW = sum(gWs[1:], gWs[0])
        gx = gx_flat[:, :L].reshape(N, C, Hp, Wp)[:, :, PH:PH + H, PW:PW + W].copy() if needs_x else None
        return gx, gW.T.reshape(C, 1, *self.kernel) if needs_w else None
