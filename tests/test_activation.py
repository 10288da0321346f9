"""Activations: relu, relu6, sigmoid, tanh, softmax, log_softmax, and their nn layers.

Forward passes are checked against naive per-element loops written from the formulas with Python's
``math``, backward passes with float64 gradient checks (random upstream gradient) and, for softmax,
against the explicit Jacobian diag(y) − y yᵀ; stability at logits of ±500 against a float64 reference.
"""
import itertools
import math

import numpy as np
import pytest

from minicnn import backend
from minicnn.autograd import Tensor
from minicnn.functional.activation import log_softmax, relu, relu6, sigmoid, softmax, tanh
from minicnn.gradcheck import gradcheck
from minicnn.nn.activation import LogSoftmax, ReLU, ReLU6, Sigmoid, Softmax, Tanh


def to_numpy(a):
    return backend.as_numpy(a.data if isinstance(a, Tensor) else a)


def leaf(xp, array):
    """A float64 tensor on xp's device that requires grad (for gradcheck)."""
    return Tensor(xp.asarray(np.asarray(array, np.float64)), requires_grad=True)


def away_from(rng, shape, points, margin=0.1, scale=3.0):
    """Random values at least ``margin`` from each of ``points`` (the kinks of relu / relu6)."""
    x = rng.uniform(-scale, scale + 6, size=shape)
    for p in points:
        too_close = np.abs(x - p) < margin
        x[too_close] = p + np.where(x[too_close] >= p, margin, -margin) * 2
    return x


# ------------------------------------------------------------------ naive references -----------

def naive_elementwise(fn, x):
    y = np.empty(x.shape, np.float64)
    for i in np.ndindex(*x.shape):
        y[i] = fn(float(x[i]))
    return y


def naive_relu(v):
    return v if v > 0 else 0.0


def naive_relu6(v):
    return min(max(v, 0.0), 6.0)


def naive_sigmoid(v):
    """The textbook formula; fine in float64 for |v| < 700."""
    return 1.0 / (1.0 + math.exp(-v))


def naive_softmax_rows(x):
    """Row by row, the textbook formula without any shift: y_k = e^(x_k) / Σ_j e^(x_j).
    In Python floats this is exact enough for |x| ≤ 700 (e^700 ≈ 1e304 does not overflow)."""
    y = np.empty(x.shape, np.float64)
    for i in range(x.shape[0]):
        exps = [math.exp(float(v)) for v in x[i]]
        total = sum(exps)
        for k in range(x.shape[1]):
            y[i, k] = exps[k] / total
    return y


def naive_log_softmax_rows(x):
    """y_k = x_k − log Σ_j e^(x_j), row by row, without any shift."""
    y = np.empty(x.shape, np.float64)
    for i in range(x.shape[0]):
        log_total = math.log(sum(math.exp(float(v)) for v in x[i]))
        for k in range(x.shape[1]):
            y[i, k] = float(x[i, k]) - log_total
    return y


def along(dim, x, fn_rows):
    """Apply a row-wise reference along axis ``dim`` of x by moving that axis last."""
    moved = np.moveaxis(x, dim, -1)
    out = fn_rows(moved.reshape(-1, moved.shape[-1])).reshape(moved.shape)
    return np.moveaxis(out, -1, dim)


# ------------------------------------------------------------------ forward ---------------------

ELEMENTWISE = [
    ("relu", relu, naive_relu),
    ("relu6", relu6, naive_relu6),
    ("sigmoid", sigmoid, naive_sigmoid),
    ("tanh", tanh, math.tanh),
]


