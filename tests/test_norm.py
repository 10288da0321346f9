"""Batch normalisation and local response normalisation: functional and nn layers.

Forward passes are checked against naive loop references written from the formulas, backward
passes with float64 gradient checks (random upstream gradient), running statistics against a
NumPy re-computation, and, when PyTorch is installed, everything against PyTorch as an oracle.
The batch norm tests that take the ``cpu_kernels`` fixture run on both CPU paths: the NumPy passes
and the compiled kernels of ``minicnn.cpu`` (when numba is installed).
"""
import numpy as np
import pytest

import minicnn
from minicnn import backend
from minicnn.autograd import Tensor
from minicnn.functional.activation import relu
from minicnn.functional.norm import batch_norm, batch_norm_relu, local_response_norm
from minicnn.gradcheck import gradcheck
from minicnn.nn.norm import BatchNorm1d, BatchNorm2d, LocalResponseNorm


def to_numpy(a):
    return backend.as_numpy(a.data if isinstance(a, Tensor) else a)


def leaf(xp, array):
    """A float64 tensor on xp's device that requires grad (for gradcheck)."""
    return Tensor(xp.asarray(np.asarray(array, np.float64)), requires_grad=True)


# ------------------------------------------------------------------ naive references -----------

def naive_batch_norm(x, gamma, beta, eps, mean=None, var=None):
    """Channel by channel: y = γ (x − μ) / √(σ² + eps) + β, with μ, σ² (biased) from the values
    of that channel unless given (evaluation)."""
    y = np.empty_like(x)
    for c in range(x.shape[1]):
        values = x[:, c].ravel()
        m = len(values)
        mu = sum(values) / m if mean is None else mean[c]
        sigma2 = sum((v - mu) ** 2 for v in values) / m if var is None else var[c]
        y[:, c] = gamma[c] * (x[:, c] - mu) / np.sqrt(sigma2 + eps) + beta[c]
    return y


