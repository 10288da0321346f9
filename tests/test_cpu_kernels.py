"""minicnn.cpu: the compiled CPU kernels (numba) against the NumPy path and the naive references,
their gradients against finite differences, their threads, and the switch that turns them off.

The kernels are optional: every test that runs one skips when numba is not installed. The ops'
own test files run both paths too (the ``cpu_kernels`` fixture of conftest.py).
"""
import importlib

import numpy as np
import pytest

import minicnn
from minicnn import Tensor, cpu
from minicnn.cpu import depthwise_kernels
from minicnn.functional.conv import conv2d
from minicnn.functional.depthwise import DepthwiseConv2dFunction
from minicnn.gradcheck import gradcheck

from test_conv import naive_conv2d

needs_numba = pytest.mark.skipif(not cpu.is_available(), reason="numba is not installed")


def random(shape, seed, dtype=np.float64):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


# ------------------------------------------------------------------ the switch -----------------

def test_kernels_apply_only_to_one_float32_or_float64_dtype_of_numpy_arrays_when_enabled():
    a32, a64, a16 = np.zeros(3, np.float32), np.zeros(3), np.zeros(3, np.float16)
    with cpu.flags(enabled=True):
        assert cpu.kernels_apply(a32, a32) == cpu.kernels_apply(a64) == cpu.is_available()
        assert not cpu.kernels_apply(a16) and not cpu.kernels_apply(a32, a64) and not cpu.kernels_apply()
    with cpu.flags(enabled=False):
        assert not cpu.kernels_apply(a32)


def test_flags_restore_the_previous_setting_even_after_an_error():
    before = cpu.enabled
    with pytest.raises(KeyError):
        with cpu.flags(enabled=not before):
            assert cpu.enabled is (not before)
            raise KeyError("inside")
    assert cpu.enabled is before


@pytest.mark.parametrize("value, enabled", [("0", False), ("false", False), ("no", False), ("1", True), ("", True)])
def test_the_environment_variable_sets_the_default(monkeypatch, value, enabled):
    monkeypatch.setenv("MINICNN_CPU_KERNELS", value)
    try:
        assert importlib.reload(cpu).enabled is enabled
    finally:
        monkeypatch.delenv("MINICNN_CPU_KERNELS")
        importlib.reload(cpu)


def test_a_kernel_without_numba_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(cpu, "_numba", False)
    assert not cpu.is_available() and not cpu.kernels_apply(np.zeros(2))
    kernel = cpu.jit(lambda a: a)
    with pytest.raises(RuntimeError, match=r"minicnn.cpu: <lambda> needs numba.*pip install 'minicnn\[cpu\]'"):
        kernel(np.zeros(2))


# ------------------------------------------------------------------ depthwise conv -------------

DEPTHWISE = {   # x shape, kernel, stride, padding, dilation (3×3 stride 1: depthwise3x3_*, else the general kernels)
    "3x3 same":        ((2, 4, 6, 7), (3, 3), 1, 1, 1),
    "3x3 dilated (2, 1), pad (0, 2)": ((2, 3, 9, 6), (3, 3), 1, (0, 2), (2, 1)),
    "3x3 stride 2":    ((2, 3, 9, 8), (3, 3), 2, 1, 1),
    "5x3 mixed":       ((2, 3, 10, 11), (5, 3), (2, 1), (2, 0), (1, 2)),
    "dilated, no pad": ((1, 2, 8, 8), (3, 3), 1, 0, 2),
    "1x1 stride 3":    ((2, 3, 7, 7), (1, 1), 3, 0, 1),
    "wider than tall": ((2, 2, 3, 17), (3, 3), (1, 3), (1, 2), 1),
}


def depthwise_arrays(name, seed, dtype=np.float64):
    x_shape, kernel, stride, padding, dilation = DEPTHWISE[name]
    C = x_shape[1]
    x, w, b = random(x_shape, seed, dtype), random((C, 1, *kernel), seed + 1, dtype), random((C,), seed + 2, dtype)
    return x, w, b, dict(stride=stride, padding=padding, dilation=dilation, groups=C)