@pytest.mark.parametrize("name, fn, reference", ELEMENTWISE, ids=[e[0] for e in ELEMENTWISE])
def test_elementwise_forward_matches_naive_reference(xp, rng, name, fn, reference):
    x = rng.uniform(-9, 9, size=(3, 4, 5))
    y = fn(xp.asarray(x))
    np.testing.assert_allclose(to_numpy(y), naive_elementwise(reference, x), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("name, fn, reference", ELEMENTWISE, ids=[e[0] for e in ELEMENTWISE])
def test_elementwise_keeps_float32(xp, rng, name, fn, reference):
    x = Tensor(xp.asarray(rng.standard_normal((4, 5)).astype(np.float32)), requires_grad=True)
    y = fn(x)
    y.backward(xp.ones((4, 5), np.float32))
    assert y.dtype == np.float32 and x.grad.dtype == np.float32


def test_relu_and_relu6_clip_exactly_at_their_kinks(xp):
    x = xp.asarray(np.array([-1.0, 0.0, 3.0, 6.0, 7.5]))
    np.testing.assert_array_equal(to_numpy(relu(x)), [0, 0, 3, 6, 7.5])
    np.testing.assert_array_equal(to_numpy(relu6(x)), [0, 0, 3, 6, 6])


def test_sigmoid_is_finite_and_exact_for_huge_inputs(xp):
    x32 = np.array([-1e4, -500, -100, -20, 0, 20, 100, 500, 1e4], np.float32)
    y = to_numpy(sigmoid(xp.asarray(x32)))      # pytest.ini turns overflow warnings into errors
    assert y.dtype == np.float32 and np.all(np.isfinite(y))
    assert np.all((0 <= y) & (y <= 1))
    np.testing.assert_array_equal(y[[0, 1, -2, -1]], [0, 0, 1, 1])
    moderate = x32[2:-2].astype(np.float64)
    np.testing.assert_allclose(y[2:-2], naive_elementwise(naive_sigmoid, moderate), rtol=1e-6, atol=1e-45)


def test_sigmoid_is_symmetric_far_out_in_float64(xp):
    x = np.linspace(-700, 700, 57)
    y = to_numpy(sigmoid(xp.asarray(x)))
    np.testing.assert_allclose(y, naive_elementwise(naive_sigmoid, x), rtol=1e-13, atol=0)
    np.testing.assert_allclose(y + y[::-1], 1.0, rtol=0, atol=1e-15)


@pytest.mark.parametrize("dim", [0, 1, 2, -1])
def test_softmax_forward_matches_naive_reference_along_any_dim(xp, rng, dim):
    x = rng.standard_normal((3, 4, 5)) * 3
    y = to_numpy(softmax(xp.asarray(x), dim))
    np.testing.assert_allclose(y, along(dim, x, naive_softmax_rows), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(y.sum(axis=dim), 1.0, rtol=1e-12)


@pytest.mark.parametrize("dim", [0, 1, 2, -1])
def test_log_softmax_forward_matches_naive_reference_along_any_dim(xp, rng, dim):
    x = rng.standard_normal((3, 4, 5)) * 3
    y = to_numpy(log_softmax(xp.asarray(x), dim))
    np.testing.assert_allclose(y, along(dim, x, naive_log_softmax_rows), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype, rtol", [(np.float32, 1e-5), (np.float64, 1e-12)])
def test_softmax_is_stable_for_logits_in_the_hundreds(xp, rng, dtype, rtol):
    x = rng.uniform(-500, 500, size=(6, 7))
    x[0] = 500.0                                       # ties at the top
    x[1] = [-500.0] * 7                                # a row entirely far below zero
    y = to_numpy(softmax(xp.asarray(x.astype(dtype)), dim=1))
    assert y.dtype == dtype and np.all(np.isfinite(y))
    reference = naive_softmax_rows(x.astype(dtype).astype(np.float64))
    np.testing.assert_allclose(y, reference, rtol=rtol, atol=np.finfo(dtype).tiny)


@pytest.mark.parametrize("dtype, rtol", [(np.float32, 1e-6), (np.float64, 1e-13)])
def test_log_softmax_is_stable_for_logits_in_the_hundreds(xp, rng, dtype, rtol):
    x = rng.uniform(-500, 500, size=(6, 7))
    x[0] = 500.0
    x[1] = [-500.0] * 7
    x[2, :2] = 500.0, -500.0                          # log_softmax ≈ −1000 where softmax is 0
    y = to_numpy(log_softmax(xp.asarray(x.astype(dtype)), dim=1))
    assert y.dtype == dtype and np.all(np.isfinite(y))
    reference = naive_log_softmax_rows(x.astype(dtype).astype(np.float64))
    np.testing.assert_allclose(y, reference, rtol=rtol, atol=1e-4 if dtype == np.float32 else 1e-12)
    assert y[2, 1] < -999


def test_log_softmax_gradient_is_finite_for_huge_logits(xp):
    x = Tensor(xp.asarray(np.array([[1000.0, -1000.0, 0.0]], np.float32)), requires_grad=True)
    log_softmax(x, 1).backward(xp.asarray(np.array([[0.5, -1.0, 2.0]], np.float32)))
    g = to_numpy(x.grad)
    assert np.all(np.isfinite(g))
    np.testing.assert_allclose(g, [[0.5 - 1.5, -1.0, 2.0]], rtol=1e-6)   # gy − softmax·Σgy, softmax=(1,0,0)


# ------------------------------------------------------------------ backward --------------------

def test_relu_gradcheck(xp, rng):
    gradcheck(relu, [leaf(xp, away_from(rng, (3, 4), [0.0]))])


def test_relu6_gradcheck(xp, rng):
    gradcheck(relu6, [leaf(xp, away_from(rng, (4, 5), [0.0, 6.0]))])


@pytest.mark.parametrize("fn", [sigmoid, tanh], ids=["sigmoid", "tanh"])
def test_sigmoid_and_tanh_gradcheck(xp, rng, fn):
    gradcheck(fn, [leaf(xp, rng.uniform(-4, 4, size=(3, 5)))])


@pytest.mark.parametrize("fn", [softmax, log_softmax], ids=["softmax", "log_softmax"])
@pytest.mark.parametrize("dim", [0, 1, -1])
def test_softmax_family_gradcheck(xp, rng, fn, dim):
    gradcheck(lambda t: fn(t, dim), [leaf(xp, rng.standard_normal((3, 4, 2)) * 2)])


def test_relu_gradient_is_zero_at_and_below_zero(xp):
    x = Tensor(xp.asarray(np.array([-2.0, 0.0, 3.0])), requires_grad=True)
    relu(x).backward(xp.asarray(np.array([5.0, 5.0, 5.0])))
    np.testing.assert_array_equal(to_numpy(x.grad), [0, 0, 5])


def test_softmax_backward_equals_the_explicit_jacobian(xp, rng):
    """gx = Jᵀ gy with J = diag(y) − y yᵀ, built entry by entry for each row."""
    x, gy = rng.standard_normal((3, 5)), rng.standard_normal((3, 5))
    t = Tensor(xp.asarray(x), requires_grad=True)
    softmax(t, 1).backward(xp.asarray(gy))
    y = naive_softmax_rows(x)
    expected = np.zeros_like(x)
    for n in range(3):
        for j, k in itertools.product(range(5), range(5)):
            jacobian_kj = y[n, k] * ((1.0 if j == k else 0.0) - y[n, j])     # ∂y_k/∂x_j
            expected[n, j] += gy[n, k] * jacobian_kj
    np.testing.assert_allclose(to_numpy(t.grad), expected, rtol=1e-12, atol=1e-15)


# ------------------------------------------------------------------ bad input -------------------

@pytest.mark.parametrize("name, fn", [("relu", relu), ("relu6", relu6), ("sigmoid", sigmoid), ("tanh", tanh),
                                      ("softmax", lambda x: softmax(x, 0)),
                                      ("log_softmax", lambda x: log_softmax(x, 0))])
def test_integer_input_is_rejected_with_the_operation_name(name, fn):
    with pytest.raises(ValueError, match=rf"^{name}: expected a floating-point tensor, got dtype int64"):
        fn(np.arange(6).reshape(2, 3))


@pytest.mark.parametrize("fn, name", [(softmax, "softmax"), (log_softmax, "log_softmax")])
@pytest.mark.parametrize("dim", [2, -3, 1.0, None])
def test_softmax_rejects_a_dim_outside_the_input(fn, name, dim):
    with pytest.raises(ValueError, match=rf"{name}: dim must be an int in \[-2, 1\] .* shape \(2, 3\), got"):
        fn(np.zeros((2, 3), np.float32), dim)


@pytest.mark.parametrize("fn, name", [(softmax, "softmax"), (log_softmax, "log_softmax")])
def test_softmax_rejects_a_scalar(fn, name):
    with pytest.raises(ValueError, match=rf"{name}: expected a tensor with at least 1 dimension, got shape \(\)"):
        fn(np.float32(1.0), 0)


def test_softmax_requires_dim():
    with pytest.raises(TypeError):
        softmax(np.zeros((2, 3)))


# ------------------------------------------------------------------ nn layers -------------------

@pytest.mark.parametrize("layer, fn", [(ReLU(), relu), (ReLU6(), relu6), (Sigmoid(), sigmoid), (Tanh(), tanh),
                                       (Softmax(dim=1), lambda x: softmax(x, 1)),
                                       (LogSoftmax(dim=0), lambda x: log_softmax(x, 0))],
                         ids=["ReLU", "ReLU6", "Sigmoid", "Tanh", "Softmax", "LogSoftmax"])
def test_layers_compute_their_function_and_have_no_parameters(xp, rng, layer, fn):
    x = xp.asarray(rng.uniform(-8, 8, size=(4, 5)))
    np.testing.assert_array_equal(to_numpy(layer(x)), to_numpy(fn(x)))
    assert list(layer.parameters()) == [] and layer.state_dict() == {}


def test_softmax_layers_show_and_check_dim():
    assert repr(Softmax(dim=1)) == "Softmax(dim=1)"
    assert repr(LogSoftmax(dim=-1)) == "LogSoftmax(dim=-1)"
    assert repr(ReLU()) == "ReLU()"
    with pytest.raises(ValueError, match="Softmax: dim must be an int"):
        Softmax(dim=None)
    with pytest.raises(ValueError, match="LogSoftmax: dim must be an int"):
        LogSoftmax(dim="1")


def test_relu_layer_gradcheck(xp, rng):
    gradcheck(ReLU(), [leaf(xp, away_from(rng, (2, 3, 2), [0.0]))])
