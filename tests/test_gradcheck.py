"""minicnn.gradcheck must be able to FAIL.

Two classic layers are written here twice: once with the correct backward and once with a backward
that contains a well-known mistake. The checker has to pass the first and reject the second, in both
its elementwise and its directional mode, and say where the disagreement is worst.

It also shows why the checker seeds backward with a random upstream gradient G: with G = all ones the
true gradient of softmax (and of training-mode batch norm with respect to x) is identically zero, so
some wrong backward passes also produce zero and a ones-seeded check cannot tell them apart.
"""
import re

import numpy as np
import pytest

from minicnn import Function, Tensor, get_array_module, nn
from minicnn.backend import as_numpy
from minicnn.gradcheck import GradcheckError, gradcheck, numerical_grad


def leaf(xp, array):
    return Tensor(xp.asarray(np.asarray(array, dtype=np.float64)), requires_grad=True)


# ---------------------------------------------------------------- softmax, right and wrong -----

class Softmax(Function):
    """y_i = exp(x_i) / Σ_j exp(x_j) over the last axis;  gx = y · (gy − Σ_j gy_j y_j)."""

    def forward(self, x):
        xp = get_array_module(x)
        e = xp.exp(x - x.max(axis=-1, keepdims=True))
        self.y = e / e.sum(axis=-1, keepdims=True)
        return self.y

    def backward(self, gy):
        y = self.y
        return y * (gy - (gy * y).sum(axis=-1, keepdims=True))


class SoftmaxDiagonalOnly(Softmax):
    """WRONG: keeps only the diagonal of the Jacobian, gx = gy · y · (1 − y)."""

    def backward(self, gy):
        return gy * self.y * (1 - self.y)


class SoftmaxSumOfY(Softmax):
    """WRONG: gx = y·gy − y·Σ y (Σ y instead of Σ gy·y) — right whenever gy is constant along the axis."""

    def backward(self, gy):
        y = self.y
        return y * gy - y * y.sum(axis=-1, keepdims=True)


# ---------------------------------------------------------------- batch norm, right and wrong --

class BatchNorm(Function):
    """Training-mode batch norm of x (N, D) per feature over N, with γ (D,) and β (D,):

        x̂ = (x − mean) / σ,  σ = √(var + eps) (population variance),  y = γ x̂ + β
        g = gy · γ;   gx = (g − mean(g) − x̂ · mean(g · x̂)) / σ;   gγ = Σ_N gy·x̂;   gβ = Σ_N gy
    """
    eps = 1e-5

    def forward(self, x, gamma, beta):
        xp = get_array_module(x)
        self.inv_std = 1 / xp.sqrt(x.var(axis=0) + self.eps)
        self.x_hat = (x - x.mean(axis=0)) * self.inv_std
        self.gamma = gamma
        return gamma * self.x_hat + beta

    def backward(self, gy):
        g = gy * self.gamma
        gx = (g - g.mean(axis=0) - self.x_hat * (g * self.x_hat).mean(axis=0)) * self.inv_std
        return gx, (gy * self.x_hat).sum(axis=0), gy.sum(axis=0)


class BatchNormWithoutStatisticsTerms(BatchNorm):
    """WRONG: treats the batch mean and variance as constants, gx = gy · γ / σ."""

    def backward(self, gy):
        _, g_gamma, g_beta = super().backward(gy)
        return gy * self.gamma * self.inv_std, g_gamma, g_beta


class BatchNormWithoutVarianceTerm(BatchNorm):
    """WRONG: forgets the variance's path, the − x̂ · mean(g · x̂) term."""

    def backward(self, gy):
        _, g_gamma, g_beta = super().backward(gy)
        g = gy * self.gamma
        return (g - g.mean(axis=0)) * self.inv_std, g_gamma, g_beta


def softmax_inputs(xp):
    return [leaf(xp, np.random.default_rng(3).standard_normal((4, 5)))]


def batchnorm_inputs(xp):
    rng = np.random.default_rng(4)
    return [leaf(xp, rng.standard_normal((6, 3)) * 2 + 1), leaf(xp, rng.uniform(0.5, 1.5, 3)),
            leaf(xp, rng.standard_normal(3))]