@needs_numba
@pytest.mark.parametrize("dtype, tolerance", [(np.float64, 1e-12), (np.float32, 2e-5)])
@pytest.mark.parametrize("name", DEPTHWISE)
def test_depthwise_kernels_forward_equals_the_naive_convolution(name, dtype, tolerance):
    x, w, b, hyper = depthwise_arrays(name, 0, dtype)
    with cpu.flags(enabled=True):
        y = conv2d(Tensor(x, requires_grad=True), w, b, **hyper)
    assert isinstance(y.creator, DepthwiseConv2dFunction) and y.creator.by_kernels and y.dtype == dtype
    expected = naive_conv2d(x.astype(np.float64), w.astype(np.float64), b.astype(np.float64), **hyper)
    np.testing.assert_allclose(y.data, expected, rtol=tolerance, atol=tolerance)


@needs_numba
@pytest.mark.parametrize("name", DEPTHWISE)
def test_depthwise_kernels_gradients_match_finite_differences(name):
    x, w, b, hyper = depthwise_arrays(name, 10)
    with cpu.flags(enabled=True):
        gradcheck(lambda x, w, b: conv2d(x, w, b, **hyper), [Tensor(a, requires_grad=True) for a in (x, w, b)])
        gradcheck(lambda x, w: conv2d(x, w, **hyper), [Tensor(x, requires_grad=True), Tensor(w)])
        gradcheck(lambda x, w: conv2d(x, w, **hyper), [Tensor(x), Tensor(w, requires_grad=True)])


@needs_numba
@pytest.mark.parametrize("name", ["3x3 same", "3x3 stride 2"])
def test_depthwise_kernels_give_the_same_numbers_on_one_thread_or_on_several(name, threads, monkeypatch):
    monkeypatch.setattr(DepthwiseConv2dFunction, "min_share_columns", 1)     # even tiny batches are shared
    x, w, b, hyper = depthwise_arrays(name, 20)
    x = np.concatenate([x] * 3)                    # 6 images: shares of 3, 2 and 2, or 6
    results = []
    for n in (1, 3):
        threads(n)
        xt, wt, bt = (Tensor(a, requires_grad=True) for a in (x, w, b))
        with cpu.flags(enabled=True):
            y = conv2d(xt, wt, bt, **hyper)
            assert len(y.creator.shares) == n
            y.backward(random(y.shape, 21))
        results.append((y.data, xt.grad.data, wt.grad.data, bt.grad.data))
    for one, several, what in zip(*results, ("y", "gx", "gW", "gb")):
        np.testing.assert_allclose(several, one, rtol=1e-13, atol=1e-13, err_msg=what)


@needs_numba
@pytest.mark.parametrize("name", ["5x3 mixed", "3x3 dilated (2, 1), pad (0, 2)"])
def test_depthwise_kernels_compiled_equal_their_plain_python_loops(name):
    # The kernels are Python: run uncompiled (.py_func) on a tiny input, they give the same numbers.
    x, w, b, hyper = depthwise_arrays(name, 30)
    f = DepthwiseConv2dFunction(hyper["stride"], hyper["padding"], hyper["dilation"], hyper["groups"])
    three = f._three_by_three(w[:, 0])
    assert three == (name != "5x3 mixed")
    kernels = (("depthwise3x3_forward", "depthwise3x3_backward") if three else ("depthwise_forward", "depthwise_backward"))
    geometry = (() if three else f.stride) + f.padding + f.dilation
    y_shape = conv2d(x, w, **hyper).shape
    gy = random(y_shape, 31)
    outputs = []
    for compiled in (True, False):
        forward, backward = (getattr(depthwise_kernels, k) if compiled else getattr(depthwise_kernels, k).py_func
                             for k in kernels)
        y, gx, gw, gb = np.empty(y_shape), np.empty_like(x), np.zeros(w[:, 0].shape), np.zeros(len(b))
        forward(x, w[:, 0], b, y, 0, 2, *geometry)
        backward(x, w[:, 0], gy, gx, gw, gb, 0, 2, *geometry)
        outputs.append((y, gx, gw, gb))
    np.testing.assert_allclose(outputs[0][3], gy.sum(axis=(0, 2, 3)), rtol=1e-13, atol=1e-13)
    for compiled, python, what in zip(*outputs, ("y", "gx", "gW", "gb")):
        np.testing.assert_allclose(compiled, python, rtol=1e-13, atol=1e-13, err_msg=what)


