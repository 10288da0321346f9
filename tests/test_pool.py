"""Pooling: against naive loops, gradient checks, PyTorch as an optional oracle, and bad input.

The naive references below loop over every output pixel and every window position, written for
clarity (cs231n style); they share no code with minicnn.functional.pool.
"""
import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minicnn import backend
from minicnn.autograd import Tensor
from minicnn.functional.pool import (adaptive_avg_pool2d, adaptive_max_pool2d, avg_pool2d, global_avg_pool2d,
                                     max_pool2d, pool_output_size)
from minicnn.gradcheck import gradcheck
from minicnn.nn.module import Module
from minicnn.nn.pool import AdaptiveAvgPool2d, AdaptiveMaxPool2d, AvgPool2d, GlobalAvgPool2d, MaxPool2d


def to_numpy(a):
    return backend.as_numpy(a.data if isinstance(a, Tensor) else a)


def pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def distinct_values(shape, seed=0):
    """A shuffled linspace: no two elements equal, so every window has a unique maximum."""
    rng = np.random.default_rng(seed)
    return rng.permutation(np.linspace(-1.0, 1.0, int(np.prod(shape)))).reshape(shape)


# ------------------------------------------------------------------ naive references -----------

def reference_output_size(size, kernel, stride, padding, dilation, ceil_mode):
    """The brief's formula, (H + 2p − d(k−1) − 1)/s rounded down or up, + 1, then PyTorch's last-window rule."""
    quotient = (size + 2 * padding - dilation * (kernel - 1) - 1) / stride
    out = (math.ceil(quotient) if ceil_mode else math.floor(quotient)) + 1
    if ceil_mode and (out - 1) * stride >= size + padding:
        out -= 1
    return out


def naive_max_pool(x, kernel, stride, padding, dilation, ceil_mode):
    """Returns (y, indices): the first largest real pixel of each window and its position h·W + w.

    A dilated window can see padding only (e.g. taps at rows −1 and 1 of a 1-row input): its
    maximum is −inf, as in PyTorch, and its index, −1 here, is not part of the specification.
    """
    (KH, KW), (SH, SW), (PH, PW), (DH, DW) = kernel, stride, padding, dilation
    N, C, H, W = x.shape
    OH = reference_output_size(H, KH, SH, PH, DH, ceil_mode)
    OW = reference_output_size(W, KW, SW, PW, DW, ceil_mode)
    y = np.zeros((N, C, OH, OW), dtype=x.dtype)
    indices = np.zeros((N, C, OH, OW), dtype=np.int64)
    for n, c, oh, ow in itertools.product(range(N), range(C), range(OH), range(OW)):
        best, best_index = -np.inf, -1
        for kh in range(KH):
            for kw in range(KW):
                h = oh * SH - PH + kh * DH
                w = ow * SW - PW + kw * DW
                if not (0 <= h < H and 0 <= w < W):
                    continue                          # padding never wins
                if best_index == -1 or x[n, c, h, w] > best:
                    best, best_index = x[n, c, h, w], h * W + w
        y[n, c, oh, ow], indices[n, c, oh, ow] = best, best_index
    return y, indices


def naive_max_pool_backward(x, gy, kernel, stride, padding, dilation, ceil_mode):
    """Send each gy[n, c, oh, ow] to its window's (first) maximum."""
    _, indices = naive_max_pool(x, kernel, stride, padding, dilation, ceil_mode)
    N, C, H, W = x.shape
    gx = np.zeros(x.shape, dtype=gy.dtype)
    for n, c, oh, ow in np.ndindex(*gy.shape):
        if indices[n, c, oh, ow] < 0:
            continue                                  # a window of padding only passes no gradient
        h, w = divmod(int(indices[n, c, oh, ow]), W)
        gx[n, c, h, w] += gy[n, c, oh, ow]
    return gx


