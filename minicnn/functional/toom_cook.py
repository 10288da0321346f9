"""Where Winograd's matrices come from: F(m, r) by Toom-Cook, exactly, from a list of points.

F(m, r) computes m outputs of an r-tap correlation from the n = m + r − 1 inputs they see,

    y[j] = Σ_k g[k]·d[j + k]        j < m, k < r            as   y = Aᵀ [ (G g) ⊙ (Bᵀ d) ]

with n multiplications (the ⊙) instead of m·r. It is the transpose of Toom-Cook's polynomial product:
to multiply h(x) (degree m − 1) by g(x) (degree r − 1), evaluate both at n points, multiply the values,
and interpolate the product (degree n − 1) back from them. With n − 1 finite points a_t and the point
"∞" (which stands for the leading coefficient), Lagrange's interpolation gives

    Aᵀ[j, t] = a_t^j                      Aᵀ[j, ∞] = 1 if j = m − 1 else 0
    G[t, k]  = a_t^k / Π_(l≠t) (a_t − a_l) G[∞, k]  = 1 if k = r − 1 else 0
    Bᵀ[t, i] = coefficient of x^i in Π_(l≠t) (x − a_l)      Bᵀ[∞, i] = that of Π_l (x − a_l)

and then y[j] = Σ_t Aᵀ[j, t]·(G g)[t]·(Bᵀ d)[t] = Σ_k g[k]·d[j + k] for every d and g (``check``). The
points are 0, 1, −1, 2, −2, 1/2, −1/2, the first n − 1 of them. F(4, 3)'s matrices are then exactly
Lavin & Gray's; F(2, 3)'s differ from theirs in the signs of two rows of Bᵀ (moved to G or Aᵀ: the
same products). Small points keep the coefficients small, which is what float32 needs: the
larger m + r, the larger the coefficients and the rounding error (F(2, 7)'s Bᵀ reaches 5.25).
F(1, 1) is the trivial algorithm, all three matrices [[1]] (the unit axis of a 1×7 kernel).
"""
from __future__ import annotations

from fractions import Fraction
from functools import lru_cache

import numpy as np

__all__ = ["toom_cook", "check", "matrices"]

POINTS = tuple(Fraction(p) for p in ("0", "1", "-1", "2", "-2", "1/2", "-1/2"))


def _times(p, q):
    """The coefficients (lowest first) of the product of two polynomials."""
    out = [Fraction(0)] * (len(p) + len(q) - 1)
    for i, a in enumerate(p):
        for j, b in enumerate(q):
            out[i + j] += a * b
    return out


def _monic(roots, n):
    """Π (x − a) over ``roots``, its n coefficients (lowest first, zeros above the degree)."""
    p = [Fraction(1)]
    for a in roots:
        p = _times(p, [-a, Fraction(1)])
    return p + [Fraction(0)] * (n - len(p))


@lru_cache(maxsize=None)
def toom_cook(m, r):
    """(Bᵀ (n×n), G (n×r), Aᵀ (m×n)) of F(m, r), n = m + r − 1, as tuples of Fraction rows: exact."""
    n = m + r - 1
    if m < 1 or r < 1 or n - 1 > len(POINTS):
        raise ValueError(f"toom_cook: F(m, r) needs m, r ≥ 1 and m + r − 2 ≤ {len(POINTS)} points, got F({m}, {r})")
    points = POINTS[:n - 1]
    BT, G = [], []
    for t, a in enumerate(points):
        others = points[:t] + points[t + 1:]
        scale = Fraction(1)
        for b in others:
            scale *= a - b
        BT.append(_monic(others, n))
        G.append([a ** k / scale for k in range(r)])
    BT.append(_monic(points, n))                                    # the point ∞
    G.append([Fraction(int(k == r - 1)) for k in range(r)])
    AT = [[a ** j for a in points] + [Fraction(int(j == m - 1))] for j in range(m)]
    return tuple(map(tuple, BT)), tuple(map(tuple, G)), tuple(map(tuple, AT))


def check(m, r):
    """True when F(m, r)'s matrices compute the correlation for every d and g, exactly (in Fractions):
    Σ_t Aᵀ[j, t]·G[t, k]·Bᵀ[t, i] = 1 if i = j + k else 0, for every output j, tap k and input i."""
    BT, G, AT = toom_cook(m, r)
    n = m + r - 1
    return all(sum(AT[j][t] * G[t][k] * BT[t][i] for t in range(n)) == (i == j + k)
               for j in range(m) for k in range(r) for i in range(n))


@lru_cache(maxsize=None)
def matrices(m, r, dtype):
    """(Bᵀ, G, Aᵀ) of F(m, r) as read-only arrays of ``dtype``."""
    arrays = tuple(np.array([[float(v) for v in row] for row in M], dtype=dtype) for M in toom_cook(m, r))
    for a in arrays:
        a.setflags(write=False)
    return arrays
