"""Winograd convolution (minicnn.functional.winograd): F(4×4, 3×3), F(2×2, 3×3), F(1×2, 1×7) and F(2×1, 7×1),
each: the same numbers as im2col's conv in float64 (forward, gx, gW, gb) for every padding, odd and even
sizes, threads and chunks; finite-difference gradient checks; float32 accuracy; the 4-KiB channel-stride
copies; which convs conv2d sends to which. And the Toom-Cook construction of the matrices."""
from fractions import Fraction

import numpy as np
import pytest

import minicnn
from minicnn import Tensor
from minicnn.functional.conv import Conv2dFunction, conv2d
from minicnn.functional.toom_cook import check, matrices, toom_cook
from minicnn.functional.winograd import TILES, WinogradConv2dFunction
from minicnn.gradcheck import gradcheck

ALGORITHMS = [((3, 3), 4), ((3, 3), 2), ((1, 7), 2), ((7, 1), 2)]


@pytest.fixture(params=ALGORITHMS, ids=["F4x4_3x3", "F2x2_3x3", "F1x2_1x7", "F2x1_7x1"])
def algorithm(request, monkeypatch):
    """(kernel, m): WinogradConv2dFunction(...) without m, and conv2d's routing, use this m."""
    monkeypatch.setattr(WinogradConv2dFunction, "m", request.param[1])
    return request.param


def run(cls, x, w, b, gy, padding, needs=(True, True, True)):
    """Forward and backward of one Function on raw arrays: (y, gx, gW, gb)."""
    f = cls(1, padding)
    f.needs_input_grad = needs if b is not None else needs[:2]
    y = f.forward(x, w) if b is None else f.forward(x, w, b)
    grads = f.backward(gy)
    return (y,) + tuple(grads) + ((None,) if b is None else ())