# ------------------------------------------------------------------ im2col ---------------------
# (tests/test_im2col.py checks both kernels bit for bit against the NumPy path on every geometry there,
# and its hypothesis test runs them on random ones; the conv tests run on both paths.)

@needs_numba
@pytest.mark.parametrize("geometry", [((3, 3), (1, 1), (1, 1), (1, 1)),     # a "same" conv: the runs
                                      ((3, 2), (2, 3), (2, 0), (1, 2))])    # strided rows, dilation
def test_im2col_kernels_compiled_equal_their_plain_python_loops(geometry):
    from minicnn.cpu import im2col_kernels
    (KH, KW), stride, padding, dilation = geometry
    x = random((2, 3, 5, 6), 33)
    OH, OW = ((s + 2 * p - d * (k - 1) - 1) // st + 1
              for s, k, st, p, d in zip(x.shape[2:], (KH, KW), stride, padding, dilation))
    c = random((3, KH, KW, 2, OH, OW), 34)
    outputs = []
    for im2col, col2im in ((im2col_kernels.im2col, im2col_kernels.col2im),
                           (im2col_kernels.im2col.py_func, im2col_kernels.col2im.py_func)):
        col, gx = np.full(c.shape, np.nan), np.full(x.shape, np.nan)
        im2col(x, col, *stride, *padding, *dilation)
        col2im(c, gx, *stride, *padding, *dilation)
        outputs.append((col, gx))
    for compiled, python, what in zip(*outputs, ("col", "gx")):
        np.testing.assert_array_equal(compiled, python, err_msg=what)


# ------------------------------------------------------------------ batch norm -----------------

def batch_norm_step(x, training, relu, enabled, seed=40):
    """batch_norm(_relu) forward + backward with the kernels on or off: y, gx, gγ, gβ, running μ, σ²."""
    C = x.shape[1]
    rng = np.random.default_rng(seed)
    gamma, beta, gy = rng.standard_normal(C), rng.standard_normal(C), rng.standard_normal(x.shape)
    gamma, beta, gy = (a.astype(x.dtype) for a in (gamma, beta, gy))
    running_mean, running_var = np.full(C, 0.5, x.dtype), np.full(C, 2.0, x.dtype)
    xt, gt, bt = (Tensor(a, requires_grad=True) for a in (x, gamma, beta))
    with cpu.flags(enabled=enabled):
        op = minicnn.functional.batch_norm_relu if relu else minicnn.functional.batch_norm
        y = op(xt, running_mean, running_var, gt, bt, training=training)
        assert y.creator.by_kernels == (enabled and x.ndim > 2)
        y.backward(gy)
    return y.data, xt.grad.data, gt.grad.data, bt.grad.data, running_mean, running_var


@needs_numba
@pytest.mark.parametrize("relu", [False, True], ids=["bn", "bn+relu"])
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("shape", [(4, 3, 5, 6), (3, 2, 7), (2, 4, 1, 1)])
def test_batch_norm_kernels_equal_the_numpy_path(shape, training, relu):
    x = random(shape, 41) * 3 + 1
    kernels, numpy_path = (batch_norm_step(x, training, relu, enabled) for enabled in (True, False))
    for a, b, what in zip(kernels, numpy_path, ("y", "gx", "gγ", "gβ", "running_mean", "running_var")):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12, err_msg=what)


@needs_numba
def test_batch_norm_kernels_leave_2d_inputs_to_the_numpy_path():
    batch_norm_step(random((6, 3), 42), True, False, enabled=True)      # asserts by_kernels is False