def naive_avg_pool(x, kernel, stride, padding, ceil_mode, count_include_pad, divisor_override=None):
    (KH, KW), (SH, SW), (PH, PW) = kernel, stride, padding
    N, C, H, W = x.shape
    OH = reference_output_size(H, KH, SH, PH, 1, ceil_mode)
    OW = reference_output_size(W, KW, SW, PW, 1, ceil_mode)
    y = np.zeros((N, C, OH, OW), dtype=x.dtype)
    for n, c, oh, ow in itertools.product(range(N), range(C), range(OH), range(OW)):
        total, real_pixels, padded_pixels = 0.0, 0, 0
        for kh in range(KH):
            for kw in range(KW):
                h = oh * SH - PH + kh
                w = ow * SW - PW + kw
                if 0 <= h < H and 0 <= w < W:
                    total += x[n, c, h, w]
                    real_pixels += 1
                if -PH <= h < H + PH and -PW <= w < W + PW:
                    padded_pixels += 1                # inside the padded input (not past its border)
        if divisor_override is not None:
            divisor = divisor_override
        else:
            divisor = padded_pixels if count_include_pad else real_pixels
        y[n, c, oh, ow] = total / divisor
    return y


def adaptive_window(i, size, out):
    return math.floor(i * size / out), math.ceil((i + 1) * size / out)


def naive_adaptive_pool(x, output_size, reduce):
    """reduce="avg" or "max"; returns y (and, for max, the positions h·W + w of the first maxima)."""
    N, C, H, W = x.shape
    OH, OW = output_size
    y = np.zeros((N, C, OH, OW), dtype=x.dtype)
    indices = np.zeros((N, C, OH, OW), dtype=np.int64)
    for n, c, oh, ow in itertools.product(range(N), range(C), range(OH), range(OW)):
        h0, h1 = adaptive_window(oh, H, OH)
        w0, w1 = adaptive_window(ow, W, OW)
        window = x[n, c, h0:h1, w0:w1]
        if reduce == "avg":
            y[n, c, oh, ow] = window.sum() / window.size
        else:
            kh, kw = np.unravel_index(np.argmax(window), window.shape)    # first maximum, row-major
            y[n, c, oh, ow] = window[kh, kw]
            indices[n, c, oh, ow] = (h0 + kh) * W + (w0 + kw)
    return y, indices


# ------------------------------------------------------------------ option grids ---------------

# (shape, kernel_size, stride, padding, dilation, ceil_mode)
MAX_POOL_CASES = [
    ((2, 3, 8, 8), 2, None, 0, 1, False),            # VGG 2×2/2
    ((2, 3, 7, 7), 3, 2, 0, 1, False),               # AlexNet overlapping 3×3/2
    ((2, 2, 9, 9), 3, 2, 1, 1, False),               # ResNet stem 3×3/2 pad 1
    ((1, 2, 8, 8), 3, 2, 0, 1, True),                # ceil mode: last window runs past the input
    ((1, 2, 6, 6), 2, 2, 1, 1, True),                # ceil mode with padding: the last-window rule drops one
    ((2, 1, 7, 10), (2, 3), (1, 2), (1, 1), 1, False),   # non-square kernel and stride
    ((1, 2, 9, 7), (3, 2), (2, 3), (1, 0), 1, True),
    ((1, 2, 11, 9), 3, 2, 1, 2, False),              # dilation
    ((1, 2, 10, 11), (2, 3), (3, 1), (1, 1), (3, 2), True),
    ((1, 1, 5, 5), 5, 1, 0, 1, False),               # one window covering everything
    ((1, 1, 3, 4), 1, 2, 0, 1, True),                # stride > kernel
]

# (shape, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override)
AVG_POOL_CASES = [
    ((2, 3, 8, 8), 2, None, 0, False, True, None),                # ResNet-D shortcut 2×2/2
    ((1, 2, 7, 7), 3, 1, 1, False, True, None),                   # Inception pool branch 3×3/1 pad 1
    ((1, 2, 7, 7), 3, 1, 1, False, False, None),                  # ... TensorFlow's divisor
    ((1, 2, 17, 17), 5, 3, 0, False, True, None),                 # Inception aux head 17 → 5
    ((1, 2, 8, 9), 3, 2, 1, True, True, None),                    # ceil: windows past the padded border
    ((1, 2, 8, 9), 3, 2, 1, True, False, None),
    ((2, 1, 7, 10), (2, 3), (1, 2), (1, 1), False, True, None),
    ((2, 1, 9, 7), (3, 2), (2, 3), (1, 0), True, False, None),
    ((1, 2, 6, 5), (4, 2), (3, 2), (2, 1), True, True, None),
    ((1, 2, 7, 7), 3, 2, 1, False, True, 4),                      # divisor_override
]

