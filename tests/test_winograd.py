"""Winograd F(2×2, 3×3) convolution (minicnn.functional.winograd): the same numbers as im2col's conv in
float64 (forward, gx, gW, gb) for every padding, odd and even sizes, threads and chunks; finite-difference
gradient checks; float32 accuracy; the 4-KiB channel-stride copies; which convs conv2d sends to it."""
import numpy as np
import pytest

import minicnn
from minicnn import Tensor
from minicnn.functional.conv import Conv2dFunction, conv2d
from minicnn.functional.winograd import WinogradConv2dFunction
from minicnn.gradcheck import gradcheck


def run(cls, x, w, b, gy, padding, needs=(True, True, True)):
    """Forward and backward of one Function on raw arrays: (y, gx, gW, gb)."""
    f = cls(1, padding)
    f.needs_input_grad = needs if b is not None else needs[:2]
    y = f.forward(x, w) if b is None else f.forward(x, w, b)
    grads = f.backward(gy)
    return (y,) + tuple(grads) + ((None,) if b is None else ())


def case(N, C, Cout, H, W, padding, dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    w = rng.standard_normal((Cout, C, 3, 3)).astype(dtype)
    b = rng.standard_normal(Cout).astype(dtype)
    (PH, PW) = (padding, padding) if isinstance(padding, int) else padding
    gy = rng.standard_normal((N, Cout, H + 2 * PH - 2, W + 2 * PW - 2)).astype(dtype)
    return x, w, b, gy


SHAPES = [  # N, C, Cout, H, W, padding: even and odd outputs, every padding, non-square, 1 image
    (2, 3, 4, 6, 6, 1), (3, 4, 5, 8, 7, 0), (2, 5, 3, 6, 9, 2), (1, 2, 2, 3, 3, (1, 2)),
    (5, 3, 2, 4, 4, 1), (2, 6, 7, 7, 5, (2, 0)), (1, 1, 1, 5, 5, 1), (4, 8, 8, 10, 10, 1),
]


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("bias", [True, False])
def test_equals_im2col_conv_in_float64(shape, bias):
    x, w, b, gy = case(*shape)
    b = b if bias else None
    ours = run(WinogradConv2dFunction, x, w, b, gy, shape[-1])
    reference = run(Conv2dFunction, x, w, b, gy, shape[-1])
    for name, a, r in zip(("y", "gx", "gW", "gb"), ours, reference):
        if r is None:
            assert a is None, name
        else:
            assert a.shape == r.shape and a.dtype == r.dtype, name
            np.testing.assert_allclose(a, r, rtol=1e-12, atol=1e-12, err_msg=name)


def test_only_the_gradients_asked_for():
    x, w, b, gy = case(2, 3, 4, 6, 6, 1)
    y, gx, gW, gb = run(WinogradConv2dFunction, x, w, b, gy, 1, needs=(False, True, False))
    assert gx is None and gb is None and gW is not None
    y, gx, gW, gb = run(WinogradConv2dFunction, x, w, b, gy, 1, needs=(True, False, False))
    assert gW is None and gx is not None


@pytest.fixture
def winograd_everywhere(monkeypatch):
    """conv2d sends every eligible conv to Winograd, whatever its size (the thresholds are for speed)."""
    monkeypatch.setattr(WinogradConv2dFunction, "min_channels", 0)
    monkeypatch.setattr(WinogradConv2dFunction, "min_output_size", 0)
    monkeypatch.setattr(WinogradConv2dFunction, "min_tiles_per_thread", 0)


@pytest.mark.parametrize("padding", [0, 1, 2, (1, 0)])
def test_gradcheck_through_conv2d(winograd_everywhere, padding):
    rng = np.random.default_rng(1)
    x, w, b = rng.standard_normal((2, 3, 5, 6)), rng.standard_normal((4, 3, 3, 3)), rng.standard_normal(4)
    used = []

    def fn(x, w, b):
        y = conv2d(x, w, b, padding=padding)
        used.append(type(y.creator))    # None in the finite differences (no graph)
        return y
    assert gradcheck(fn, (x, w, b), atol=1e-8, rtol=1e-6)
    assert set(used) - {type(None)} == {WinogradConv2dFunction}


def test_float32_error_is_that_of_a_float32_conv():
    """|y32 − y64| relative to |y64|: Winograd's coefficients (0, ±1/2, ±1) keep it near im2col's."""
    x, w, b, gy = case(4, 64, 32, 12, 12, 1)
    exact = run(Conv2dFunction, x, w, b, gy, 1)
    single = [a.astype(np.float32) for a in (x, w, b, gy)]
    ours = run(WinogradConv2dFunction, *single, 1)
    im2col = run(Conv2dFunction, *single, 1)
    for name, e, a, r in zip(("y", "gx", "gW", "gb"), exact, ours, im2col):
        assert a.dtype == np.float32, name
        scale = np.abs(e).max()
        assert np.abs(a - e).max() <= 4 * max(np.abs(r - e).max(), 1e-7 * scale), name
        assert np.abs(a - e).max() <= 1e-5 * scale, name


@pytest.mark.parametrize("threads_and_chunk", [(1, 2 ** 30), (3, 2 ** 30), (2, 1), (3, 1)], ids=str)
def test_threads_and_chunks_give_the_same_numbers(threads_and_chunk, monkeypatch):
    """Shares of the batch on several threads, and chunks of one image (chunk_bytes = 1), against one
    thread in one chunk."""
    n_threads, chunk_bytes = threads_and_chunk
    x, w, b, gy = case(7, 3, 4, 9, 8, 1)
    reference = run(Conv2dFunction, x, w, b, gy, 1)
    before = minicnn.get_num_threads()
    monkeypatch.setattr(WinogradConv2dFunction, "chunk_bytes", chunk_bytes)
    monkeypatch.setattr(WinogradConv2dFunction, "min_chunk_tiles", 1)
    monkeypatch.setattr(Conv2dFunction, "min_share_columns", 1)
    try:
        minicnn.set_num_threads(n_threads)
        ours = run(WinogradConv2dFunction, x, w, b, gy, 1)
    finally:
        minicnn.set_num_threads(before)
    for name, a, r in zip(("y", "gx", "gW", "gb"), ours, reference):
        np.testing.assert_allclose(a, r, rtol=1e-12, atol=1e-12, err_msg=name)


@pytest.mark.parametrize("channels", [16, 20])
def test_maps_with_a_4_kib_channel_stride(channels):
    """32×32 float32 maps: the NCHW ↔ channels-last copies go 16 channels at a time (also a partial
    last block of 4)."""
    x, w, b, gy = case(2, channels, channels + 3, 32, 32, 1, dtype=np.float32, seed=3)
    assert x.strides[1] == 4096 and gy.strides[1] == 4096
    ours = run(WinogradConv2dFunction, x, w, b, gy, 1)
    reference = run(Conv2dFunction, *(a.astype(np.float64) for a in (x, w, b, gy)), 1)
    for name, a, r in zip(("y", "gx", "gW", "gb"), ours, reference):
        np.testing.assert_allclose(a, r, rtol=1e-4, atol=1e-4 * np.abs(r).max(), err_msg=name)


def test_the_workspace_is_reused_across_shapes():
    """A big call, a small one, a big one again: each is right (the buffers are views of grown ones)."""
    for shape in [(3, 6, 5, 12, 12, 1), (1, 2, 3, 4, 5, 0), (2, 7, 4, 14, 9, 2), (1, 2, 3, 4, 5, 0)]:
        x, w, b, gy = case(*shape, seed=shape[0])
        for a, r in zip(run(WinogradConv2dFunction, x, w, b, gy, shape[-1]),
                        run(Conv2dFunction, x, w, b, gy, shape[-1])):
            np.testing.assert_allclose(a, r, rtol=1e-12, atol=1e-12)


def test_which_convolutions_conv2d_sends_to_winograd(monkeypatch):
    monkeypatch.setattr(minicnn.parallel, "get_num_threads", lambda: 2)

    def route(N=64, C=128, Cout=128, H=8, stride=1, padding=1, dilation=1, groups=1, kernel=3, dtype=np.float32):
        x = Tensor(np.zeros((N, C, H, H), dtype=dtype))
        w = Tensor(np.zeros((Cout, C // groups, kernel, kernel), dtype=dtype), requires_grad=True)
        return type(conv2d(x, w, None, stride, padding, dilation, groups).creator)

    assert route() is WinogradConv2dFunction          # 128 → 128 channels, 8×8 output, 512 tiles per thread
    assert route(C=256, Cout=128, H=14, N=8) is Conv2dFunction      # 196 tiles per thread: too few
    assert route(C=256, Cout=128, H=14, N=11) is WinogradConv2dFunction           # 269
    assert route(N=32) is WinogradConv2dFunction and route(N=31) is Conv2dFunction   # 256 and 248
    assert route(C=512, Cout=512, H=4, N=128) is WinogradConv2dFunction           # 4×4 maps, 256
    assert route(C=64) is Conv2dFunction              # too few channels: im2col is as fast
    assert route(Cout=64) is Conv2dFunction
    assert route(H=2, N=1024) is Conv2dFunction       # 2×2 output: one tile from a 2×2 of planes
    assert route(stride=2, H=18) is Conv2dFunction
    assert route(dilation=2, H=10) is Conv2dFunction
    assert route(groups=2) is Conv2dFunction
    assert route(padding=3, H=4) is Conv2dFunction
    assert route(kernel=5, padding=2) is Conv2dFunction
    assert route(dtype=np.float16) is Conv2dFunction
    assert route(dtype=np.float64) is WinogradConv2dFunction
    monkeypatch.setattr(minicnn.parallel, "get_num_threads", lambda: 1)
    assert route(N=16) is WinogradConv2dFunction      # one thread: 256 tiles in all suffice


def test_bad_input_is_reported_like_conv2d():
    """Winograd inherits conv2d's checks: a wrong weight gets the same clear error."""
    f = WinogradConv2dFunction(1, 1)
    with pytest.raises(ValueError, match=r"conv2d: weight shape \(4, 5, 3, 3\) has 5 input channels"):
        f.forward(np.zeros((1, 3, 6, 6)), np.zeros((4, 5, 3, 3)))
