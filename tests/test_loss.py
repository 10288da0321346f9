"""Losses: cross_entropy (indices, soft targets, both label-smoothing conventions), nll_loss, kl_div,
distillation_loss, mse_loss, and their nn layers.

Forward passes are checked against naive per-sample loops written from the formulas with Python's
``math``, backward passes with float64 gradient checks (random upstream gradient) and against the
closed forms (softmax − target)/N and T·(p_student − p_teacher)/N; PyTorch, when installed, is an
extra oracle.
"""
import math

import numpy as np
import pytest

from minicnn import backend
from minicnn.autograd import Tensor
from minicnn.functional.activation import log_softmax, softmax
from minicnn.functional.loss import cross_entropy, distillation_loss, kl_div, mse_loss, nll_loss
from minicnn.gradcheck import gradcheck
from minicnn.nn.loss import CrossEntropyLoss, DistillationLoss, KLDivLoss, MSELoss, NLLLoss

REDUCTIONS = ["mean", "sum", "none"]


def to_numpy(a):
    return backend.as_numpy(a.data if isinstance(a, Tensor) else a)


def leaf(xp, array):
    """A float64 tensor on xp's device that requires grad (for gradcheck)."""
    return Tensor(xp.asarray(np.asarray(array, np.float64)), requires_grad=True)


def re_shape(shape):
    """A shape as a regular expression matching its repr, e.g. (2, 3) → \\(2, 3\\)."""
    return str(tuple(shape)).replace("(", r"\(").replace(")", r"\)")


def random_distribution(rng, shape):
    p = rng.uniform(0.05, 1.0, size=shape)
    return p / p.sum(axis=-1, keepdims=True)


# ------------------------------------------------------------------ naive references -----------

def naive_log_softmax_row(row):
    """log softmax of one row of logits: x_k − (m + log Σ_j e^(x_j − m))."""
    m = max(float(v) for v in row)
    log_total = m + math.log(sum(math.exp(float(v) - m) for v in row))
    return [float(v) - log_total for v in row]


def naive_smoothed_target(target_row, num_classes, eps, convention):
    """The smoothed target of one sample, from the two papers' definitions.

    target_row: an int class index or a list of K probabilities.
    "pytorch" (Inception-v3): q' = (1 − ε)·q + ε/K.
    "k-1" (Bag of Tricks): 1 − ε on the true class, ε/(K − 1) on the others; for a soft q the same
    rule weighted by q: q' = q·(1 − ε) + (1 − q)·ε/(K − 1).
    """
    K = num_classes
    if isinstance(target_row, (int, np.integer)):
        if convention == "k-1" and eps > 0:
            return [1 - eps if k == target_row else eps / (K - 1) for k in range(K)]
        q = [1.0 if k == target_row else 0.0 for k in range(K)]
    else:
        q = [float(v) for v in target_row]
        if convention == "k-1" and eps > 0:
            return [qk * (1 - eps) + (1 - qk) * eps / (K - 1) for qk in q]
    return [(1 - eps) * qk + eps / K for qk in q]


def naive_reduce(losses, reduction):
    if reduction == "none":
        return np.array(losses)
    return sum(losses) / len(losses) if reduction == "mean" else sum(losses)


def naive_cross_entropy(logits, target, reduction="mean", eps=0.0, convention="pytorch"):
    """Sample by sample: −Σ_k q_k log softmax(x)_k."""
    N, K = logits.shape
    losses = []
    for i in range(N):
        log_p = naive_log_softmax_row(logits[i])
        row = int(target[i]) if target.ndim == 1 else list(target[i])
        q = naive_smoothed_target(row, K, eps, convention)
        losses.append(-sum(q[k] * log_p[k] for k in range(K)))
    return naive_reduce(losses, reduction)