@needs_numba
@pytest.mark.parametrize("relu", [False, True], ids=["bn", "bn+relu"])
def test_batch_norm_kernels_in_float32_are_close_to_float64(relu):
    # 2,304 values per channel: sums in float32 per row of 144, in float64 across the rows.
    x = (random((16, 4, 12, 12), 43) * 3 + 1).astype(np.float32)
    exact = batch_norm_step(x.astype(np.float64), True, relu, enabled=False)    # the same inputs, in float64
    for got, e, what in zip(batch_norm_step(x, True, relu, enabled=True), exact,
                            ("y", "gx", "gγ", "gβ", "running_mean", "running_var")):
        assert got.dtype == np.float32 and np.abs(got - e).max() <= 1e-5 * np.abs(e).max(), what


@needs_numba
def test_batch_norm_relu_kernel_keeps_a_nan_a_nan():
    x = random((2, 2, 3, 3), 44)
    x[1, 0, 2, 1] = np.nan
    with cpu.flags(enabled=True):
        y = minicnn.functional.batch_norm_relu(Tensor(x), None, None, training=True)
    assert np.isnan(y.data[:, 0]).all() and not np.isnan(y.data[:, 1]).any()     # channel 0's μ is NaN


@needs_numba
@pytest.mark.parametrize("relu", [False, True], ids=["bn", "bn+relu"])
def test_batch_norm_kernels_give_the_same_numbers_on_one_thread_or_on_several(relu, threads, monkeypatch):
    from minicnn.functional.norm import BatchNorm
    monkeypatch.setattr(BatchNorm, "min_share", 1)                            # even tiny inputs are shared
    x = random((3, 5, 4, 4), 45)
    results = []
    for n in (1, 3):
        threads(n)
        results.append(batch_norm_step(x, True, relu, enabled=True))
    for one, several, what in zip(*results, ("y", "gx", "gγ", "gβ", "running_mean", "running_var")):
        np.testing.assert_array_equal(several, one, err_msg=what)           # channels are independent


@needs_numba
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_batch_norm_kernels_gradients_match_finite_differences(training):
    x, gamma, beta = random((3, 2, 3, 4), 46), random((2,), 47), random((2,), 48)
    for op in (minicnn.functional.batch_norm, minicnn.functional.batch_norm_relu):
        with cpu.flags(enabled=True):
            gradcheck(lambda x, g, b: op(x, np.full(2, 0.3), np.full(2, 1.7), g, b, training=training),
                      [Tensor(a, requires_grad=True) for a in (x, gamma, beta)])


@needs_numba
def test_batch_norm_kernels_compiled_equal_their_plain_python_loops():
    from minicnn.cpu import norm_kernels
    x, gy = random((2, 3, 5), 49), random((2, 3, 5), 50)
    gamma, beta = random((3,), 51), random((3,), 52)
    outputs = []
    for forward, backward in ((norm_kernels.batch_norm_forward, norm_kernels.batch_norm_backward),
                              (norm_kernels.batch_norm_forward.py_func, norm_kernels.batch_norm_backward.py_func)):
        mean, var, inv_std, y = np.empty(3), np.empty(3), np.empty(3), np.empty_like(x)
        forward(x, gamma, beta, mean, var, inv_std, y, 0, 3, 1e-5, True, True)
        gx, g_gamma, g_beta = np.empty_like(x), np.empty(3), np.empty(3)
        backward(x, gy, y, mean, inv_std, gamma, gx, g_gamma, g_beta, 0, 3, True, True, True)
        outputs.append((y, mean, var, gx, g_gamma, g_beta))
    for compiled, python, what in zip(*outputs, ("y", "μ", "σ²", "gx", "gγ", "gβ")):
        np.testing.assert_allclose(compiled, python, rtol=1e-13, atol=1e-13, err_msg=what)


def test_importing_minicnn_does_not_import_numba():
    import subprocess
    import sys
    code = ("import sys, minicnn, minicnn.functional, minicnn.nn, minicnn.models; minicnn.cpu.enabled; "
            "assert 'numba' not in sys.modules, 'numba was imported'")
    subprocess.run([sys.executable, "-c", code], check=True)