CORRECT = {"softmax": (Softmax, softmax_inputs), "batchnorm": (BatchNorm, batchnorm_inputs)}
WRONG = {
    "softmax-diagonal-only": (SoftmaxDiagonalOnly, softmax_inputs),
    "softmax-sum-of-y": (SoftmaxSumOfY, softmax_inputs),
    "batchnorm-no-mean-or-variance-terms": (BatchNormWithoutStatisticsTerms, batchnorm_inputs),
    "batchnorm-no-variance-term": (BatchNormWithoutVarianceTerm, batchnorm_inputs),
}


def call(function_class):
    return lambda *xs: function_class()(*xs)


@pytest.mark.parametrize("mode", ["elementwise", "directional"])
@pytest.mark.parametrize("name", sorted(CORRECT))
def test_correct_backward_passes(xp, name, mode):
    function_class, make_inputs = CORRECT[name]
    result = gradcheck(call(function_class), make_inputs(xp), mode=mode)
    assert result.ok
    assert "passed" in str(result)


@pytest.mark.parametrize("mode", ["elementwise", "directional"])
@pytest.mark.parametrize("name", sorted(WRONG))
def test_wrong_backward_is_rejected(xp, name, mode):
    function_class, make_inputs = WRONG[name]
    with pytest.raises(GradcheckError, match=rf"gradcheck \({mode}\) FAILED.*relative error=") as failure:
        gradcheck(call(function_class), make_inputs(xp), mode=mode)
    relative_error = float(re.search(r"relative error=(\S+)", str(failure.value)).group(1))
    assert relative_error > 1e-2


@pytest.mark.parametrize("name", sorted(WRONG))
def test_elementwise_report_names_the_truly_worst_element(xp, name):
    function_class, make_inputs = WRONG[name]
    inputs = make_inputs(xp)
    result = gradcheck(call(function_class), inputs, raise_exception=False)
    assert not result.ok
    assert result.worst_name == "input 0"          # both bugs are in the gradient of x only
    assert f"worst: input 0{list(result.worst_index)}" in str(result)

    # Recompute the comparison independently, with the same upstream gradient G the checker drew.
    x = inputs[0]
    out = call(function_class)(*inputs)
    G = xp.asarray(np.random.default_rng(0).standard_normal(out.shape))
    x.grad = None
    out.backward(G)
    analytic = as_numpy(x.grad.data)
    numerical = as_numpy(numerical_grad(call(function_class), inputs, [G], x))
    ratio = np.abs(analytic - numerical) / (1e-6 + 1e-4 * np.abs(numerical))
    worst = np.unravel_index(np.argmax(ratio), ratio.shape)
    assert result.worst_index == tuple(int(i) for i in worst)
    assert result.analytic == pytest.approx(analytic[worst])
    assert result.numerical == pytest.approx(numerical[worst], abs=1e-9)
    assert result.relative_error == pytest.approx(
        abs(analytic[worst] - numerical[worst]) / max(abs(analytic[worst]), abs(numerical[worst])), rel=1e-6)


def test_directional_report_names_the_direction_and_both_values(xp):
    with pytest.raises(GradcheckError, match=r"worst: direction \d+ analytic=\S+ numerical=\S+ relative error="):
        gradcheck(call(SoftmaxSumOfY), softmax_inputs(xp), mode="directional")


# ---------------------------------------------------------------- why G must be random ---------

def ones_seeded_gradients(function_class, inputs):
    """(analytic, numerical) gradient of Σ f(inputs)·G for x = inputs[0], with G all ones."""
    x = inputs[0]
    out = call(function_class)(*inputs)
    ones = get_array_module(out.data).ones(out.shape)
    x.grad = None
    out.backward(ones)
    return as_numpy(x.grad.data), as_numpy(numerical_grad(call(function_class), inputs, [ones], x))