def naive_kl_div(log_q_model, target, reduction, log_target=False):
    """Pointwise target·(log target − input), with 0·log 0 = 0."""
    out = np.zeros(log_q_model.shape)
    for i in np.ndindex(*log_q_model.shape):
        t = math.exp(target[i]) if log_target else float(target[i])
        log_t = float(target[i]) if log_target else (math.log(t) if t > 0 else 0.0)
        out[i] = t * (log_t - float(log_q_model[i])) if t > 0 else 0.0
    if reduction == "none":
        return out
    total = sum(out.ravel().tolist())
    return {"sum": total, "mean": total / out.size, "batchmean": total / out.shape[0]}[reduction]


def naive_distillation(student, teacher, T, reduction="mean"):
    """T² · Σ_k p_t,k (log p_t,k − log p_s,k) per sample, with p = softmax(logits / T)."""
    losses = []
    for i in range(student.shape[0]):
        log_ps = naive_log_softmax_row([v / T for v in student[i]])
        log_pt = naive_log_softmax_row([v / T for v in teacher[i]])
        losses.append(T * T * sum(math.exp(lt) * (lt - ls) for lt, ls in zip(log_pt, log_ps)))
    return naive_reduce(losses, reduction)


def naive_softmax_rows(x):
    return np.array([[math.exp(v) for v in naive_log_softmax_row(row)] for row in x])


# ------------------------------------------------------------------ cross_entropy: forward ------

@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("eps, convention", [(0.0, "pytorch"), (0.1, "pytorch"), (0.1, "k-1"), (0.3, "k-1")])
def test_cross_entropy_with_class_indices_matches_naive_reference(xp, rng, reduction, eps, convention):
    x, y = rng.standard_normal((6, 5)) * 2, rng.integers(0, 5, size=6)
    loss = cross_entropy(xp.asarray(x), xp.asarray(y), reduction=reduction, label_smoothing=eps,
                         smoothing_convention=convention)
    assert loss.shape == ((6,) if reduction == "none" else ())
    np.testing.assert_allclose(to_numpy(loss), naive_cross_entropy(x, y, reduction, eps, convention), rtol=1e-12)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("eps, convention", [(0.0, "pytorch"), (0.2, "pytorch"), (0.2, "k-1")])
def test_cross_entropy_with_soft_targets_matches_naive_reference(xp, rng, reduction, eps, convention):
    x, q = rng.standard_normal((5, 4)) * 2, random_distribution(rng, (5, 4))
    loss = cross_entropy(xp.asarray(x), xp.asarray(q), reduction=reduction, label_smoothing=eps,
                         smoothing_convention=convention)
    np.testing.assert_allclose(to_numpy(loss), naive_cross_entropy(x, q, reduction, eps, convention), rtol=1e-12)


def test_one_hot_soft_targets_give_the_same_loss_as_class_indices(xp, rng):
    x, y = rng.standard_normal((7, 3)), rng.integers(0, 3, size=7)
    for eps, convention in [(0.0, "pytorch"), (0.1, "pytorch"), (0.1, "k-1")]:
        a = cross_entropy(xp.asarray(x), xp.asarray(y), label_smoothing=eps, smoothing_convention=convention)
        b = cross_entropy(xp.asarray(x), xp.asarray(np.eye(3)[y]), label_smoothing=eps,
                          smoothing_convention=convention)
        np.testing.assert_allclose(to_numpy(a), to_numpy(b), rtol=1e-14)


def test_the_two_smoothing_conventions_put_the_documented_mass_on_the_true_class():
    """With logits that make p uniform, CE = −Σ q_k log(1/K) = log K for any q; instead check q itself
    through the gradient of the summed loss: ∂/∂x = p − q, p = 1/K."""
    K, eps = 4, 0.1
    for convention, true_mass, other_mass in [("pytorch", 1 - eps + eps / K, eps / K),
                                              ("k-1", 1 - eps, eps / (K - 1))]:
        x = Tensor(np.zeros((1, K)), requires_grad=True)
        cross_entropy(x, np.array([2]), reduction="sum", label_smoothing=eps,
                      smoothing_convention=convention).backward()
        q = 1 / K - x.grad.numpy()[0]
        np.testing.assert_allclose(q, [other_mass, other_mass, true_mass, other_mass], rtol=1e-14)


