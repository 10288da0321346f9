"""Dropout: both conventions (inverted / AlexNet paper), statistics, seeding, gradients, bad input.

The mask contract under test: element i is kept when u_i ≥ p, u = generator.random(x.shape, float32).
Statistical tolerances are 5 standard deviations of the estimate for the sample size used, so a
correct implementation fails them with probability < 1e-6 (and the generator is seeded anyway).
"""
import math

import numpy as np
import pytest

import minicnn
from minicnn import backend
from minicnn.autograd import Tensor
from minicnn.functional.dropout import dropout, manual_seed
from minicnn.gradcheck import gradcheck
from minicnn.nn.dropout import Dropout


def to_numpy(a):
    return backend.as_numpy(a.data if isinstance(a, Tensor) else a)


def naive_dropout(x, u, p, mode):
    """Element by element: keep x_i where u_i ≥ p, scaled by 1/(1 − p) in inverted mode."""
    y = np.zeros_like(x)
    for i in np.ndindex(*x.shape):
        if u[i] >= p:
            y[i] = x[i] / (1 - p) if mode == "inverted" else x[i]
    return y


# ------------------------------------------------------------------ forward ---------------------

@pytest.mark.parametrize("mode", ["inverted", "paper"])
@pytest.mark.parametrize("p", [0.2, 0.5, 0.9])
def test_training_forward_matches_naive_reference_with_the_same_random_numbers(xp, rng, mode, p):
    x = rng.standard_normal((4, 3, 5))
    y = dropout(xp.asarray(x), p, training=True, mode=mode, generator=np.random.default_rng(11))
    u = np.random.default_rng(11).random(x.shape, dtype=np.float32)
    np.testing.assert_allclose(to_numpy(y), naive_dropout(x, u, p, mode), rtol=1e-15, atol=0)


@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
def test_inverted_dropout_preserves_the_mean(xp, p):
    n = 400_000
    manual_seed(1)
    y = to_numpy(dropout(xp.ones(n, np.float32), p))
    # Each y_i is 1/(1 − p) with probability 1 − p, else 0: mean 1, variance p/(1 − p).
    assert abs(y.mean() - 1.0) < 5 * math.sqrt(p / (1 - p) / n)
    assert abs((y == 0).mean() - p) < 5 * math.sqrt(p * (1 - p) / n)
    np.testing.assert_allclose(np.unique(y), [0.0, 1 / (1 - p)], rtol=1e-6)


@pytest.mark.parametrize("p", [0.25, 0.5])
def test_paper_dropout_keeps_values_unscaled_in_training_and_scales_by_keep_probability_at_test(xp, rng, p):
    n = 400_000
    manual_seed(2)
    y = to_numpy(dropout(xp.ones(n, np.float32), p, training=True, mode="paper"))
    np.testing.assert_array_equal(np.unique(y), [0.0, 1.0])
    # Training mean (1 − p) equals the test-time output (1 − p)·x: the paper's expectation argument.
    assert abs(y.mean() - (1 - p)) < 5 * math.sqrt(p * (1 - p) / n)
    x = rng.standard_normal((3, 4)).astype(np.float32)
    test_time = dropout(xp.asarray(x), p, training=False, mode="paper")
    assert test_time.dtype == np.float32
    np.testing.assert_allclose(to_numpy(test_time), x * np.float32(1 - p), rtol=1e-7)


def test_inverted_dropout_is_the_identity_at_test_time(xp, rng):
    x = Tensor(xp.asarray(rng.standard_normal((3, 4))))
    assert dropout(x, 0.5, training=False) is x


def test_p_zero_keeps_everything_and_p_one_drops_everything_without_nan(xp, rng):
    x = Tensor(xp.asarray(rng.standard_normal((5, 6))), requires_grad=True)
    np.testing.assert_array_equal(to_numpy(dropout(x, 0.0)), to_numpy(x))
    for mode in ("inverted", "paper"):
        y = dropout(x, 1.0, mode=mode)
        np.testing.assert_array_equal(to_numpy(y), np.zeros((5, 6)))
        x.grad = None
        y.backward(xp.ones((5, 6)))
        np.testing.assert_array_equal(to_numpy(x.grad), np.zeros((5, 6)))
    np.testing.assert_array_equal(to_numpy(dropout(x, 1.0, training=False, mode="paper")), np.zeros((5, 6)))


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("mode", ["inverted", "paper"])
def test_dropout_keeps_the_input_dtype(xp, dtype, mode):
    x = Tensor(xp.ones((8, 8), dtype), requires_grad=True)
    y = dropout(x, 0.3, mode=mode)
    y.backward(xp.ones((8, 8), dtype))
    assert y.dtype == dtype and x.grad.dtype == dtype


# ------------------------------------------------------------------ seeding ---------------------

def test_the_same_seed_gives_the_same_sequence_of_masks(xp):
    x = xp.ones((20, 30), np.float32)
    manual_seed(123)
    first = [to_numpy(dropout(x, 0.5)) for _ in range(3)]
    manual_seed(123)
    second = [to_numpy(dropout(x, 0.5)) for _ in range(3)]
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first[0], first[1])        # a fresh mask every call
    manual_seed(124)
    assert not np.array_equal(to_numpy(dropout(x, 0.5)), first[0])


