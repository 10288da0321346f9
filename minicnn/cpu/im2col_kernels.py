"""im2col and col2im (``functional/im2col.py``) as compiled loops: one call per chunk of images.

Shapes: x and gx (n, C, H, W), col (C, KH, KW, n, OH, OW), all C-contiguous; stride SH SW, padding
PH PW, dilation DH DW. A tap (kh, kw) at output (oh, ow) reads input pixel (h, w) with

    h = oh·SH + kh·DH − PH,    w = ow·SW + kw·DW − PW      (outside [0, H) × [0, W): zero padding)

    im2col   col[c, kh, kw, n, oh, ow] = x[n, c, h, w], or 0 in the padding
    col2im   gx[n, c, h, w] = Σ col[c, kh, kw, n, oh, ow] over every (kh, kw, oh, ow) that reads (h, w)

For each tap the outputs whose input lies inside the image form one block, rows [oh0, oh1) ×
columns [ow0, ow1) (``_inside``): outside it im2col writes zeros and col2im adds nothing, so no
padded copy of x is made and no bounds are tested per pixel. Stride 1 with OW = W (every "same"
conv) copies the block of a channel as ONE run of its flattened plane, as ``im2col_by_runs`` does,
and zeroes the few positions that wrapped round to the neighbouring row afterwards.

Why: the NumPy versions make the same copies in 8–12 calls per chunk (a padded or flattened copy of
x, the taps, the zeroing); every call gives up Python's GIL and wins it back, which on two threads
costs as much as the copying for the thin layers of a small ResNet. Here a chunk is one call.
"""
from __future__ import annotations

from . import jit

__all__ = ["im2col", "col2im"]


@jit
def _inside(size, out_size, k, S, P, D):
    """(o0, o1): the outputs o with 0 ≤ o·S + k·D − P < size (an empty range gives o0 = o1)."""
    shift = k * D - P
    o0 = min(out_size, max(0, (S - 1 - shift) // S))
    o1 = max(o0, min(out_size, (size - 1 - shift) // S + 1))
    return o0, o1


@jit
def _copy(source, target):
    for i in range(target.size):
        target[i] = source[i]


@jit
def im2col(x, col, SH, SW, PH, PW, DH, DW):
    """col (C, KH, KW, n, OH, OW) = the columns of x (n, C, H, W); see the module docstring."""
    n, C, H, W = x.shape
    KH, KW, OH, OW = col.shape[1], col.shape[2], col.shape[4], col.shape[5]
    runs = SH == 1 and SW == 1 and OW == W
    zero = x.dtype.type(0)
    planes, outs = x.reshape(n, C, H * W), col.reshape(C, KH, KW, n, OH * OW)
    for c in range(C):
        for kh in range(KH):
            oh0, oh1 = _inside(H, OH, kh, SH, PH, DH)
            for kw in range(KW):
                ow0, ow1 = _inside(W, OW, kw, SW, PW, DW)
                shift = kw * DW - PW
                for i in range(n):
                    if runs:        # out[j] = plane[j + s] for the rows inside, then the wrapped ends
                        plane, out = planes[i, c], outs[c, kh, kw, i]
                        for j in range(oh0 * OW):
                            out[j] = zero
                        for j in range(oh1 * OW, OH * OW):
                            out[j] = zero
                        s = (kh * DH - PH) * W + shift
                        j0, j1 = max(oh0 * W, -s), min(oh1 * W, H * W - s)
                        if j1 > j0:
                            _copy(plane[j0 + s:j1 + s], out[j0:j1])
                        for oh in range(oh0, oh1):
                            for ow in range(ow0):
                                out[oh * OW + ow] = zero
                            for ow in range(ow1, OW):
                                out[oh * OW + ow] = zero
                        continue
                    out = col[c, kh, kw, i]
                    for oh in range(OH):        # zeros: where the tap is in the padding
                        if oh < oh0 or oh >= oh1:
                            for ow in range(OW):
                                out[oh, ow] = zero
                            continue
                        for ow in range(ow0):
                            out[oh, ow] = zero
                        for ow in range(ow1, OW):
                            out[oh, ow] = zero
                    if oh1 > oh0 and ow1 > ow0:     # the block inside: a strided view of the image
                        h0 = oh0 * SH + kh * DH - PH
                        source = x[i, c, h0:h0 + (oh1 - oh0 - 1) * SH + 1:SH,
                                   ow0 * SW + shift:(ow1 - 1) * SW + shift + 1:SW]
                        target = out[oh0:oh1, ow0:ow1]
                        for a in range(oh1 - oh0):
                            for b in range(ow1 - ow0):
                                target[a, b] = source[a, b]


@jit
def col2im(col, gx, SH, SW, PH, PW, DH, DW):
    """gx (n, C, H, W) = the sum of the columns col (C, KH, KW, n, OH, OW) back into the pixels they
    were copied from (gx is overwritten); see the module docstring."""
    n, C, H, W = gx.shape
    KH, KW, OH, OW = col.shape[1], col.shape[2], col.shape[4], col.shape[5]
    zero = gx.dtype.type(0)
    planes, sources = gx.reshape(n, C, H * W), col.reshape(C, KH, KW, n, OH * OW)
    for c in range(C):
        for i in range(n):
            plane = planes[i, c]
            for j in range(H * W):
                plane[j] = zero
            for kh in range(KH):
                oh0, oh1 = _inside(H, OH, kh, SH, PH, DH)
                for kw in range(KW):
                    ow0, ow1 = _inside(W, OW, kw, SW, PW, DW)
                    if ow1 <= ow0:
                        continue
                    shift, source = kw * DW - PW, sources[c, kh, kw, i]
                    for oh in range(oh0, oh1):      # one output row adds into every SW-th pixel of an input row
                        h = oh * SH + kh * DH - PH
                        target = plane[h * W + ow0 * SW + shift:h * W + (ow1 - 1) * SW + shift + 1:SW]
                        row = source[oh * OW + ow0:oh * OW + ow1]
                        for j in range(row.size):
                            target[j] += row[j]