@pytest.mark.parametrize("dtype, rtol", [(np.float32, 1e-6), (np.float64, 1e-13)])
def test_cross_entropy_is_finite_and_exact_for_logits_in_the_hundreds(xp, rng, dtype, rtol):
    x = rng.uniform(-500, 500, size=(4, 6)).astype(dtype)
    y = np.array([int(np.argmin(row)) for row in x])         # the worst class: loss ≈ 1000
    loss = cross_entropy(xp.asarray(x), xp.asarray(y), reduction="none")
    assert loss.dtype == dtype and np.all(np.isfinite(to_numpy(loss)))
    np.testing.assert_allclose(to_numpy(loss), naive_cross_entropy(x.astype(np.float64), y, "none"), rtol=rtol)
    assert to_numpy(loss).min() > 100


def test_cross_entropy_keeps_float32_and_casts_soft_targets_to_the_logits_dtype(xp, rng):
    x = Tensor(xp.asarray(rng.standard_normal((3, 4)).astype(np.float32)), requires_grad=True)
    q = xp.asarray(random_distribution(rng, (3, 4)))                     # float64 probabilities
    loss = cross_entropy(x, q, label_smoothing=0.1)
    loss.backward()
    assert loss.dtype == np.float32 and x.grad.dtype == np.float32


def test_cross_entropy_accepts_a_python_list_of_class_indices():
    x = np.array([[2.0, 0.0], [0.0, 2.0]])
    np.testing.assert_allclose(cross_entropy(x, [0, 1]).item(), math.log(1 + math.exp(-2)), rtol=1e-14)


# ------------------------------------------------------------------ cross_entropy: backward -----

@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("eps, convention", [(0.0, "pytorch"), (0.1, "pytorch"), (0.1, "k-1")])
def test_cross_entropy_gradcheck_with_class_indices(xp, rng, reduction, eps, convention):
    y = xp.asarray(rng.integers(0, 4, size=5))
    gradcheck(lambda t: cross_entropy(t, y, reduction=reduction, label_smoothing=eps,
                                      smoothing_convention=convention),
              [leaf(xp, rng.standard_normal((5, 4)))])


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("eps, convention", [(0.0, "pytorch"), (0.2, "k-1")])
def test_cross_entropy_gradcheck_with_soft_targets_for_logits_and_targets(xp, rng, reduction, eps, convention):
    # Unnormalised targets (rows summing to 0.3 … 2.7) exercise the general gradient p·Σq − q,
    # which p − q only equals for rows summing to 1.
    gradcheck(lambda t, q: cross_entropy(t, q, reduction=reduction, label_smoothing=eps,
                                         smoothing_convention=convention),
              [leaf(xp, rng.standard_normal((4, 3))), leaf(xp, rng.uniform(0.1, 0.9, size=(4, 3)))])


@pytest.mark.parametrize("eps, convention", [(0.0, "pytorch"), (0.1, "pytorch"), (0.1, "k-1")])
def test_cross_entropy_gradient_is_softmax_minus_target_over_n(xp, rng, eps, convention):
    N, K = 6, 5
    x, y = rng.standard_normal((N, K)), rng.integers(0, K, size=N)
    t = Tensor(xp.asarray(x), requires_grad=True)
    cross_entropy(t, xp.asarray(y), label_smoothing=eps, smoothing_convention=convention).backward()
    q = np.array([naive_smoothed_target(int(c), K, eps, convention) for c in y])
    np.testing.assert_allclose(to_numpy(t.grad), (naive_softmax_rows(x) - q) / N, rtol=1e-12, atol=1e-15)


# ------------------------------------------------------------------ cross_entropy: PyTorch ------