def case(N, C, Cout, H, W, padding, kernel=(3, 3), dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    (KH, KW), (PH, PW) = kernel, (padding, padding) if isinstance(padding, int) else padding
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    w = rng.standard_normal((Cout, C, KH, KW)).astype(dtype)
    b = rng.standard_normal(Cout).astype(dtype)
    gy = rng.standard_normal((N, Cout, H + 2 * PH - KH + 1, W + 2 * PW - KW + 1)).astype(dtype)
    return x, w, b, gy


def transposed(shapes):
    """The shapes of a 1×k kernel's cases for the k×1 kernel: H and W, and the paddings, swapped."""
    return [(N, C, Cout, W, H, p[::-1] if isinstance(p, tuple) else p) for N, C, Cout, H, W, p in shapes]


# N, C, Cout, H, W, padding: even and odd outputs, every padding, non-square, 1 image, 1 output column
SHAPES = {(3, 3): [(2, 3, 4, 6, 6, 1), (3, 4, 5, 8, 7, 0), (2, 5, 3, 6, 9, 2), (1, 2, 2, 3, 3, (1, 2)),
                   (5, 3, 2, 4, 4, 1), (2, 6, 7, 7, 5, (2, 0)), (1, 1, 1, 5, 5, 1), (4, 8, 8, 10, 10, 1)],
          (1, 7): [(2, 3, 4, 6, 9, (0, 3)), (3, 4, 5, 5, 8, 0), (2, 5, 3, 4, 12, (0, 6)), (1, 2, 2, 3, 3, (0, 2)),
                   (5, 3, 2, 4, 10, (0, 3)), (2, 6, 7, 7, 5, (0, 1)), (1, 1, 1, 2, 7, 0), (4, 8, 8, 17, 17, (0, 3))]}
SHAPES[(7, 1)] = transposed(SHAPES[(1, 7)])
PADDING = {(3, 3): 1, (1, 7): (0, 3), (7, 1): (3, 0)}       # "same"


@pytest.mark.parametrize("index", range(8))
@pytest.mark.parametrize("bias", [True, False])
def test_equals_im2col_conv_in_float64(index, bias, algorithm):
    kernel = algorithm[0]
    shape = SHAPES[kernel][index]
    x, w, b, gy = case(*shape, kernel=kernel)
    b = b if bias else None
    ours = run(WinogradConv2dFunction, x, w, b, gy, shape[-1])
    reference = run(Conv2dFunction, x, w, b, gy, shape[-1])
    for name, a, r in zip(("y", "gx", "gW", "gb"), ours, reference):
        if r is None:
            assert a is None, name
        else:
            assert a.shape == r.shape and a.dtype == r.dtype, name
            np.testing.assert_allclose(a, r, rtol=1e-12, atol=1e-12, err_msg=name)


def test_only_the_gradients_asked_for(algorithm):
    kernel = algorithm[0]
    x, w, b, gy = case(2, 3, 4, 8, 8, PADDING[kernel], kernel)
    y, gx, gW, gb = run(WinogradConv2dFunction, x, w, b, gy, PADDING[kernel], needs=(False, True, False))
    assert gx is None and gb is None and gW is not None
    y, gx, gW, gb = run(WinogradConv2dFunction, x, w, b, gy, PADDING[kernel], needs=(True, False, False))
    assert gW is None and gx is not None


@pytest.fixture
def winograd_everywhere(monkeypatch, algorithm):
    """conv2d sends every eligible conv to this algorithm, whatever its size (the thresholds are for speed)."""
    never = 10 ** 9
    monkeypatch.setattr(WinogradConv2dFunction, "min_channels", {k: 0 if k == algorithm else never for k in
                                                                 WinogradConv2dFunction.min_channels})
    monkeypatch.setattr(WinogradConv2dFunction, "min_output_size", dict.fromkeys(ALGORITHMS, 0))
    monkeypatch.setattr(WinogradConv2dFunction, "min_tiles_per_thread", dict.fromkeys(ALGORITHMS, 0))


GRADCHECK = {(3, 3): ((5, 6), [0, 1, 2, (1, 0)]), (1, 7): ((3, 9), [0, (0, 3), (0, 6), (0, 1)]),
             (7, 1): ((9, 3), [0, (3, 0), (6, 0), (1, 0)])}   # (H, W), paddings


@pytest.mark.parametrize("index", range(4))
def test_gradcheck_through_conv2d(winograd_everywhere, algorithm, index):
    (kernel, m), ((H, W), paddings) = algorithm, GRADCHECK[algorithm[0]]
    padding = paddings[index]
    rng = np.random.default_rng(1)
    x, w, b = rng.standard_normal((2, 3, H, W)), rng.standard_normal((4, 3, *kernel)), rng.standard_normal(4)
    used = []

    def fn(x, w, b):
        y = conv2d(x, w, b, padding=padding)
        used.append(y.creator and (type(y.creator), y.creator.m))    # None in the finite differences (no graph)
        return y
    # y is linear in each of x, w and b, so central differences are exact up to rounding, which a
    # large step keeps small (F(4×4)'s float64 rounding, ~1e-14·|y|, over eps = 1e-6 would be ~1e-8).
    assert gradcheck(fn, (x, w, b), eps=1e-3, atol=1e-8, rtol=1e-6)
    assert set(used) - {None} == {(WinogradConv2dFunction, m)}


FLOAT32_ERROR = {  # the largest |y32 − y64| as (a multiple of im2col's, a fraction of max |y64|)
    ((3, 3), 2): (4, 1e-5),   # F(2×2): coefficients 0, ±1/2, ±1 keep it near im2col's (measured 0.4–1.4×)
    ((3, 3), 4): (32, 2e-5),  # F(4×4): coefficients up to 8 and 1/24 (measured 5–13× here, up to 30× at 256 channels)
    ((1, 7), 2): (16, 1e-5),  # F(2, 7): coefficients up to 5.25 (measured 1.4–7.3× here, 2.4–5.7× at 128–192 channels)
    ((7, 1), 2): (16, 1e-5),
}


def test_float32_error_is_that_of_a_float32_conv(algorithm):
    """|y32 − y64| relative to |y64|, for y and each gradient, against im2col's in float32."""
    times_im2col, of_scale = FLOAT32_ERROR[algorithm]
    kernel = algorithm[0]
    x, w, b, gy = case(4, 64, 32, 12, 12, PADDING[kernel], kernel)
    exact = run(Conv2dFunction, x, w, b, gy, PADDING[kernel])
    single = [a.astype(np.float32) for a in (x, w, b, gy)]
    ours = run(WinogradConv2dFunction, *single, PADDING[kernel])
    im2col = run(Conv2dFunction, *single, PADDING[kernel])
    for name, e, a, r in zip(("y", "gx", "gW", "gb"), exact, ours, im2col):
        assert a.dtype == np.float32, name
        scale = np.abs(e).max()
        assert np.abs(a - e).max() <= times_im2col * max(np.abs(r - e).max(), 1e-7 * scale), name
        assert np.abs(a - e).max() <= of_scale * scale, name


@pytest.mark.parametrize("threads_and_chunk", [(1, 2 ** 30), (3, 2 ** 30), (2, 1), (3, 1)], ids=str)
def test_threads_and_chunks_give_the_same_numbers(threads_and_chunk, monkeypatch, algorithm):
    """Shares of the batch on several threads, and chunks of one image (chunk_bytes = 1), against one
    thread in one chunk."""
    n_threads, chunk_bytes = threads_and_chunk
    kernel = algorithm[0]
    x, w, b, gy = case(7, 3, 4, 9, 8, PADDING[kernel], kernel)
    reference = run(Conv2dFunction, x, w, b, gy, PADDING[kernel])
    before = minicnn.get_num_threads()
    monkeypatch.setattr(WinogradConv2dFunction, "chunk_bytes", chunk_bytes)
    monkeypatch.setattr(WinogradConv2dFunction, "min_chunk_tiles", 1)
    monkeypatch.setattr(Conv2dFunction, "min_share_columns", 1)
    try:
        minicnn.set_num_threads(n_threads)
        ours = run(WinogradConv2dFunction, x, w, b, gy, PADDING[kernel])
    finally:
        minicnn.set_num_threads(before)
    for name, a, r in zip(("y", "gx", "gW", "gb"), ours, reference):
        np.testing.assert_allclose(a, r, rtol=1e-12, atol=1e-12, err_msg=name)


@pytest.mark.parametrize("channels", [16, 20])
def test_maps_with_a_4_kib_channel_stride(channels, algorithm):
    """32×32 float32 maps: the NCHW ↔ channels-last copies go 16 channels at a time (also a partial
    last block of 4)."""
    kernel = algorithm[0]
    x, w, b, gy = case(2, channels, channels + 3, 32, 32, PADDING[kernel], kernel, dtype=np.float32, seed=3)
    assert x.strides[1] == 4096 and gy.strides[1] == 4096
    ours = run(WinogradConv2dFunction, x, w, b, gy, PADDING[kernel])
    reference = run(Conv2dFunction, *(a.astype(np.float64) for a in (x, w, b, gy)), PADDING[kernel])
    for name, a, r in zip(("y", "gx", "gW", "gb"), ours, reference):
        np.testing.assert_allclose(a, r, rtol=1e-4, atol=1e-4 * np.abs(r).max(), err_msg=name)


def test_the_workspace_is_reused_across_shapes(algorithm):
    """A big call, a small one, a big one again: each is right (the buffers are views of grown ones)."""
    kernel = algorithm[0]
    shapes = SHAPES[kernel]
    for shape in [shapes[-1], shapes[3], shapes[2], shapes[3]]:
        x, w, b, gy = case(*shape, kernel=kernel, seed=shape[0])
        for a, r in zip(run(WinogradConv2dFunction, x, w, b, gy, shape[-1]),
                        run(Conv2dFunction, x, w, b, gy, shape[-1])):
            np.testing.assert_allclose(a, r, rtol=1e-12, atol=1e-12)


@pytest.fixture
def two_threads():
    before = minicnn.get_num_threads()
    minicnn.set_num_threads(2)
    yield
    minicnn.set_num_threads(before)


def test_which_convolutions_conv2d_sends_to_winograd(two_threads):
    """The cheaper of F(4×4) and F(2×2) where their thresholds hold, else im2col (2 threads)."""

    def route(N=64, C=128, Cout=128, H=8, stride=1, padding=1, dilation=1, groups=1, kernel=3, dtype=np.float32):
        x = Tensor(np.zeros((N, C, H, H), dtype=dtype))
        kernel = kernel if isinstance(kernel, tuple) else (kernel, kernel)
        w = Tensor(np.zeros((Cout, C // groups, *kernel), dtype=dtype), requires_grad=True)
        f = conv2d(x, w, None, stride, padding, dilation, groups).creator
        return "im2col" if type(f) is Conv2dFunction else (type(f) is WinogradConv2dFunction) and f"F{f.m}"

    assert route() == "F4"                            # 8×8 output: 4 tiles per image, 128 per thread
    assert route(C=64, Cout=64) == "F4" and route(C=32) == "im2col" and route(Cout=48) == "im2col"
    assert route(N=32) == "F4"                        # 64 F(4×4) tiles per thread
    assert route(N=31) == "F2"                        # 62: too few for F(4×4); 248 F(2×2) tiles
    assert route(N=31, C=64, Cout=64) == "im2col"     # … but F(2×2) needs 128 channels
    assert route(N=16, C=512, Cout=512, H=7) == "F2"  # 32 F(4×4) tiles per thread, 128 F(2×2) tiles
    # Both possible: 36·(64 + 64) products against 16·(196 + 64), then 36·(64 + 64) against 16·(256 + 64).
    assert route(N=8, C=256, Cout=256, H=14) == "F2" and route(N=128, C=512, Cout=512, H=4) == "F4"
    assert route(N=64, H=16) == "F4"                  # 1024 against 4096 tiles
    assert route(N=15, C=512, Cout=512, H=7) == "im2col"             # 30 and 120
    assert route(H=4, N=128) == "F4" and route(H=4) == "F2"          # 4×4 output: one F(4×4) tile
    # Tiles that overhang the output count against the channels: min(C, Cout)·useful² ≥ min_channels.
    assert route(C=64, Cout=64, H=12) == "F4"         # 3×3 F(4×4) tiles cover 12×12 exactly
    assert route(C=64, Cout=64, H=7) == "im2col"      # 2×2 tiles cover 8×8: useful 49/64, 64·0.59 < 64
    assert route(C=64, Cout=64, H=14) == "im2col" and route(C=96, Cout=96, H=7) == "im2col"
    assert route(C=112, Cout=112, H=7) == "F4"        # 112·0.586 = 65.6
    assert route(H=2, N=4096) == "im2col"             # outputs of at least 4×4
    assert route(stride=2, H=18) == "im2col"
    assert route(dilation=2, H=10) == "im2col"
    assert route(groups=2) == "im2col"
    assert route(padding=3, H=4) == "im2col"
    assert route(kernel=5, padding=2) == "im2col"
    assert route(dtype=np.float16) == "im2col"
    assert route(dtype=np.float64) == "F4"
    # Inception-v3's factorised 7×7 at 17×17, batch 8: F(1×2, 1×7) and F(2×1, 7×1) from 128 channels.
    inception = dict(N=8, C=192, Cout=192, H=17)
    assert route(**inception, kernel=(1, 7), padding=(0, 3)) == "F2" == route(**inception, kernel=(7, 1), padding=(3, 0))
    assert route(N=8, C=128, Cout=160, H=17, kernel=(7, 1), padding=(3, 0)) == "F2"
    assert route(N=8, C=64, Cout=192, H=17, kernel=(1, 7), padding=(0, 3)) == "im2col"     # too narrow
    assert route(N=8, C=96, Cout=96, H=17, kernel=(1, 7), padding=(0, 3)) == "im2col"      # 96·(17/18)² < 112
    assert route(N=1, C=192, Cout=192, H=17, kernel=(1, 7), padding=(0, 3)) == "F2"        # one thread, 153 tiles
    assert route(N=2, C=192, Cout=192, H=9, kernel=(1, 7), padding=(0, 3)) == "im2col"     # 45 tiles per thread
    assert route(**inception, kernel=(1, 7), padding=(1, 3)) == "im2col"                    # padding > kernel − 1
    assert route(**inception, kernel=(1, 3), padding=(0, 1)) == "im2col"                    # not in TILES
    minicnn.set_num_threads(1)
    assert route(N=16) == "F4"                        # one thread: 64 tiles in all suffice


def test_the_toom_cook_matrices():
    """Exact for every F(m, r) the points allow; F(4, 3) is Lavin & Gray's, F(2, 3) theirs up to the
    signs of two rows (moved between Bᵀ and G or Aᵀ); the tiles in TILES exist; too many points fail."""
    for m in range(1, 7):
        for r in range(1, 9 - m):
            assert check(m, r), (m, r)
    lavin = (((4, 0, -5, 0, 1, 0), (0, -4, -4, 1, 1, 0), (0, 4, -4, -1, 1, 0), (0, -2, -1, 2, 1, 0),
              (0, 2, -1, -2, 1, 0), (0, 4, 0, -5, 0, 1)),
             ((Fraction(1, 4), 0, 0), (Fraction(-1, 6),) * 3, (Fraction(-1, 6), Fraction(1, 6), Fraction(-1, 6)),
              (Fraction(1, 24), Fraction(1, 12), Fraction(1, 6)), (Fraction(1, 24), Fraction(-1, 12), Fraction(1, 6)),
              (0, 0, 1)),
             ((1, 1, 1, 1, 1, 0), (0, 1, -1, 2, -2, 0), (0, 1, 1, 4, 4, 0), (0, 1, -1, 8, -8, 1)))
    assert toom_cook(4, 3) == lavin
    BT, G, AT = toom_cook(2, 3)
    assert BT == ((-1, 0, 1, 0), (0, 1, 1, 0), (0, -1, 1, 0), (0, -1, 0, 1)) and AT == ((1, 1, 1, 0), (0, 1, -1, 1))
    assert G == ((-1, 0, 0), (Fraction(1, 2),) * 3, (Fraction(1, 2), Fraction(-1, 2), Fraction(1, 2)), (0, 0, 1))
    assert toom_cook(1, 1) == (((1,),), ((1,),), ((1,),))
    for (KH, KW), tiles in TILES.items():
        for m in tiles:
            assert check(m, max(KH, KW))
    BT32 = matrices(2, 7, np.dtype(np.float32))[0]
    assert BT32.dtype == np.float32 and BT32.shape == (8, 8) and not BT32.flags.writeable
    with pytest.raises(ValueError, match=r"toom_cook: F\(m, r\) needs m, r ≥ 1 and m \+ r − 2 ≤ 7 points, got F\(4, 7\)"):
        toom_cook(4, 7)


def test_m_must_be_2_or_4():
    with pytest.raises(ValueError, match=r"WinogradConv2dFunction: m \(the output tile\) must be one of \[2, 4\], got 3"):
        WinogradConv2dFunction(1, 1, m=3)


def test_kernels_and_tiles_it_lacks_are_refused():
    x = np.zeros((1, 3, 8, 8))
    with pytest.raises(ValueError, match=r"WinogradConv2dFunction: kernels 3×3, 1×7, 7×1 only, got 5×5"):
        WinogradConv2dFunction(1, 2).forward(x, np.zeros((4, 3, 5, 5)))
    with pytest.raises(ValueError, match=r"WinogradConv2dFunction: a 1×7 kernel takes m in \[2\], got 4"):
        WinogradConv2dFunction(1, (0, 3), m=4).forward(x, np.zeros((4, 3, 1, 7)))


def test_bad_input_is_reported_like_conv2d():
    """Winograd inherits conv2d's checks: a wrong weight gets the same clear error."""
    f = WinogradConv2dFunction(1, 1)
    with pytest.raises(ValueError, match=r"conv2d: weight shape \(4, 5, 3, 3\) has 5 input channels"):
        f.forward(np.zeros((1, 3, 6, 6)), np.zeros((4, 5, 3, 3)))