ADAPTIVE_CASES = [((2, 3, 7, 9), 1), ((2, 2, 7, 9), (3, 4)), ((1, 2, 13, 13), 6), ((1, 2, 8, 8), (5, None)),
                  ((1, 2, 5, 3), (7, 4)), ((1, 1, 6, 6), (6, 6)), ((1, 2, 10, 7), (3, 7))]


def adaptive_out(shape, output_size):
    return tuple(s if o is None else o for o, s in zip(pair(output_size), shape[2:]))


# ------------------------------------------------------------------ output size ----------------

@given(size=st.integers(1, 40), kernel=st.integers(1, 7), stride=st.integers(1, 5), dilation=st.integers(1, 3),
       padding_fraction=st.floats(0, 1), ceil_mode=st.booleans())
def test_pool_output_size_is_the_floor_or_ceil_formula_with_the_last_window_rule(
        size, kernel, stride, dilation, padding_fraction, ceil_mode):
    padding = int(padding_fraction * (kernel // 2))
    out = pool_output_size(size, kernel, stride, padding, dilation, ceil_mode)
    assert out == reference_output_size(size, kernel, stride, padding, dilation, ceil_mode)
    extent = dilation * (kernel - 1) + 1
    if size + 2 * padding >= extent:
        # Counted window by window: floor mode keeps the windows that fit in the padded input; ceil
        # mode adds windows while the previous one has not reached its end, but only windows that
        # start inside the input or its left padding.
        starts = range(0, size + 2 * padding, stride)
        if not ceil_mode:
            expected = sum(1 for s in starts if s + extent <= size + 2 * padding)
        else:
            expected = sum(1 for i, s in enumerate(starts)
                           if s < size + padding and (i == 0 or s - stride + extent < size + 2 * padding))
        assert out == expected


def test_28x28_through_five_2x2_pools_collapses_in_floor_mode_but_not_in_ceil_mode():
    x = np.ones((1, 1, 28, 28), np.float32)
    sizes = []
    y = x
    for _ in range(5):
        y = max_pool2d(y, 2, ceil_mode=True)
        sizes.append(y.shape[-1])
    assert sizes == [14, 7, 4, 2, 1]
    y = x
    for _ in range(4):
        y = max_pool2d(y, 2)
    assert y.shape[-1] == 1
    with pytest.raises(ValueError, match="max_pool2d"):
        max_pool2d(y, 2)


# ------------------------------------------------------------------ forward vs naive -----------

@pytest.mark.parametrize("shape, kernel_size, stride, padding, dilation, ceil_mode", MAX_POOL_CASES)
def test_max_pool2d_matches_naive_loops(xp, shape, kernel_size, stride, padding, dilation, ceil_mode):
    x = np.random.default_rng(1).standard_normal(shape)
    y, indices = max_pool2d(xp.asarray(x), kernel_size, stride, padding, dilation, ceil_mode, return_indices=True)
    expected, expected_indices = naive_max_pool(x, pair(kernel_size), pair(kernel_size if stride is None else stride),
                                                pair(padding), pair(dilation), ceil_mode)
    assert backend.get_array_module(y.data) is xp
    np.testing.assert_array_equal(to_numpy(y), expected)
    np.testing.assert_array_equal(to_numpy(indices), expected_indices)
    assert indices.dtype == np.int64 and not indices.requires_grad


def test_max_pool2d_padding_counts_as_minus_infinity_not_zero(xp):
    x = -1.0 - np.random.default_rng(2).random((1, 2, 5, 5))          # every pixel < 0
    y = to_numpy(max_pool2d(xp.asarray(x), 3, 2, 1))
    assert (y < -1).all()


def test_max_pool2d_ties_go_to_the_first_maximum_in_row_major_order(xp):
    x = np.zeros((1, 1, 5, 5))
    y, indices = max_pool2d(xp.asarray(x), 3, 2, return_indices=True)
    np.testing.assert_array_equal(to_numpy(indices)[0, 0], [[0, 2], [10, 12]])


def test_max_pool2d_propagates_nan_wherever_it_sits_in_the_window(xp):
    x = np.arange(16.0).reshape(1, 1, 4, 4)
    x[0, 0, 1, 1] = np.nan                              # the last tap of window (0, 0), not its first
    y = to_numpy(max_pool2d(xp.asarray(x), 2))[0, 0]
    assert np.isnan(y[0, 0]) and not np.isnan(y[1:, :]).any() and not np.isnan(y[:, 1:]).any()


@pytest.mark.parametrize("shape, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override",
                         AVG_POOL_CASES)
def test_avg_pool2d_matches_naive_loops(xp, shape, kernel_size, stride, padding, ceil_mode, count_include_pad,
                                        divisor_override):
    x = np.random.default_rng(3).standard_normal(shape)
    y = avg_pool2d(xp.asarray(x), kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override)
    expected = naive_avg_pool(x, pair(kernel_size), pair(kernel_size if stride is None else stride), pair(padding),
                              ceil_mode, count_include_pad, divisor_override)
    np.testing.assert_allclose(to_numpy(y), expected, rtol=1e-12, atol=1e-14)


def test_avg_pool2d_ceil_mode_window_past_the_padded_border_is_divided_by_its_clipped_size(xp):
    # H = W = 4, 3×3 stride 2 pad 1, ceil mode: windows start at −1, 1, 3; the last covers rows 3, 4, 5,
    # of which 3 is real, 4 is padding and 5 lies past the padded input [−1, 5).
    x = xp.ones((1, 1, 4, 4))
    with_pad = to_numpy(avg_pool2d(x, 3, 2, 1, ceil_mode=True, count_include_pad=True))[0, 0]
    without_pad = to_numpy(avg_pool2d(x, 3, 2, 1, ceil_mode=True, count_include_pad=False))[0, 0]
    assert with_pad.shape == (3, 3)
    assert with_pad[2, 2] == 1 / 4          # one real pixel over a 2×2 clipped window
    assert with_pad[0, 0] == 4 / 9          # a full 3×3 window with 5 padded positions
    assert with_pad[1, 1] == 1.0
    np.testing.assert_array_equal(without_pad, np.ones((3, 3)))


@pytest.mark.parametrize("shape, output_size", ADAPTIVE_CASES)
def test_adaptive_pools_match_naive_loops(xp, shape, output_size):
    x = distinct_values(shape, seed=4)
    out = adaptive_out(shape, output_size)
    y_avg = adaptive_avg_pool2d(xp.asarray(x), output_size)
    y_max, indices = adaptive_max_pool2d(xp.asarray(x), output_size, return_indices=True)
    expected_avg, _ = naive_adaptive_pool(x, out, "avg")
    expected_max, expected_indices = naive_adaptive_pool(x, out, "max")
    np.testing.assert_allclose(to_numpy(y_avg), expected_avg, rtol=1e-12, atol=1e-14)
    np.testing.assert_array_equal(to_numpy(y_max), expected_max)
    np.testing.assert_array_equal(to_numpy(indices), expected_indices)


def test_adaptive_max_pool2d_ties_go_to_the_first_maximum(xp):
    x = np.zeros((1, 1, 5, 7))
    _, indices = adaptive_max_pool2d(xp.asarray(x), (2, 3), return_indices=True)
    expected = np.array([[(h0 * 7 + w0) for w0 in (0, 2, 4)] for h0 in (0, 2)])
    np.testing.assert_array_equal(to_numpy(indices)[0, 0], expected)


def test_global_avg_pool2d_is_the_channel_mean_with_1x1_spatial_axes(xp):
    x = np.random.default_rng(5).standard_normal((2, 3, 5, 7))
    y = global_avg_pool2d(xp.asarray(x))
    assert y.shape == (2, 3, 1, 1)
    np.testing.assert_allclose(to_numpy(y)[:, :, 0, 0], [[x[n, c].sum() / 35 for c in range(3)] for n in range(2)],
                               rtol=1e-12)
    np.testing.assert_allclose(to_numpy(adaptive_avg_pool2d(xp.asarray(x), 1)), to_numpy(y), rtol=1e-12)


# ------------------------------------------------------------------ property test --------------

@st.composite
def pool_settings(draw):
    kernel = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    stride = (draw(st.integers(1, 4)), draw(st.integers(1, 4)))
    padding = tuple(draw(st.integers(0, k // 2)) for k in kernel)
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    shape = (draw(st.integers(1, 2)), draw(st.integers(1, 2)), draw(st.integers(1, 9)), draw(st.integers(1, 9)))
    return shape, kernel, stride, padding, dilation, draw(st.booleans()), draw(st.booleans())


@settings(max_examples=150, deadline=None)
@given(pool_settings(), st.integers(0, 2**32 - 1))
def test_pools_match_naive_loops_and_the_output_size_formula_on_random_settings(case, seed):
    shape, kernel, stride, padding, dilation, ceil_mode, count_include_pad = case
    x = distinct_values(shape, seed)
    out = tuple(reference_output_size(*args, ceil_mode) for args in zip(shape[2:], kernel, stride, padding, dilation))
    if min(out) < 1:
        with pytest.raises(ValueError, match="max_pool2d"):
            max_pool2d(x, kernel, stride, padding, dilation, ceil_mode)
    else:
        y, indices = max_pool2d(x, kernel, stride, padding, dilation, ceil_mode, return_indices=True)
        expected, expected_indices = naive_max_pool(x, kernel, stride, padding, dilation, ceil_mode)
        assert y.shape == shape[:2] + out
        np.testing.assert_array_equal(y.data, expected)
        seen_a_pixel = expected_indices >= 0
        np.testing.assert_array_equal(indices.data[seen_a_pixel], expected_indices[seen_a_pixel])

    out = tuple(reference_output_size(*args, 1, ceil_mode) for args in zip(shape[2:], kernel, stride, padding))
    if min(out) < 1:
        with pytest.raises(ValueError, match="avg_pool2d"):
            avg_pool2d(x, kernel, stride, padding, ceil_mode, count_include_pad)
    else:
        y = avg_pool2d(x, kernel, stride, padding, ceil_mode, count_include_pad)
        assert y.shape == shape[:2] + out
        np.testing.assert_allclose(y.data, naive_avg_pool(x, kernel, stride, padding, ceil_mode, count_include_pad),
                                   rtol=1e-12, atol=1e-14)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 10), st.integers(1, 10), st.integers(1, 12), st.integers(1, 12))
def test_adaptive_pools_match_naive_loops_on_random_sizes(H, W, OH, OW):
    x = distinct_values((2, 2, H, W), seed=H * 100 + W)
    expected_avg, _ = naive_adaptive_pool(x, (OH, OW), "avg")
    expected_max, expected_indices = naive_adaptive_pool(x, (OH, OW), "max")
    np.testing.assert_allclose(adaptive_avg_pool2d(x, (OH, OW)).data, expected_avg, rtol=1e-12, atol=1e-14)
    y, indices = adaptive_max_pool2d(x, (OH, OW), return_indices=True)
    np.testing.assert_array_equal(y.data, expected_max)
    np.testing.assert_array_equal(indices.data, expected_indices)


# ------------------------------------------------------------------ backward -------------------

@pytest.mark.parametrize("shape, kernel_size, stride, padding, dilation, ceil_mode", MAX_POOL_CASES)
def test_max_pool2d_gradcheck(xp, shape, kernel_size, stride, padding, dilation, ceil_mode):
    x = Tensor(xp.asarray(distinct_values(shape, seed=6)), requires_grad=True)
    gradcheck(lambda x: max_pool2d(x, kernel_size, stride, padding, dilation, ceil_mode), [x])


@pytest.mark.parametrize("shape, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override",
                         AVG_POOL_CASES)
def test_avg_pool2d_gradcheck(xp, shape, kernel_size, stride, padding, ceil_mode, count_include_pad,
                              divisor_override):
    x = Tensor(xp.asarray(np.random.default_rng(7).standard_normal(shape)), requires_grad=True)
    gradcheck(lambda x: avg_pool2d(x, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override),
              [x])


@pytest.mark.parametrize("shape, output_size", ADAPTIVE_CASES)
def test_adaptive_pools_gradcheck(xp, shape, output_size):
    x = Tensor(xp.asarray(distinct_values(shape, seed=8)), requires_grad=True)
    gradcheck(lambda x: adaptive_avg_pool2d(x, output_size), [x])
    gradcheck(lambda x: adaptive_max_pool2d(x, output_size), [x])


def test_global_avg_pool2d_gradcheck(xp):
    x = Tensor(xp.asarray(np.random.default_rng(9).standard_normal((2, 3, 4, 5))), requires_grad=True)
    gradcheck(global_avg_pool2d, [x])


def test_max_pool2d_backward_with_overlapping_windows_and_ties_matches_naive_scatter(xp):
    # Integers 0..2 give many ties; 3×3 stride 2 windows share their border rows and columns, so one
    # pixel can be the maximum of up to four windows and must receive the sum of their gradients.
    rng = np.random.default_rng(10)
    x = rng.integers(0, 3, (2, 3, 9, 11)).astype(np.float64)
    for kernel, stride, padding, ceil_mode in [(3, 2, 0, False), (3, 2, 1, True), ((3, 2), (2, 1), (1, 0), True)]:
        xt = Tensor(xp.asarray(x), requires_grad=True)
        y = max_pool2d(xt, kernel, stride, padding, ceil_mode=ceil_mode)
        gy = rng.standard_normal(y.shape)
        y.backward(xp.asarray(gy))
        expected = naive_max_pool_backward(x, gy, pair(kernel), pair(stride), pair(padding), (1, 1), ceil_mode)
        np.testing.assert_allclose(to_numpy(xt.grad), expected, rtol=1e-12, atol=1e-14)


def test_avg_pool2d_backward_spreads_each_gradient_over_its_window(xp):
    rng = np.random.default_rng(11)
    x = Tensor(xp.zeros((1, 2, 8, 9)), requires_grad=True)
    y = avg_pool2d(x, 3, 2, 1, ceil_mode=True, count_include_pad=False)
    gy = rng.standard_normal(y.shape)
    y.backward(xp.asarray(gy))
    expected = np.zeros((1, 2, 8, 9))
    for n, c, oh, ow in np.ndindex(*gy.shape):
        rows = [h for h in range(oh * 2 - 1, oh * 2 + 2) if 0 <= h < 8]
        cols = [w for w in range(ow * 2 - 1, ow * 2 + 2) if 0 <= w < 9]
        for h, w in itertools.product(rows, cols):
            expected[n, c, h, w] += gy[n, c, oh, ow] / (len(rows) * len(cols))
    np.testing.assert_allclose(to_numpy(x.grad), expected, rtol=1e-12, atol=1e-14)


# ------------------------------------------------------------------ dtypes ---------------------

@pytest.mark.parametrize("dtype", [np.float32, np.float16])
@pytest.mark.parametrize("pool", [
    lambda x: max_pool2d(x, 3, 2, 1, ceil_mode=True),
    lambda x: avg_pool2d(x, 3, 2, 1, ceil_mode=True, count_include_pad=False),
    lambda x: adaptive_avg_pool2d(x, (3, 2)),
    lambda x: adaptive_max_pool2d(x, (3, 2)),
    global_avg_pool2d,
], ids=["max", "avg", "adaptive_avg", "adaptive_max", "global_avg"])
def test_pools_keep_the_input_dtype_forward_and_backward(xp, dtype, pool):
    x = Tensor(xp.asarray(np.random.default_rng(12).standard_normal((2, 3, 7, 6)).astype(dtype)),
               requires_grad=True)
    y = pool(x)
    y.backward(xp.ones(y.shape, dtype=dtype))
    assert y.dtype == dtype and x.grad.dtype == dtype


# ------------------------------------------------------------------ bad input ------------------

@pytest.mark.parametrize("op", [max_pool2d, avg_pool2d])
def test_pools_reject_inputs_that_are_not_4d(op):
    for shape in [(3, 8, 8), (1, 1, 3, 8, 8)]:
        with pytest.raises(ValueError, match=rf"{op.__name__}.*4-D.*{re_shape(shape)}"):
            op(np.zeros(shape, np.float32), 2)


def re_shape(shape):
    return str(tuple(shape)).replace("(", r"\(").replace(")", r"\)")


@pytest.mark.parametrize("op", [max_pool2d, avg_pool2d])
def test_pools_reject_a_kernel_larger_than_the_padded_input(op):
    with pytest.raises(ValueError, match=rf"{op.__name__}.*\(5, 5\).*\(6, 4\).*{re_shape((1, 2, 4, 2))}"):
        op(np.zeros((1, 2, 4, 2), np.float32), 5, 1, 1)


@pytest.mark.parametrize("op", [max_pool2d, avg_pool2d])
@pytest.mark.parametrize("stride", [0, -1, (1, 0)])
def test_pools_reject_non_positive_strides(op, stride):
    with pytest.raises(ValueError, match=rf"{op.__name__}.*stride"):
        op(np.zeros((1, 1, 6, 6), np.float32), 2, stride)


@pytest.mark.parametrize("op", [max_pool2d, avg_pool2d])
@pytest.mark.parametrize("kernel_size, padding", [(3, 2), (2, 2), ((3, 5), (1, 3)), (1, 1)])
def test_pools_reject_padding_over_half_the_kernel(op, kernel_size, padding):
    with pytest.raises(ValueError, match=rf"{op.__name__}.*padding.*half"):
        op(np.zeros((1, 1, 9, 9), np.float32), kernel_size, 1, padding)


@pytest.mark.parametrize("op", [max_pool2d, avg_pool2d])
def test_pools_reject_other_bad_hyper_parameters(op):
    x = np.zeros((1, 1, 6, 6), np.float32)
    for kwargs in [dict(kernel_size=0), dict(kernel_size=(2, 2, 2)), dict(kernel_size=2.0),
                   dict(kernel_size=3, padding=-1)]:
        with pytest.raises(ValueError, match=op.__name__):
            op(x, **kwargs)
    with pytest.raises(ValueError, match=rf"{op.__name__}.*floating.*int64"):
        op(np.zeros((1, 1, 6, 6), np.int64), 2)


def test_max_pool2d_rejects_non_positive_dilation():
    with pytest.raises(ValueError, match="max_pool2d.*dilation"):
        max_pool2d(np.zeros((1, 1, 6, 6)), 2, dilation=0)


@pytest.mark.parametrize("op", [adaptive_avg_pool2d, adaptive_max_pool2d])
def test_adaptive_pools_reject_bad_input(op):
    with pytest.raises(ValueError, match=rf"{op.__name__}.*4-D.*\(3, 5, 5\)"):
        op(np.zeros((3, 5, 5)), 2)
    for output_size in [0, (2, 0), (1, 2, 3), 2.5]:
        with pytest.raises(ValueError, match=op.__name__):
            op(np.zeros((1, 3, 5, 5)), output_size)


def test_global_avg_pool2d_rejects_input_that_is_not_4d():
    with pytest.raises(ValueError, match=r"global_avg_pool2d.*4-D.*\(2, 3\)"):
        global_avg_pool2d(np.zeros((2, 3)))


# ------------------------------------------------------------------ nn layers ------------------

def test_pool_layers_call_the_functions_and_have_no_parameters():
    x = distinct_values((2, 3, 9, 8))
    layers_and_expected = [
        (MaxPool2d(3, 2, 1, ceil_mode=True), max_pool2d(x, 3, 2, 1, ceil_mode=True)),
        (AvgPool2d((3, 2), 1, (1, 0), count_include_pad=False), avg_pool2d(x, (3, 2), 1, (1, 0),
                                                                            count_include_pad=False)),
        (AdaptiveAvgPool2d((4, None)), adaptive_avg_pool2d(x, (4, None))),
        (AdaptiveMaxPool2d(2), adaptive_max_pool2d(x, 2)),
        (GlobalAvgPool2d(), global_avg_pool2d(x)),
    ]
    for layer, expected in layers_and_expected:
        assert isinstance(layer, Module) and list(layer.parameters()) == []
        np.testing.assert_array_equal(layer(Tensor(x)).data, expected.data)
    y, indices = MaxPool2d(2, return_indices=True)(x)
    np.testing.assert_array_equal(indices.data, max_pool2d(x, 2, return_indices=True)[1].data)


def test_pool_layers_repr_like_pytorch():
    assert repr(MaxPool2d(3, 2)) == "MaxPool2d(kernel_size=3, stride=2, padding=0, dilation=1, ceil_mode=False)"
    assert repr(AvgPool2d(3)) == "AvgPool2d(kernel_size=3, stride=3, padding=0)"
    assert repr(AdaptiveAvgPool2d((5, None))) == "AdaptiveAvgPool2d(output_size=(5, None))"
    assert repr(AdaptiveMaxPool2d(1)) == "AdaptiveMaxPool2d(output_size=1)"
    assert repr(GlobalAvgPool2d()) == "GlobalAvgPool2d()"


# ------------------------------------------------------------------ PyTorch oracle -------------

def torch_forward_backward(torch_fn, x, gy_seed):
    """Run a torch function on a float64 copy of x; return (outputs as numpy, x.grad for a random gy)."""
    torch = pytest.importorskip("torch")
    xt = torch.tensor(x, requires_grad=True)
    out = torch_fn(xt)
    y, indices = out if isinstance(out, tuple) else (out, None)
    gy = np.random.default_rng(gy_seed).standard_normal(tuple(y.shape))
    y.backward(torch.tensor(gy))
    return y.detach().numpy(), (None if indices is None else indices.numpy()), gy, xt.grad.numpy()


def minicnn_forward_backward(fn, x, gy):
    xt = Tensor(x.copy(), requires_grad=True)
    out = fn(xt)
    y, indices = out if isinstance(out, tuple) else (out, None)
    y.backward(gy)
    return y.data, (None if indices is None else indices.data), xt.grad.data


@pytest.mark.parametrize("ties", [False, True], ids=["distinct", "ties"])
@pytest.mark.parametrize("shape, kernel_size, stride, padding, dilation, ceil_mode", MAX_POOL_CASES)
def test_max_pool2d_agrees_with_pytorch(shape, kernel_size, stride, padding, dilation, ceil_mode, ties):
    torch = pytest.importorskip("torch")
    x = (np.random.default_rng(13).integers(0, 3, shape).astype(np.float64) if ties
         else distinct_values(shape, seed=13))
    args = (kernel_size, stride, padding, dilation, ceil_mode, True)
    y_t, i_t, gy, gx_t = torch_forward_backward(lambda t: torch.nn.functional.max_pool2d(t, *args), x, 14)
    y, i, gx = minicnn_forward_backward(lambda t: max_pool2d(t, *args), x, gy)
    np.testing.assert_array_equal(y, y_t)
    np.testing.assert_array_equal(i, i_t)
    np.testing.assert_allclose(gx, gx_t, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("shape, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override",
                         AVG_POOL_CASES)
def test_avg_pool2d_agrees_with_pytorch(shape, kernel_size, stride, padding, ceil_mode, count_include_pad,
                                        divisor_override):
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(15).standard_normal(shape)
    args = (kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override)
    y_t, _, gy, gx_t = torch_forward_backward(lambda t: torch.nn.functional.avg_pool2d(t, *args), x, 16)
    y, _, gx = minicnn_forward_backward(lambda t: avg_pool2d(t, *args), x, gy)
    np.testing.assert_allclose(y, y_t, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(gx, gx_t, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("shape, output_size", ADAPTIVE_CASES)
def test_adaptive_pools_agree_with_pytorch(shape, output_size):
    torch = pytest.importorskip("torch")
    x = distinct_values(shape, seed=17)
    y_t, _, gy, gx_t = torch_forward_backward(lambda t: torch.nn.functional.adaptive_avg_pool2d(t, output_size), x, 18)
    y, _, gx = minicnn_forward_backward(lambda t: adaptive_avg_pool2d(t, output_size), x, gy)
    np.testing.assert_allclose(y, y_t, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(gx, gx_t, rtol=1e-12, atol=1e-14)
    y_t, i_t, gy, gx_t = torch_forward_backward(
        lambda t: torch.nn.functional.adaptive_max_pool2d(t, output_size, return_indices=True), x, 19)
    y, i, gx = minicnn_forward_backward(lambda t: adaptive_max_pool2d(t, output_size, return_indices=True), x, gy)
    np.testing.assert_array_equal(y, y_t)
    np.testing.assert_array_equal(i, i_t)
    np.testing.assert_allclose(gx, gx_t, rtol=1e-12, atol=1e-14)


@settings(max_examples=100, deadline=None)
@given(pool_settings())
def test_pools_agree_with_pytorch_on_random_settings(case):
    torch = pytest.importorskip("torch")
    shape, kernel, stride, padding, dilation, ceil_mode, count_include_pad = case
    x = distinct_values(shape, seed=20)
    xt = torch.tensor(x)
    for ours, theirs in [
        (lambda: max_pool2d(x, kernel, stride, padding, dilation, ceil_mode),
         lambda: torch.nn.functional.max_pool2d(xt, kernel, stride, padding, dilation, ceil_mode)),
        (lambda: avg_pool2d(x, kernel, stride, padding, ceil_mode, count_include_pad),
         lambda: torch.nn.functional.avg_pool2d(xt, kernel, stride, padding, ceil_mode, count_include_pad)),
    ]:
        try:
            expected = theirs().numpy()
        except RuntimeError:                  # PyTorch refuses: so must we
            with pytest.raises(ValueError):
                ours()
            continue
        np.testing.assert_allclose(ours().data, expected, rtol=1e-12, atol=1e-14)