@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("eps", [0.0, 0.1, 0.4])
@pytest.mark.parametrize("soft", [False, True], ids=["indices", "soft"])
def test_cross_entropy_matches_pytorch(rng, reduction, eps, soft):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((8, 6)) * 3
    target = rng.uniform(0, 0.5, size=(8, 6)) if soft else rng.integers(0, 6, size=8)   # soft: unnormalised
    t = Tensor(x, requires_grad=True)
    ours = cross_entropy(t, target, reduction=reduction, label_smoothing=eps)
    gy = rng.standard_normal(ours.shape)
    ours.backward(gy)
    tx = torch.tensor(x, requires_grad=True)
    theirs = torch.nn.functional.cross_entropy(tx, torch.tensor(target), reduction=reduction, label_smoothing=eps)
    theirs.backward(torch.tensor(gy))
    np.testing.assert_allclose(ours.numpy(), theirs.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(t.grad.numpy(), tx.grad.numpy(), rtol=1e-10, atol=1e-15)


def test_k_minus_1_smoothing_equals_pytorch_smoothing_with_eps_times_k_over_k_minus_1(rng):
    """The documented identity: "k-1" with ε is PyTorch's convention with ε' = εK/(K − 1)."""
    torch = pytest.importorskip("torch")
    K, eps = 5, 0.1
    x, y = rng.standard_normal((6, K)), rng.integers(0, K, size=6)
    ours = cross_entropy(x, y, label_smoothing=eps, smoothing_convention="k-1")
    theirs = torch.nn.functional.cross_entropy(torch.tensor(x), torch.tensor(y), label_smoothing=eps * K / (K - 1))
    np.testing.assert_allclose(ours.item(), theirs.item(), rtol=1e-12)


# ------------------------------------------------------------------ cross_entropy: bad input ----

@pytest.mark.parametrize("shape", [(5,), (2, 3, 4)])
def test_cross_entropy_rejects_logits_that_are_not_2d(shape):
    with pytest.raises(ValueError, match=rf"cross_entropy: expected input of shape \(N, K\) .*got shape {re_shape(shape)}"):
        cross_entropy(np.zeros(shape), np.zeros(shape[0], np.int64))


def test_cross_entropy_rejects_a_target_of_the_wrong_length():
    with pytest.raises(ValueError, match=r"cross_entropy: class-index target must have shape \(N,\) = \(4,\) "
                                         r"for input of shape \(4, 3\), got shape \(5,\)"):
        cross_entropy(np.zeros((4, 3)), np.zeros(5, np.int64))


@pytest.mark.parametrize("bad", [3, -1, 100])
def test_cross_entropy_rejects_class_indices_out_of_range(bad):
    with pytest.raises(ValueError, match=r"cross_entropy: class indices must be in \[0, 3\) .*got values in"):
        cross_entropy(np.zeros((4, 3)), np.array([0, 1, bad, 2]))


def test_cross_entropy_rejects_a_soft_target_of_the_wrong_shape():
    with pytest.raises(ValueError, match=r"cross_entropy: a soft \(probability\) target must have the input's "
                                         r"shape \(N, K\) = \(4, 3\), got shape \(4, 2\)"):
        cross_entropy(np.zeros((4, 3)), np.full((4, 2), 0.5))


def test_cross_entropy_rejects_float_class_indices():
    with pytest.raises(ValueError, match=r"cross_entropy: a soft .* got shape \(4,\); class indices must be an integer"):
        cross_entropy(np.zeros((4, 3)), np.array([0.0, 1.0, 2.0, 1.0]))


def test_cross_entropy_rejects_boolean_targets_and_integer_logits():
    with pytest.raises(ValueError, match="cross_entropy: target must be integer class indices .* got dtype bool"):
        cross_entropy(np.zeros((2, 3)), np.array([True, False]))
    with pytest.raises(ValueError, match="cross_entropy: expected floating-point input, got dtype int64"):
        cross_entropy(np.zeros((2, 3), np.int64), np.array([0, 1]))


@pytest.mark.parametrize("kwargs, message", [
    ({"label_smoothing": 1.5}, r"label_smoothing must be in \[0, 1\], got 1.5"),
    ({"label_smoothing": -0.1}, r"label_smoothing must be in \[0, 1\], got -0.1"),
    ({"smoothing_convention": "inception"}, r"smoothing_convention must be one of \('pytorch', 'k-1'\)"),
    ({"reduction": "batchmean"}, r"reduction must be one of \('mean', 'sum', 'none'\), got 'batchmean'"),
])
def test_cross_entropy_rejects_bad_settings(kwargs, message):
    with pytest.raises(ValueError, match="cross_entropy: " + message):
        cross_entropy(np.zeros((2, 3)), np.array([0, 1]), **kwargs)


def test_k_minus_1_smoothing_needs_two_classes():
    with pytest.raises(ValueError, match=r"cross_entropy: smoothing_convention 'k-1' needs K >= 2 classes, got K = 1"):
        cross_entropy(np.zeros((2, 1)), np.array([0, 0]), label_smoothing=0.1, smoothing_convention="k-1")


# ------------------------------------------------------------------ nll_loss --------------------

@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_nll_loss_picks_minus_the_true_class_log_probability(xp, rng, reduction):
    log_p = np.log(random_distribution(rng, (5, 4)))
    y = rng.integers(0, 4, size=5)
    expected = naive_reduce([-log_p[i, y[i]] for i in range(5)], reduction)
    np.testing.assert_allclose(to_numpy(nll_loss(xp.asarray(log_p), xp.asarray(y), reduction)), expected,
                               rtol=1e-14)


def test_nll_of_log_softmax_equals_cross_entropy(xp, rng):
    x, y = xp.asarray(rng.standard_normal((5, 4))), xp.asarray(rng.integers(0, 4, size=5))
    np.testing.assert_allclose(to_numpy(nll_loss(log_softmax(x, 1), y)), to_numpy(cross_entropy(x, y)), rtol=1e-14)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_nll_loss_gradcheck(xp, rng, reduction):
    y = xp.asarray(rng.integers(0, 4, size=5))
    gradcheck(lambda t: nll_loss(t, y, reduction), [leaf(xp, rng.standard_normal((5, 4)))])


def test_nll_loss_rejects_bad_targets():
    with pytest.raises(ValueError, match=r"nll_loss: class indices must be in \[0, 3\)"):
        nll_loss(np.zeros((2, 3)), np.array([0, 3]))
    with pytest.raises(ValueError, match=r"nll_loss: target must be integer class indices of shape \(2,\)"):
        nll_loss(np.zeros((2, 3)), np.full((2, 3), 1 / 3))


# ------------------------------------------------------------------ kl_div ----------------------

@pytest.mark.parametrize("reduction", ["mean", "sum", "none", "batchmean"])
def test_kl_div_matches_naive_reference_with_zeros_in_the_target(xp, rng, reduction):
    log_q_model = np.log(random_distribution(rng, (4, 5)))
    target = random_distribution(rng, (4, 5))
    target[0, :2] = 0.0                                  # 0·log 0 = 0
    target[0] /= target[0].sum()
    out = kl_div(xp.asarray(log_q_model), xp.asarray(target), reduction)
    np.testing.assert_allclose(to_numpy(out), naive_kl_div(log_q_model, target, reduction), rtol=1e-13, atol=1e-16)


def test_kl_div_with_log_target_matches_naive_reference(xp, rng):
    log_q_model, log_target = np.log(random_distribution(rng, (3, 4))), np.log(random_distribution(rng, (3, 4)))
    out = kl_div(xp.asarray(log_q_model), xp.asarray(log_target), "batchmean", log_target=True)
    np.testing.assert_allclose(to_numpy(out), naive_kl_div(log_q_model, log_target, "batchmean", True), rtol=1e-13)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none", "batchmean"])
@pytest.mark.parametrize("log_target", [False, True])
def test_kl_div_gradcheck_for_input_and_target(xp, rng, reduction, log_target):
    target = random_distribution(rng, (3, 4))
    target = np.log(target) if log_target else target
    gradcheck(lambda a, b: kl_div(a, b, reduction, log_target),
              [leaf(xp, np.log(random_distribution(rng, (3, 4)))), leaf(xp, target)])


@pytest.mark.filterwarnings("ignore:reduction. 'mean' divides the total loss")   # PyTorch's own notice
@pytest.mark.parametrize("reduction", ["mean", "sum", "none", "batchmean"])
def test_kl_div_matches_pytorch(rng, reduction):
    torch = pytest.importorskip("torch")
    a, b = np.log(random_distribution(rng, (3, 4))), random_distribution(rng, (3, 4))
    b[1, 0] = 0.0
    ours = kl_div(a, b, reduction)
    theirs = torch.nn.functional.kl_div(torch.tensor(a), torch.tensor(b), reduction=reduction)
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-13, atol=1e-16)