def test_minicnn_manual_seed_controls_dropout_too():
    x = np.ones((10, 10), np.float32)
    minicnn.manual_seed(5)
    a = to_numpy(dropout(x, 0.5))
    manual_seed(5)
    np.testing.assert_array_equal(to_numpy(dropout(x, 0.5)), a)


def test_default_masks_are_the_same_on_every_device(xp):
    """The default generator is NumPy's, so a CuPy input gets the mask a NumPy input would."""
    manual_seed(9)
    on_cpu = to_numpy(dropout(np.ones((6, 7), np.float32), 0.4))
    manual_seed(9)
    np.testing.assert_array_equal(to_numpy(dropout(xp.ones((6, 7), np.float32), 0.4)), on_cpu)


def test_an_explicit_generator_gives_reproducible_masks_and_leaves_the_default_alone(xp):
    x = xp.ones((10, 10), np.float32)
    manual_seed(0)
    expected_default = to_numpy(dropout(x, 0.5))
    manual_seed(0)
    a = to_numpy(dropout(x, 0.5, generator=np.random.default_rng(42)))
    b = to_numpy(dropout(x, 0.5, generator=np.random.default_rng(42)))
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(to_numpy(dropout(x, 0.5)), expected_default)


def test_a_cupy_generator_draws_masks_for_cupy_inputs():
    if not backend.gpu_available():
        pytest.skip("CuPy with a CUDA GPU is not available")
    cp = backend.cupy()
    x = cp.ones((50, 50), cp.float32)
    a = dropout(x, 0.5, generator=cp.random.default_rng(3))
    b = dropout(x, 0.5, generator=cp.random.default_rng(3))
    assert a.device == "cuda"
    cp.testing.assert_array_equal(a.data, b.data)
    with pytest.raises(ValueError, match="dropout: a cupy.random.Generator cannot draw the mask of a NumPy"):
        dropout(np.ones(3, np.float32), 0.5, generator=cp.random.default_rng(3))


# ------------------------------------------------------------------ backward --------------------

@pytest.mark.parametrize("mode", ["inverted", "paper"])
@pytest.mark.parametrize("training", [True, False])
def test_dropout_gradcheck_with_a_fixed_mask(xp, rng, mode, training):
    # A freshly seeded generator in every call: every forward pass of the check draws the same mask.
    fn = lambda t: dropout(t, 0.4, training=training, mode=mode, generator=np.random.default_rng(7))  # noqa: E731
    gradcheck(fn, [Tensor(xp.asarray(rng.standard_normal((4, 5))), requires_grad=True)])


def test_dropout_backward_is_upstream_times_the_scaled_mask(xp, rng):
    p = 0.3
    x = Tensor(xp.ones((6, 8)), requires_grad=True)
    y = dropout(x, p, generator=np.random.default_rng(1))         # with x = 1, y is the scaled mask
    gy = rng.standard_normal((6, 8))
    y.backward(xp.asarray(gy))
    mask = to_numpy(y)
    assert set(np.unique(mask)) == {0.0, 1 / (1 - p)}
    np.testing.assert_array_equal(to_numpy(x.grad), gy * mask)


# ------------------------------------------------------------------ bad input -------------------

@pytest.mark.parametrize("p", [-0.1, 1.5, float("nan"), True, "0.5", None])
def test_p_outside_zero_one_is_rejected(p):
    with pytest.raises(ValueError, match=r"dropout: p .* must be in \[0, 1\], got"):
        dropout(np.ones(3, np.float32), p)


def test_unknown_mode_is_rejected():
    with pytest.raises(ValueError, match=r"dropout: mode must be one of \('inverted', 'paper'\), got 'alexnet'"):
        dropout(np.ones(3, np.float32), 0.5, mode="alexnet")


def test_integer_input_is_rejected():
    with pytest.raises(ValueError, match=r"dropout: expected a floating-point tensor, got dtype int64 with shape \(3,\)"):
        dropout(np.arange(3), 0.5)


def test_something_that_is_not_a_generator_is_rejected():
    with pytest.raises(ValueError, match="dropout: generator must be a numpy.random.Generator"):
        dropout(np.ones(3, np.float32), 0.5, generator=42)


# ------------------------------------------------------------------ nn.Dropout ------------------

def test_dropout_layer_follows_train_and_eval(xp):
    layer = Dropout(0.5)
    x = xp.ones((40, 50), np.float32)
    manual_seed(0)
    y_train = to_numpy(layer(x))
    assert set(np.unique(y_train)) == {0.0, 2.0}
    layer.eval()
    np.testing.assert_array_equal(to_numpy(layer(x)), np.ones((40, 50)))
    paper = Dropout(0.5, mode="paper").eval()
    np.testing.assert_array_equal(to_numpy(paper(x)), np.full((40, 50), 0.5))
    paper.train()
    assert set(np.unique(to_numpy(paper(x)))) == {0.0, 1.0}


def test_dropout_layer_repr_and_bad_settings():
    assert repr(Dropout()) == "Dropout(p=0.5)"
    assert repr(Dropout(0.2, mode="paper")) == "Dropout(p=0.2, mode='paper')"
    assert list(Dropout().parameters()) == []
    with pytest.raises(ValueError, match=r"Dropout: p .* must be in \[0, 1\], got 2"):
        Dropout(2)
    with pytest.raises(ValueError, match="Dropout: mode must be one of"):
        Dropout(0.5, mode="Paper")