@pytest.mark.parametrize("name", ["softmax-sum-of-y", "batchnorm-no-variance-term"])
def test_with_an_all_ones_upstream_gradient_these_wrong_backwards_would_pass(xp, name):
    function_class, make_inputs = WRONG[name]
    analytic, numerical = ones_seeded_gradients(function_class, make_inputs(xp))
    # With G = 1 the true gradient w.r.t. x is zero (softmax rows always sum to 1; x̂ always has
    # zero mean and unit variance over the batch) ...
    np.testing.assert_allclose(numerical, 0.0, atol=1e-8)
    # ... and so is the wrong one: a ones-seeded check would call it correct.
    np.testing.assert_allclose(analytic, numerical, atol=1e-8)
    # The random-seeded gradcheck does not.
    with pytest.raises(GradcheckError):
        gradcheck(call(function_class), make_inputs(xp))


@pytest.mark.parametrize("name", ["softmax-diagonal-only", "batchnorm-no-mean-or-variance-terms"])
def test_cruder_mistakes_are_visible_even_with_all_ones(xp, name):
    function_class, make_inputs = WRONG[name]
    analytic, numerical = ones_seeded_gradients(function_class, make_inputs(xp))
    np.testing.assert_allclose(numerical, 0.0, atol=1e-8)
    assert np.abs(analytic).max() > 1e-2


# ---------------------------------------------------------------- what is checked --------------

class MulForgetsSecondInput(Function):
    """y = a · b with a backward that never returns b's gradient."""

    def forward(self, a, b):
        self.a, self.b = a, b
        return a * b

    def backward(self, gy):
        return gy * self.b, None


def test_params_are_checked_and_named_in_the_report(xp):
    x = leaf(xp, [[1.0, 2.0], [3.0, 4.0]])
    scale = leaf(xp, [0.5, -1.5])
    result = gradcheck(lambda x: MulForgetsSecondInput()(x, scale), [x], params=[("scale", scale)],
                       raise_exception=False)
    assert result.checked == ["input 0", "scale"]
    assert not result.ok and result.worst_name == "scale"
    assert "worst: scale[" in str(result)


def test_every_parameter_of_a_module_is_checked():
    model = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2)).double()
    x = Tensor(np.random.default_rng(0).standard_normal((5, 3)))
    result = gradcheck(model, [x], params=model.named_parameters())
    assert result.checked == ["0.weight", "0.bias", "1.weight", "1.bias"]
    result = gradcheck(model, [x], params=model.parameters(), mode="directional")
    assert result.checked == ["param 0", "param 1", "param 2", "param 3"]


def test_inputs_that_do_not_require_grad_are_not_checked(xp):
    constant = Tensor(xp.asarray([2.0, 3.0]))
    result = gradcheck(lambda a, c: a * c, [leaf(xp, [1.0, 1.0]), constant])
    assert result.checked == ["input 0"]


def test_several_outputs_are_checked_together(xp):
    result = gradcheck(lambda a, b: (a * b, a + b.exp()), [leaf(xp, [1.0, 2.0]), leaf(xp, [0.5, -0.5])])
    assert result.ok


def test_the_inputs_are_restored_after_the_check(xp):
    values = np.random.default_rng(1).standard_normal((3, 2))
    inputs = [leaf(xp, values)]
    gradcheck(lambda t: (t * t).exp(), inputs)
    gradcheck(lambda t: (t * t).exp(), inputs, mode="directional")
    np.testing.assert_array_equal(as_numpy(inputs[0].data), values)


def test_raw_arrays_become_float64_inputs_that_are_checked():
    result = gradcheck(lambda a: a * a, [np.array([1.0, 2.0], dtype=np.float32)])
    assert result.ok and result.checked == ["input 0"]


def test_float32_tensors_and_parameters_are_refused():
    x32 = Tensor(np.ones((2, 3), np.float32), requires_grad=True)
    with pytest.raises(TypeError, match="input 0.*float32.*float64"):
        gradcheck(lambda t: t * 2.0, [x32])
    model = nn.Linear(3, 2)                     # float32 by default
    with pytest.raises(TypeError, match="weight.*float32.*float64"):
        gradcheck(model, [Tensor(np.ones((1, 3)))], params=model.named_parameters())


def test_nothing_to_check_and_unknown_modes_are_errors(xp):
    with pytest.raises(ValueError, match="nothing to check"):
        gradcheck(lambda t: t * 2.0, [Tensor(xp.ones(2))])
    with pytest.raises(ValueError, match="mode"):
        gradcheck(lambda t: t * 2.0, [leaf(xp, [1.0])], mode="sideways")