def test_kl_div_rejects_mismatched_inputs():
    with pytest.raises(ValueError, match=r"kl_div: input and target must have the same shape, got \(2, 3\) and \(3, 2\)"):
        kl_div(np.zeros((2, 3)), np.zeros((3, 2)))
    with pytest.raises(ValueError, match="kl_div: expected floating-point input and target of one dtype, got float32 and float64"):
        kl_div(np.zeros((2, 3), np.float32), np.zeros((2, 3)))
    with pytest.raises(ValueError, match="kl_div: reduction must be one of"):
        kl_div(np.zeros((2, 3)), np.zeros((2, 3)), reduction="avg")


# ------------------------------------------------------------------ distillation_loss -----------

@pytest.mark.parametrize("T", [1.0, 4.0, 20.0])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_distillation_loss_matches_naive_reference(xp, rng, T, reduction):
    s, t = rng.standard_normal((5, 6)) * 5, rng.standard_normal((5, 6)) * 5
    out = distillation_loss(xp.asarray(s), xp.asarray(t), T, reduction)
    np.testing.assert_allclose(to_numpy(out), naive_distillation(s, t, T, reduction), rtol=1e-10, atol=1e-14)


def test_distillation_loss_equals_t_squared_times_batchmean_kl_div(xp, rng):
    s, t, T = xp.asarray(rng.standard_normal((4, 3))), xp.asarray(rng.standard_normal((4, 3))), 3.0
    composed = kl_div(log_softmax(s / T, 1), softmax(t / T, 1), "batchmean") * (T * T)
    np.testing.assert_allclose(to_numpy(distillation_loss(s, t, T)), to_numpy(composed), rtol=1e-13)


