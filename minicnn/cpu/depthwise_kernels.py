"""Depthwise convolution (groups = C = Cout, one KH×KW filter per channel) as compiled loops.

Shapes: x (N, C, H, W), w (C, KH, KW), y and gy (N, C, OH, OW); stride SH SW, padding PH PW,
dilation DH DW; Hp = H + 2·PH, Wp = W + 2·PW. Each call does the images n0 ≤ n < n1 (one thread's share).

    forward    y[n, c, oh, ow]  = b[c] + Σ_(kh,kw) w[c, kh, kw] · x_pad[n, c, oh·SH + kh·DH, ow·SW + kw·DW]
    backward   gx_pad[n, c, oh·SH + kh·DH, ow·SW + kw·DW] += w[c, kh, kw] · gy[n, c, oh, ow]   (every tap)
               gW[c, kh, kw]   += Σ_(oh,ow) gy[n, c, oh, ow] · x_pad[n, c, oh·SH + kh·DH, ow·SW + kw·DW]

Why this is fast: one channel plane at a time, padded into a small scratch plane that stays in the L1
cache, all KH·KW taps are summed there: each value of x is read from memory once and each value of y
written once (the NumPy path makes ~17 passes over memory). Stride 1 (``_flat``): the plane is laid
flat with its row pitch Wp and output (oh, ow) kept at oh·Wp + ow (the positions past OW in a row are
scratch), so that tap (kh, kw) reads the plane at that position + kh·DH·Wp + kw·DW: each tap is one
loop over the whole plane, OH·Wp long, which the compiler runs in SIMD lanes (a loop along one row
of 14 outputs would be too short for 16 lanes). Other strides run along the rows.
"""
from __future__ import annotations

import numpy as np

from . import jit

__all__ = ["depthwise_forward", "depthwise_backward"]


@jit
def depthwise_forward(x, w, b, y, n0, n1, SH, SW, PH, PW, DH, DW):
    """y[n0:n1] = depthwise conv of x[n0:n1] with w (C, KH, KW) and bias b (C,)."""
    N, C, H, W = x.shape
    OH, OW, KH, KW = y.shape[2], y.shape[3], w.shape[1], w.shape[2]
    Hp, Wp = H + 2 * PH, W + 2 * PW
    flat = SH == 1 and SW == 1
    plane = np.zeros(Hp * Wp + (KW - 1) * DW, dtype=x.dtype)      # the padding stays 0
    out = np.empty(OH * Wp if flat else OW, dtype=x.dtype)        # a flat output plane, or one row
    for n in range(n0, n1):
        for c in range(C):
            plane[:Hp * Wp].reshape(Hp, Wp)[PH:PH + H, PW:PW + W] = x[n, c]
            if flat:
                out[:] = b[c]
                for kh in range(KH):
                    for kw in range(KW):
                        weight, x_shifted = w[c, kh, kw], plane[kh * DH * Wp + kw * DW:]
                        for i in range(OH * Wp):
                            out[i] += weight * x_shifted[i]
                y[n, c] = out.reshape(OH, Wp)[:, :OW]
                continue
            for oh in range(OH):
                out[:] = b[c]
                for kh in range(KH):
                    for kw in range(KW):
                        weight, x_row = w[c, kh, kw], plane[(oh * SH + kh * DH) * Wp + kw * DW:]
                        for ow in range(OW):
                            out[ow] += weight * x_row[ow * SW]
                y[n, c, oh] = out


@jit
def depthwise_backward(x, w, gy, gx, gw, n0, n1, SH, SW, PH, PW, DH, DW):
    """gx[n0:n1] and gw (C, KH, KW) += the images' part of gW. Both come from the same loop (gx is
    not used when x needs no gradient); the caller gives each thread its own gw."""
    N, C, H, W = x.shape
    OH, OW, KH, KW = gy.shape[2], gy.shape[3], w.shape[1], w.shape[2]
    Hp, Wp = H + 2 * PH, W + 2 * PW
    flat, zero = SH == 1 and SW == 1, x.dtype.type(0)
    plane = np.zeros(Hp * Wp + (KW - 1) * DW, dtype=x.dtype)
    g_plane = np.empty(Hp * Wp + (KW - 1) * DW, dtype=x.dtype)
    g_out = np.zeros(OH * Wp, dtype=x.dtype)        # gy laid out as the forward's flat output (scratch: 0)
    for n in range(n0, n1):
        for c in range(C):
            plane[:Hp * Wp].reshape(Hp, Wp)[PH:PH + H, PW:PW + W] = x[n, c]
            g_out.reshape(OH, Wp)[:, :OW] = gy[n, c]
            g_plane[:] = 0
            for kh in range(KH):
                for kw in range(KW):
                    weight, total = w[c, kh, kw], zero
                    if flat:
                        shift = kh * DH * Wp + kw * DW
                        x_shifted, gx_shifted = plane[shift:], g_plane[shift:]
                        for i in range(OH * Wp):
                            gx_shifted[i] += weight * g_out[i]
                            total += g_out[i] * x_shifted[i]
                    else:
                        for oh in range(OH):
                            shift = (oh * SH + kh * DH) * Wp + kw * DW
                            x_row, gx_row, gy_row = plane[shift:], g_plane[shift:], g_out[oh * Wp:]
                            for ow in range(OW):
                                gx_row[ow * SW] += weight * gy_row[ow]
                                total += gy_row[ow] * x_row[ow * SW]
                    gw[c, kh, kw] += total
            gx[n, c] = g_plane[:Hp * Wp].reshape(Hp, Wp)[PH:PH + H, PW:PW + W]