def naive_local_response_norm(a, size, alpha, beta, k, convention):
    """For every image n and channel c: b = a / (k + α' Σ_{c' in window} a_{c'}²)^β, with the
    window c − size//2 … c + (size−1)//2 clipped to the existing channels, α' = α/size for the
    "pytorch" convention and α' = α for the "paper" one."""
    N, C = a.shape[:2]
    alpha_in_sum = alpha / size if convention == "pytorch" else alpha
    b = np.empty_like(a)
    for n in range(N):
        for c in range(C):
            lo, hi = max(0, c - size // 2), min(C - 1, c + (size - 1) // 2)
            total = np.zeros_like(a[n, c])
            for c2 in range(lo, hi + 1):
                total = total + a[n, c2] ** 2
            b[n, c] = a[n, c] / (k + alpha_in_sum * total) ** beta
    return b


def alexnet_paper_lrn(a, k=2.0, n=5, alpha=1e-4, beta=0.75):
    """The AlexNet paper's formula, §3.3, literally:
    b_i = a_i / (k + α Σ_{j=max(0, i−n/2)}^{min(N−1, i+n/2)} a_j²)^β  (N channels, n odd)."""
    channels = a.shape[1]
    b = np.empty_like(a)
    for i in range(channels):
        j = range(max(0, i - n // 2), min(channels - 1, i + n // 2) + 1)
        b[:, i] = a[:, i] / (k + alpha * sum(a[:, jj] ** 2 for jj in j)) ** beta
    return b


# ------------------------------------------------------------------ batch_norm: forward --------

@pytest.mark.parametrize("shape", [(6, 3), (4, 3, 5, 2)])
def test_batch_norm_training_forward_matches_naive_reference(xp, rng, shape, cpu_kernels):
    x = rng.standard_normal(shape) * 3 + 1
    gamma, beta = rng.standard_normal(3), rng.standard_normal(3)
    y = batch_norm(xp.asarray(x), None, None, xp.asarray(gamma), xp.asarray(beta), training=True, eps=1e-3)
    np.testing.assert_allclose(to_numpy(y), naive_batch_norm(x, gamma, beta, 1e-3), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("shape", [(6, 3), (4, 3, 5, 2)])
def test_batch_norm_eval_forward_uses_running_statistics(xp, rng, shape, cpu_kernels):
    x = rng.standard_normal(shape)
    mean, var = rng.standard_normal(3), rng.random(3) + 0.5
    gamma, beta = rng.standard_normal(3), rng.standard_normal(3)
    y = batch_norm(xp.asarray(x), xp.asarray(mean), xp.asarray(var), xp.asarray(gamma), xp.asarray(beta),
                   training=False)
    expected = naive_batch_norm(x, gamma, beta, 1e-5, mean=mean, var=var)
    np.testing.assert_allclose(to_numpy(y), expected, rtol=1e-10, atol=1e-12)


def test_batch_norm_without_weight_and_bias_is_plain_standardisation(xp, rng):
    x = rng.standard_normal((8, 2, 3, 3)) * 5 - 2
    y = to_numpy(batch_norm(xp.asarray(x), None, None, training=True, eps=0.0))
    np.testing.assert_allclose(y.mean(axis=(0, 2, 3)), 0.0, atol=1e-12)
    np.testing.assert_allclose(y.var(axis=(0, 2, 3)), 1.0, rtol=1e-10)


def test_batch_norm_without_running_statistics_uses_batch_statistics_in_eval(xp, rng):
    x = xp.asarray(rng.standard_normal((5, 4)))
    np.testing.assert_array_equal(to_numpy(batch_norm(x, None, None, training=False)),
                                  to_numpy(batch_norm(x, None, None, training=True)))


def test_batch_norm_updates_running_statistics_in_place_with_unbiased_variance(xp, rng, cpu_kernels):
    momentum = 0.3
    running_mean, running_var = xp.zeros(3), xp.ones(3)
    ids = id(running_mean), id(running_var)
    expected_mean, expected_var = np.zeros(3), np.ones(3)
    for _ in range(4):
        x = rng.standard_normal((5, 3, 2, 2)) * 2 + 3
        batch_norm(xp.asarray(x), running_mean, running_var, training=True, momentum=momentum)
        per_channel = x.transpose(1, 0, 2, 3).reshape(3, -1)
        expected_mean = (1 - momentum) * expected_mean + momentum * per_channel.mean(axis=1)
        expected_var = (1 - momentum) * expected_var + momentum * per_channel.var(axis=1, ddof=1)
    assert (id(running_mean), id(running_var)) == ids
    np.testing.assert_allclose(to_numpy(running_mean), expected_mean, rtol=1e-12)
    np.testing.assert_allclose(to_numpy(running_var), expected_var, rtol=1e-12)


def test_batch_norm_in_eval_leaves_running_statistics_alone(xp, rng):
    running_mean, running_var = xp.asarray(rng.standard_normal(3)), xp.asarray(rng.random(3) + 1)
    before = to_numpy(running_mean).copy(), to_numpy(running_var).copy()
    batch_norm(xp.asarray(rng.standard_normal((4, 3))), running_mean, running_var, training=False)
    np.testing.assert_array_equal(to_numpy(running_mean), before[0])
    np.testing.assert_array_equal(to_numpy(running_var), before[1])


@pytest.mark.parametrize("training", [True, False])
def test_batch_norm_keeps_float32(xp, rng, training, cpu_kernels):
    x = Tensor(xp.asarray(rng.standard_normal((4, 3, 2, 2)), np.float32), requires_grad=True)
    gamma = Tensor(xp.ones(3, np.float32), requires_grad=True)
    beta = Tensor(xp.zeros(3, np.float32), requires_grad=True)
    running_mean, running_var = xp.zeros(3, np.float32), xp.ones(3, np.float32)
    y = batch_norm(x, running_mean, running_var, gamma, beta, training=training, momentum=np.float64(0.1),
                   eps=np.float64(1e-5))
    y.backward(xp.ones(y.shape, np.float32) * xp.arange(y.size, dtype=np.float32).reshape(y.shape))
    assert y.dtype == np.float32
    assert x.grad.dtype == gamma.grad.dtype == beta.grad.dtype == np.float32
    assert running_mean.dtype == running_var.dtype == np.float32


# ------------------------------------------------------------------ batch_norm: gradients ------

@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("shape", [(5, 3), (3, 3, 2, 3)], ids=["2d", "4d"])
def test_batch_norm_gradcheck(xp, rng, training, shape, cpu_kernels):
    running_mean, running_var = xp.asarray(rng.standard_normal(3)), xp.asarray(rng.random(3) + 0.5)

    def fn(x, weight, bias):
        # Copies: the training-mode update must not leak from one finite-difference evaluation into the next.
        return batch_norm(x, running_mean.copy(), running_var.copy(), weight, bias, training=training)

    x = leaf(xp, rng.standard_normal(shape) * 2 + 1)
    gradcheck(fn, [x, leaf(xp, rng.standard_normal(3)), leaf(xp, rng.standard_normal(3))])


@pytest.mark.parametrize("shape", [(4, 2), (2, 2, 3, 2)], ids=["2d", "4d"])
def test_batch_norm_gradcheck_with_batch_statistics_and_no_affine(xp, rng, shape, cpu_kernels):
    gradcheck(lambda x: batch_norm(x, None, None, training=True), [leaf(xp, rng.standard_normal(shape))])


# ------------------------------------------------------------------ batch_norm_relu (fused) -----

def away_from_relu_kink(xp, rng, shape, training, margin=1e-3):
    """x, γ, β (float64 leaves) and running statistics for which every γ·x̂ + β is at least ``margin``
    from 0, so that finite differences never cross the ReLU's kink."""
    for _ in range(100):
        x, gamma, beta = rng.standard_normal(shape) * 2 + 1, rng.standard_normal(3), rng.standard_normal(3) * 0.5
        mean, var = rng.standard_normal(3), rng.random(3) + 0.5
        pre = batch_norm(x, None if training else mean, None if training else var, gamma, beta).data
        if np.abs(pre).min() > margin and (pre > 0).any() and (pre < 0).any():
            return [leaf(xp, a) for a in (x, gamma, beta)], xp.asarray(mean), xp.asarray(var)
    raise AssertionError("no sample away from the ReLU's kink")


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("shape", [(6, 3), (3, 3, 2, 3)], ids=["2d", "4d"])
def test_batch_norm_relu_equals_relu_of_batch_norm_with_gradients(xp, rng, training, shape, cpu_kernels):
    (x, gamma, beta), mean, var = away_from_relu_kink(xp, rng, shape, training)
    stats = [(mean.copy(), var.copy()) for _ in range(2)]
    fused = batch_norm_relu(x, *stats[0], gamma, beta, training=training, momentum=0.3)
    gy = xp.asarray(rng.standard_normal(shape))
    fused.backward(gy)
    grads = [to_numpy(t.grad) for t in (x, gamma, beta)]
    for t in (x, gamma, beta):
        t.grad = None
    separate = relu(batch_norm(x, *stats[1], gamma, beta, training=training, momentum=0.3))
    separate.backward(gy)
    np.testing.assert_array_equal(to_numpy(fused), to_numpy(separate))
    assert (to_numpy(fused) == 0).any() and (to_numpy(fused) > 0).any()
    for got, t in zip(grads, (x, gamma, beta)):
        np.testing.assert_allclose(got, to_numpy(t.grad), rtol=1e-13, atol=1e-14)
    for a, b in zip(stats[0], stats[1]):               # the running statistics are updated alike
        np.testing.assert_array_equal(to_numpy(a), to_numpy(b))


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("shape", [(5, 3), (3, 3, 2, 3)], ids=["2d", "4d"])
def test_batch_norm_relu_gradcheck(xp, rng, training, shape, cpu_kernels):
    inputs, mean, var = away_from_relu_kink(xp, rng, shape, training, margin=1e-2)

    def fn(x, weight, bias):
        return batch_norm_relu(x, mean.copy(), var.copy(), weight, bias, training=training)

    gradcheck(fn, inputs)


def test_batch_norm_relu_keeps_float32_and_names_itself_in_errors(xp, rng, cpu_kernels):
    x = Tensor(xp.asarray(rng.standard_normal((4, 3, 2, 2)), np.float32), requires_grad=True)
    y = batch_norm_relu(x, None, None, training=True)
    y.backward(xp.ones(y.shape, np.float32))
    assert y.dtype == x.grad.dtype == np.float32 and float(to_numpy(y).min()) == 0.0
    with pytest.raises(ValueError, match=r"batch_norm_relu: weight must have shape \(3,\)"):
        batch_norm_relu(np.zeros((4, 3)), None, None, weight=np.ones(4))
    with pytest.raises(ValueError, match="batch_norm_relu: expected more than 1 value per channel"):
        batch_norm_relu(np.zeros((1, 3)), None, None, training=True)


# ------------------------------------------------------------------ batch_norm: errors ---------

def test_batch_norm_rejects_weight_of_wrong_size():
    with pytest.raises(ValueError, match=r"batch_norm: weight must have shape \(3,\).*\(4, 3\).*\(4,\)"):
        batch_norm(np.zeros((4, 3)), None, None, weight=np.ones(4))


def test_batch_norm_rejects_running_statistics_of_wrong_size():
    with pytest.raises(ValueError, match=r"batch_norm: running_mean .*\(2, 3, 4, 4\).*\(5,\)"):
        batch_norm(np.zeros((2, 3, 4, 4)), np.zeros(5), np.ones(5))
    with pytest.raises(ValueError, match=r"batch_norm: running_var .*\(1, 3\)"):
        batch_norm(np.zeros((2, 3, 4, 4)), np.zeros(3), np.ones((1, 3)))


def test_batch_norm_rejects_one_value_per_channel_in_training():
    with pytest.raises(ValueError, match=r"batch_norm: expected more than 1 value per channel.*\(1, 3\)"):
        batch_norm(np.zeros((1, 3)), np.zeros(3), np.ones(3), training=True)
    with pytest.raises(ValueError, match=r"more than 1 value per channel.*\(1, 2, 1, 1\)"):
        batch_norm(np.zeros((1, 2, 1, 1)), None, None)


def test_batch_norm_accepts_a_single_sample_in_eval():
    y = batch_norm(np.full((1, 3), 2.0), np.ones(3), np.full(3, 4.0), training=False, eps=0.0)
    np.testing.assert_allclose(y.data, np.full((1, 3), 0.5))


def test_batch_norm_rejects_bad_input_shape_and_dtype():
    with pytest.raises(ValueError, match=r"batch_norm: expected an input of shape \(N, C\).*\(5,\)"):
        batch_norm(np.zeros(5), None, None)
    with pytest.raises(ValueError, match="batch_norm: expected a floating-point input, got dtype int64"):
        batch_norm(np.zeros((4, 3), np.int64), None, None)


def test_batch_norm_rejects_only_one_running_statistic():
    with pytest.raises(ValueError, match="batch_norm: running_mean and running_var must both be"):
        batch_norm(np.zeros((4, 3)), np.zeros(3), None)


# ------------------------------------------------------------------ local_response_norm --------

@pytest.mark.parametrize("convention", ["pytorch", "paper"])
@pytest.mark.parametrize("size", [1, 2, 3, 4, 5, 6, 9])
def test_local_response_norm_matches_naive_reference(xp, rng, size, convention):
    a = rng.standard_normal((2, 7, 3, 4)) * 3
    b = local_response_norm(xp.asarray(a), size, alpha=0.2, beta=0.75, k=1.5, convention=convention)
    expected = naive_local_response_norm(a, size, 0.2, 0.75, 1.5, convention)
    np.testing.assert_allclose(to_numpy(b), expected, rtol=1e-12)


def test_local_response_norm_paper_convention_reproduces_the_alexnet_formula(xp, rng):
    # Post-ReLU activations large enough that the normalisation visibly changes them.
    a = np.maximum(rng.standard_normal((2, 16, 3, 3)) * 60, 0)
    b = local_response_norm(xp.asarray(a), 5, alpha=1e-4, beta=0.75, k=2.0, convention="paper")
    expected = alexnet_paper_lrn(a)
    np.testing.assert_allclose(to_numpy(b), expected, rtol=1e-12)
    # The same numbers in PyTorch's convention are a different (weaker) layer ...
    weaker = to_numpy(local_response_norm(xp.asarray(a), 5, alpha=1e-4, beta=0.75, k=2.0))
    assert np.abs(weaker - expected).max() > 1e-3 * np.abs(expected).max()
    # ... and PyTorch's convention needs alpha × size to match the paper.
    scaled = to_numpy(local_response_norm(xp.asarray(a), 5, alpha=5e-4, beta=0.75, k=2.0))
    np.testing.assert_allclose(scaled, expected, rtol=1e-12)


def test_local_response_norm_works_on_3d_and_5d_inputs(rng):
    for shape in [(2, 5, 7), (2, 5, 2, 3, 2)]:
        a = rng.standard_normal(shape)
        np.testing.assert_allclose(local_response_norm(a, 3, 0.5).data,
                                   naive_local_response_norm(a, 3, 0.5, 0.75, 1.0, "pytorch"), rtol=1e-12)


@pytest.mark.parametrize("convention", ["pytorch", "paper"])
@pytest.mark.parametrize("size", [1, 2, 3, 4, 5, 8])
def test_local_response_norm_gradcheck(xp, rng, size, convention):
    # alpha and the scale of a make the normalising term matter (with tiny alpha the check would
    # be blind to the second term of the gradient); size 8 > C = 6 covers windows wider than C.
    a = leaf(xp, rng.standard_normal((2, 6, 3, 2)) * 2)
    gradcheck(lambda t: local_response_norm(t, size, alpha=0.5, beta=0.75, k=1.3, convention=convention), [a])


def test_local_response_norm_keeps_float32(xp, rng):
    a = Tensor(xp.asarray(rng.standard_normal((2, 5, 3, 3)), np.float32), requires_grad=True)
    b = local_response_norm(a, 5, alpha=np.float64(1e-4), beta=np.float64(0.75), k=np.float64(2.0))
    b.backward(xp.ones(b.shape, np.float32))
    assert b.dtype == a.grad.dtype == np.float32


def test_local_response_norm_rejects_bad_arguments():
    with pytest.raises(ValueError, match=r"local_response_norm: expected an input of shape \(N, C, \*\).*\(4, 3\)"):
        local_response_norm(np.zeros((4, 3)), 3)
    with pytest.raises(ValueError, match="local_response_norm: size must be a positive int, got 0"):
        local_response_norm(np.zeros((1, 3, 2, 2)), 0)
    with pytest.raises(ValueError, match="local_response_norm: size must be a positive int, got 2.5"):
        local_response_norm(np.zeros((1, 3, 2, 2)), 2.5)
    with pytest.raises(ValueError, match="local_response_norm: convention must be 'pytorch' or 'paper', got 'caffe'"):
        local_response_norm(np.zeros((1, 3, 2, 2)), 3, convention="caffe")
    with pytest.raises(ValueError, match="local_response_norm: expected a floating-point input, got dtype int"):
        local_response_norm(np.zeros((1, 3, 2, 2), np.int32), 3)


# ------------------------------------------------------------------ nn layers ------------------

def on(xp, module):
    return module.to("cuda") if xp is not np else module


def test_batchnorm2d_registers_parameters_and_buffers():
    bn = BatchNorm2d(4)
    assert [name for name, _ in bn.named_parameters()] == ["weight", "bias"]
    assert list(bn.state_dict()) == ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]
    np.testing.assert_array_equal(bn.weight.data, np.ones(4))
    np.testing.assert_array_equal(bn.bias.data, np.zeros(4))
    np.testing.assert_array_equal(bn.running_mean, np.zeros(4))
    np.testing.assert_array_equal(bn.running_var, np.ones(4))
    assert bn.num_batches_tracked == 0 and bn.num_batches_tracked.dtype == np.int64
    assert bn.weight.dtype == bn.running_mean.dtype == np.float32


def test_batchnorm_zero_init_starts_with_gamma_zero(rng):
    bn = BatchNorm2d(3, zero_init=True)
    np.testing.assert_array_equal(bn.weight.data, np.zeros(3))
    bn.bias.data[...] = [1, 2, 3]
    y = bn(rng.standard_normal((2, 3, 4, 4)).astype(np.float32))
    np.testing.assert_array_equal(y.data, np.broadcast_to(np.array([1, 2, 3], np.float32)[:, None, None], y.shape))
    assert "zero_init=True" in repr(bn)


def test_batchnorm2d_trains_running_statistics_and_uses_them_in_eval(xp, rng):
    bn = on(xp, BatchNorm2d(3, momentum=0.2))
    expected_mean, expected_var = np.zeros(3), np.ones(3)
    for _ in range(3):
        x = (rng.standard_normal((4, 3, 3, 3)) * 2 + 1).astype(np.float32)
        bn(xp.asarray(x))
        per_channel = x.astype(np.float64).transpose(1, 0, 2, 3).reshape(3, -1)
        expected_mean = 0.8 * expected_mean + 0.2 * per_channel.mean(axis=1)
        expected_var = 0.8 * expected_var + 0.2 * per_channel.var(axis=1, ddof=1)
    assert int(bn.num_batches_tracked) == 3
    np.testing.assert_allclose(to_numpy(bn.running_mean), expected_mean, rtol=1e-5)
    np.testing.assert_allclose(to_numpy(bn.running_var), expected_var, rtol=1e-5)

    bn.eval()
    x = rng.standard_normal((2, 3, 2, 2)).astype(np.float32)
    y = bn(xp.asarray(x))
    assert int(bn.num_batches_tracked) == 3
    expected = naive_batch_norm(x.astype(np.float64), np.ones(3), np.zeros(3), 1e-5, expected_mean, expected_var)
    np.testing.assert_allclose(to_numpy(y), expected, rtol=1e-4, atol=1e-5)


def test_batchnorm_momentum_none_is_the_cumulative_average(rng):
    batches = [rng.standard_normal((5, 2)) * (i + 1) + i for i in range(4)]
    with minicnn.default_dtype(np.float64):
        bn = BatchNorm1d(2, momentum=None)
    for x in batches:
        bn(x)
    np.testing.assert_allclose(bn.running_mean, np.mean([x.mean(axis=0) for x in batches], axis=0), rtol=1e-12)
    np.testing.assert_allclose(bn.running_var, np.mean([x.var(axis=0, ddof=1) for x in batches], axis=0),
                               rtol=1e-12)


def test_batchnorm_without_tracking_uses_batch_statistics_in_eval(rng):
    bn = BatchNorm1d(3, track_running_stats=False).eval()
    assert bn.running_mean is None and list(bn.state_dict()) == ["weight", "bias"]
    x = rng.standard_normal((6, 3)).astype(np.float32)
    np.testing.assert_allclose(bn(x).data, naive_batch_norm(x, np.ones(3), np.zeros(3), 1e-5), rtol=1e-5, atol=1e-6)


def test_batchnorm_without_affine_has_no_parameters():
    bn = BatchNorm2d(3, affine=False)
    assert list(bn.parameters()) == [] and bn.weight is None and bn.bias is None


def test_batchnorm1d_accepts_2d_and_3d_inputs(rng):
    bn = BatchNorm1d(3)
    assert bn(rng.standard_normal((4, 3)).astype(np.float32)).shape == (4, 3)
    assert bn(rng.standard_normal((4, 3, 5)).astype(np.float32)).shape == (4, 3, 5)


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_batchnorm2d_module_gradcheck(xp, rng, training):
    with minicnn.default_dtype(np.float64):
        bn = on(xp, BatchNorm2d(2))
    bn.weight.data[...] = xp.asarray(rng.standard_normal(2))
    bn.bias.data[...] = xp.asarray(rng.standard_normal(2))
    bn.running_mean[...] = xp.asarray(rng.standard_normal(2))
    bn.running_var[...] = xp.asarray(rng.random(2) + 0.5)
    bn.train(training)
    gradcheck(bn, [leaf(xp, rng.standard_normal((3, 2, 2, 2)))], params=bn.named_parameters())


def test_batchnorm_layers_reject_wrong_shapes():
    with pytest.raises(ValueError, match=r"BatchNorm2d: expected an input of shape \(N, 3, H, W\), got shape \(4, 3\)"):
        BatchNorm2d(3)(np.zeros((4, 3), np.float32))
    with pytest.raises(ValueError, match=r"BatchNorm2d: .*got shape \(4, 5, 2, 2\)"):
        BatchNorm2d(3)(np.zeros((4, 5, 2, 2), np.float32))
    with pytest.raises(ValueError, match=r"BatchNorm1d: expected an input of shape \(N, 3\) or \(N, 3, L\), "
                                         r"got shape \(4, 3, 2, 2\)"):
        BatchNorm1d(3)(np.zeros((4, 3, 2, 2), np.float32))
    with pytest.raises(ValueError, match="BatchNorm2d: num_features must be a positive int"):
        BatchNorm2d(0)


def test_local_response_norm_layer_matches_functional(rng):
    a = rng.standard_normal((2, 6, 3, 3))
    layer = LocalResponseNorm(5, alpha=1e-2, beta=0.75, k=2.0, convention="paper")
    np.testing.assert_array_equal(layer(a).data,
                                  local_response_norm(a, 5, 1e-2, 0.75, 2.0, convention="paper").data)
    assert repr(layer) == "LocalResponseNorm(5, alpha=0.01, beta=0.75, k=2.0, convention='paper')"
    assert list(layer.parameters()) == [] and list(layer.state_dict()) == []
    with pytest.raises(ValueError, match="LocalResponseNorm: convention must be 'pytorch' or 'paper'"):
        LocalResponseNorm(5, convention="Paper")


# ------------------------------------------------------------------ PyTorch as an oracle -------

@pytest.mark.parametrize("momentum", [0.1, None])
def test_batchnorm2d_matches_pytorch_over_training_and_eval(rng, momentum, cpu_kernels):
    torch = pytest.importorskip("torch")
    ours, theirs = BatchNorm2d(3, momentum=momentum), torch.nn.BatchNorm2d(3, momentum=momentum)
    gamma, beta = rng.standard_normal(3).astype(np.float32), rng.standard_normal(3).astype(np.float32)
    ours.weight.data[...], ours.bias.data[...] = gamma, beta
    with torch.no_grad():
        theirs.weight.copy_(torch.from_numpy(gamma))
        theirs.bias.copy_(torch.from_numpy(beta))
    for mode in ["train", "train", "train", "eval"]:
        ours.train(mode == "train"), theirs.train(mode == "train")
        x = (rng.standard_normal((4, 3, 5, 5)) * 2 + 0.5).astype(np.float32)
        gy = rng.standard_normal(x.shape).astype(np.float32)
        x_ours, x_theirs = Tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
        ours.zero_grad(), theirs.zero_grad()
        y_ours, y_theirs = ours(x_ours), theirs(x_theirs)
        y_ours.backward(gy)
        y_theirs.backward(torch.from_numpy(gy))
        np.testing.assert_allclose(y_ours.data, y_theirs.detach().numpy(), rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(x_ours.grad.data, x_theirs.grad.numpy(), rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(ours.weight.grad.data, theirs.weight.grad.numpy(), rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(ours.bias.grad.data, theirs.bias.grad.numpy(), rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(ours.running_mean, theirs.running_mean.numpy(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(ours.running_var, theirs.running_var.numpy(), rtol=1e-5, atol=1e-6)
        assert int(ours.num_batches_tracked) == int(theirs.num_batches_tracked)


@pytest.mark.parametrize("training", [True, False])
def test_functional_batch_norm_matches_pytorch_on_2d_inputs(rng, training):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((7, 4))
    mean, var = rng.standard_normal(4), rng.random(4) + 0.5
    gamma, beta = rng.standard_normal(4), rng.standard_normal(4)
    ours_mean, ours_var = mean.copy(), var.copy()
    theirs_mean, theirs_var = torch.tensor(mean), torch.tensor(var)
    y = batch_norm(x, ours_mean, ours_var, gamma, beta, training=training, momentum=0.25, eps=1e-3)
    expected = torch.nn.functional.batch_norm(torch.tensor(x), theirs_mean, theirs_var, torch.tensor(gamma),
                                              torch.tensor(beta), training=training, momentum=0.25, eps=1e-3)
    np.testing.assert_allclose(y.data, expected.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(ours_mean, theirs_mean.numpy(), rtol=1e-12)
    np.testing.assert_allclose(ours_var, theirs_var.numpy(), rtol=1e-12)


@pytest.mark.parametrize("size", [2, 3, 4, 5])
def test_local_response_norm_matches_pytorch(rng, size):
    torch = pytest.importorskip("torch")
    a = rng.standard_normal((2, 8, 4, 4)) * 4
    gy = rng.standard_normal(a.shape)
    ours = Tensor(a.copy(), requires_grad=True)
    local_response_norm(ours, size, alpha=0.1, beta=0.75, k=2.0).backward(gy)
    theirs = torch.tensor(a, requires_grad=True)
    y = torch.nn.functional.local_response_norm(theirs, size, alpha=0.1, beta=0.75, k=2.0)
    y.backward(torch.tensor(gy))
    np.testing.assert_allclose(local_response_norm(a, size, alpha=0.1, beta=0.75, k=2.0).data,
                               y.detach().numpy(), rtol=1e-10)
    np.testing.assert_allclose(ours.grad.data, theirs.grad.numpy(), rtol=1e-8, atol=1e-12)