@pytest.mark.parametrize("T", [1.0, 20.0])
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_distillation_loss_gradcheck(xp, rng, T, reduction):
    teacher = xp.asarray(rng.standard_normal((4, 5)) * 3)
    gradcheck(lambda s: distillation_loss(s, teacher, T, reduction), [leaf(xp, rng.standard_normal((4, 5)) * 3)])


def test_distillation_gradient_is_t_times_softened_difference_over_n_and_spares_the_teacher(xp, rng):
    N, T = 4, 20.0
    s, t = rng.standard_normal((N, 5)) * 10, rng.standard_normal((N, 5)) * 10
    student, teacher = Tensor(xp.asarray(s), requires_grad=True), Tensor(xp.asarray(t), requires_grad=True)
    distillation_loss(student, teacher, T).backward()
    expected = T * (naive_softmax_rows(s / T) - naive_softmax_rows(t / T)) / N
    np.testing.assert_allclose(to_numpy(student.grad), expected, rtol=1e-10, atol=1e-16)
    assert teacher.grad is None


def test_distillation_loss_is_zero_when_student_equals_teacher(rng):
    z = rng.standard_normal((3, 4))
    assert abs(distillation_loss(z, z.copy(), 20).item()) < 1e-14


@pytest.mark.parametrize("T", [0, -1.0, float("inf"), float("nan"), True])
def test_distillation_loss_rejects_bad_temperatures(T):
    with pytest.raises(ValueError, match="distillation_loss: temperature T must be a positive finite number"):
        distillation_loss(np.zeros((2, 3)), np.zeros((2, 3)), T)


def test_distillation_loss_rejects_mismatched_logits():
    with pytest.raises(ValueError, match=r"distillation_loss: student_logits and teacher_logits must have the same "
                                         r"shape \(N, K\), got \(2, 3\) and \(2, 4\)"):
        distillation_loss(np.zeros((2, 3)), np.zeros((2, 4)), 2.0)
    with pytest.raises(ValueError, match=r"distillation_loss: expected teacher_logits of shape \(N, K\)"):
        distillation_loss(np.zeros((2, 3)), np.zeros(3), 2.0)


# ------------------------------------------------------------------ mse_loss --------------------

@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_mse_loss_matches_naive_reference(xp, rng, reduction):
    a, b = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    squared = np.array([[(a[i, j] - b[i, j]) ** 2 for j in range(4)] for i in range(3)])
    expected = {"none": squared, "sum": sum(squared.ravel().tolist()),
                "mean": sum(squared.ravel().tolist()) / 12}[reduction]
    np.testing.assert_allclose(to_numpy(mse_loss(xp.asarray(a), xp.asarray(b), reduction)), expected, rtol=1e-14)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_mse_loss_gradcheck_for_both_arguments(xp, rng, reduction):
    gradcheck(lambda a, b: mse_loss(a, b, reduction),
              [leaf(xp, rng.standard_normal((3, 4))), leaf(xp, rng.standard_normal((3, 4)))])


def test_mse_loss_rejects_mismatched_inputs():
    with pytest.raises(ValueError, match=r"mse_loss: input and target must have the same shape, got \(3,\) and \(3, 1\)"):
        mse_loss(np.zeros(3), np.zeros((3, 1)))
    with pytest.raises(ValueError, match="mse_loss: expected floating-point input and target of one dtype"):
        mse_loss(np.zeros(3, np.float32), np.zeros(3))


# ------------------------------------------------------------------ nn layers -------------------

def test_loss_layers_compute_their_functions(xp, rng):
    x, y = xp.asarray(rng.standard_normal((4, 3))), xp.asarray(rng.integers(0, 3, size=4))
    t = xp.asarray(rng.standard_normal((4, 3)))
    q = xp.asarray(random_distribution(rng, (4, 3)))
    pairs = [
        (CrossEntropyLoss(label_smoothing=0.1, smoothing_convention="k-1")(x, y),
         cross_entropy(x, y, label_smoothing=0.1, smoothing_convention="k-1")),
        (CrossEntropyLoss(reduction="none")(x, q), cross_entropy(x, q, reduction="none")),
        (NLLLoss(reduction="sum")(log_softmax(x, 1), y), nll_loss(log_softmax(x, 1), y, "sum")),
        (KLDivLoss(reduction="batchmean")(log_softmax(x, 1), q), kl_div(log_softmax(x, 1), q, "batchmean")),
        (MSELoss()(x, t), mse_loss(x, t)),
        (DistillationLoss(T=20)(x, t), distillation_loss(x, t, 20)),
    ]
    for ours, expected in pairs:
        np.testing.assert_array_equal(to_numpy(ours), to_numpy(expected))


def test_loss_layers_show_their_settings():
    assert repr(CrossEntropyLoss()) == "CrossEntropyLoss(reduction='mean')"
    assert repr(CrossEntropyLoss(label_smoothing=0.1, smoothing_convention="k-1")) == \
        "CrossEntropyLoss(reduction='mean', label_smoothing=0.1, smoothing_convention='k-1')"
    assert repr(DistillationLoss(20)) == "DistillationLoss(T=20.0, reduction='mean')"
    assert repr(MSELoss(reduction="sum")) == "MSELoss(reduction='sum')"


@pytest.mark.parametrize("build, message", [
    (lambda: CrossEntropyLoss(label_smoothing=2.0), r"CrossEntropyLoss: label_smoothing must be in \[0, 1\]"),
    (lambda: CrossEntropyLoss(smoothing_convention="K-1"), "CrossEntropyLoss: smoothing_convention must be one of"),
    (lambda: CrossEntropyLoss(reduction="avg"), "CrossEntropyLoss: reduction must be one of"),
    (lambda: MSELoss(reduction=None), "MSELoss: reduction must be one of"),
    (lambda: NLLLoss(reduction="batchmean"), "NLLLoss: reduction must be one of"),
    (lambda: KLDivLoss(reduction="avg"), "KLDivLoss: reduction must be one of"),
    (lambda: DistillationLoss(T=0), "DistillationLoss: temperature T must be a positive finite number"),
])
def test_loss_layers_check_their_settings_when_built(build, message):
    with pytest.raises(ValueError, match=message):
        build()
