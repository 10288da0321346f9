"""Specification of SGD's Caffe momentum form, RMSprop (PyTorch's and TensorFlow's update), Adam and AdamW.

Hand-computed steps first (numbers to follow with pencil and paper), then references and PyTorch as an
oracle, state dicts through minicnn.save/load, and bad options.
"""
import itertools
import math

import numpy as np
import pytest

import minicnn
from minicnn import backend, optim
from minicnn.optim import SGD, Adam, AdamW, RMSprop


def param(values, dtype=np.float64):
    return minicnn.Tensor(np.array(values, dtype=dtype), requires_grad=True)


def set_grad(p, values):
    p.grad = minicnn.Tensor(np.array(values, dtype=p.dtype))


def run(optimizer, p, grads, lrs=None):
    """One step per gradient; ``lrs[i]`` (if given) is set as the lr before step i. Returns p after each step."""
    values = []
    for i, g in enumerate(grads):
        if lrs is not None:
            optimizer.param_groups[0]["lr"] = lrs[i]
        set_grad(p, g)
        optimizer.step()
        values.append(p.data.copy())
    return values


# ---------------------------------------------------------------------------------------------------------
# SGD, momentum_form="caffe": v = μ·v − lr·(g + wd·p); p = p + v   (AlexNet §2.4, papers.md §11.9)

GRADS = [[1.0, 2.0], [0.5, -1.0], [2.0, 0.0]]


def test_caffe_form_keeps_the_lr_inside_the_velocity():
    # v1 = −0.5·[1, 2] = [−0.5, −1];  v2 = 0.5·v1 − 0.5·[0.5, −1] = [−0.5, 0];  then lr = 0.25:
    # v3 = 0.5·v2 − 0.25·[2, 0] = [−0.75, 0]
    p = param([0.0, 0.0])
    optimizer = SGD([p], lr=0.5, momentum=0.5, momentum_form="caffe")
    steps = run(optimizer, p, GRADS, lrs=[0.5, 0.5, 0.25])
    np.testing.assert_array_equal(steps, [[-0.5, -1.0], [-1.0, -1.0], [-1.75, -1.0]])
    np.testing.assert_array_equal(optimizer.state[p]["velocity"], [-0.75, 0.0])


def test_pytorch_form_multiplies_the_whole_buffer_by_the_new_lr():
    # b = [1, 2], [1, 0], then b3 = 0.5·[1, 0] + [2, 0] = [2.5, 0] and the step is 0.25·b3 = [0.625, 0]:
    # the old gradients in b are taken at the new lr 0.25 too; Caffe's step was [0.75, 0]
    p = param([0.0, 0.0])
    steps = run(SGD([p], lr=0.5, momentum=0.5), p, GRADS, lrs=[0.5, 0.5, 0.25])
    np.testing.assert_array_equal(steps, [[-0.5, -1.0], [-1.0, -1.0], [-1.625, -1.0]])


def test_caffe_form_folds_weight_decay_in_with_the_lr():
    # g1 = [1, 1] + 0.5·[2, −4] = [2, −1], v1 = −0.5·g1 = [−1, 0.5], p1 = [1, −3.5]
    # g2 = [1, 1] + 0.5·p1 = [1.5, −0.75], v2 = 0.5·v1 − 0.5·g2 = [−1.25, 0.625], p2 = [−0.25, −2.875]
    p = param([2.0, -4.0])
    steps = run(SGD([p], lr=0.5, momentum=0.5, weight_decay=0.5, momentum_form="caffe"), p, [[1.0, 1.0]] * 2)
    np.testing.assert_array_equal(steps, [[1.0, -3.5], [-0.25, -2.875]])


def test_caffe_form_without_momentum_is_plain_sgd_and_keeps_no_state():
    p = param([1.0, -2.0])
    optimizer = SGD([p], lr=0.5, momentum_form="caffe")
    np.testing.assert_array_equal(run(optimizer, p, [[0.5, 0.25]]), [[0.75, -2.125]])
    assert optimizer.state[p] == {}                               # no velocity to keep


def caffe_reference(p, grads, lrs, momentum, weight_decay):
    """AlexNet's update as printed in the paper: v ← μ·v − wd·ε·w − ε·∂L/∂w;  w ← w + v."""
    w, v, trajectory = np.array(p, dtype=np.float64), np.zeros(len(p)), []
    for g, lr in zip(grads, lrs):
        v = momentum * v - weight_decay * lr * w - lr * np.asarray(g)
        w = w + v
        trajectory.append(w)
    return trajectory


def test_caffe_and_pytorch_forms_agree_while_the_lr_is_constant_and_differ_once_it_changes():
    rng = np.random.default_rng(0)
    grads = rng.standard_normal((8, 5))
    lrs = [0.1] * 4 + [0.01] * 4                                 # an AlexNet-style ÷10 after step 4
    start = rng.standard_normal(5)
    trajectories = {}
    for form in ("pytorch", "caffe"):
        p = param(start)
        trajectories[form] = run(SGD([p], lr=0.1, momentum=0.9, weight_decay=5e-4, momentum_form=form),
                                 p, grads, lrs)
    np.testing.assert_allclose(trajectories["caffe"], caffe_reference(start, grads, lrs, 0.9, 5e-4), rtol=1e-12)
    np.testing.assert_allclose(trajectories["caffe"][:4], trajectories["pytorch"][:4], rtol=1e-12)
    # Right after the drop PyTorch's step is ~10× smaller at once: its buffer is multiplied by the new lr
    caffe_step = trajectories["caffe"][4] - trajectories["caffe"][3]
    pytorch_step = trajectories["pytorch"][4] - trajectories["pytorch"][3]
    assert np.all(np.abs(caffe_step - pytorch_step) > 1e-4)


def test_the_difference_right_after_an_lr_change_is_momentum_times_the_lr_change_times_the_buffer():
    # PyTorch's step: lr2·(μ·b + g) = μ·lr2·b + lr2·g; Caffe's: μ·lr1·b + lr2·g (its v was −lr1·b)
    rng = np.random.default_rng(1)
    grads, start = rng.standard_normal((3, 4)), rng.standard_normal(4)
    optimizers = {}
    for form in ("pytorch", "caffe"):
        p = param(start)
        optimizers[form] = (SGD([p], lr=0.1, momentum=0.9, momentum_form=form), p)
        run(*optimizers[form], grads[:2])
    buffer = optimizers["pytorch"][0].state[optimizers["pytorch"][1]]["momentum_buffer"].copy()
    after = {form: run(o, p, grads[2:], lrs=[0.01])[0] for form, (o, p) in optimizers.items()}
    np.testing.assert_allclose(after["pytorch"] - after["caffe"], 0.9 * (0.1 - 0.01) * buffer, rtol=1e-9)


def test_momentum_form_is_a_group_option_and_stays_out_of_pytorch_form_groups():
    a, b = param([0.0]), param([0.0])
    optimizer = SGD([{"params": [a]}, {"params": [b], "momentum_form": "caffe"}], lr=1.0, momentum=0.5)
    assert "momentum_form" not in optimizer.param_groups[0]       # the group layout of PyTorch's SGD
    assert optimizer.param_groups[1]["momentum_form"] == "caffe"
    run(optimizer, a, [[1.0]])
    set_grad(b, [1.0])
    optimizer.step()
    assert set(optimizer.state[a]) == {"momentum_buffer"} and set(optimizer.state[b]) == {"velocity"}
    assert SGD([param([0.0])], lr=1.0, momentum_form="caffe").param_groups[0]["momentum_form"] == "caffe"


@pytest.mark.parametrize("kwargs, message", [
    (dict(momentum_form="tensorflow"), r"SGD: momentum_form must be one of \('pytorch', 'caffe'\), got 'tensorflow'"),
    (dict(momentum_form="caffe", momentum=0.9, nesterov=True), "SGD: momentum_form='caffe' has no dampening and no Nesterov"),
    (dict(momentum_form="caffe", momentum=0.9, dampening=0.1), "SGD: momentum_form='caffe' has no dampening"),
], ids=["unknown-form", "caffe-nesterov", "caffe-dampening"])
def test_invalid_momentum_forms_raise_value_error_naming_sgd(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SGD([param([1.0])], lr=0.1, **kwargs)


# ---------------------------------------------------------------------------------------------------------
# RMSprop, PyTorch's update: ms = α·ms + (1−α)·g²; b = μ·b + g/(√ms + ε); p = p − lr·b

def test_rmsprop_divides_by_the_root_of_the_running_mean_square():
    # α = 0.75, ε = 0: g1 = 2: ms = 0.25·4 = 1, p = 1 − 0.1·2/1 = 0.8
    #                   g2 = 1: ms = 0.75·1 + 0.25·1 = 1, p = 0.8 − 0.1·1/1 = 0.7
    #                   g3 = 4: ms = 0.75·1 + 0.25·16 = 4.75, p = 0.7 − 0.1·4/√4.75
    p = param([1.0])
    optimizer = RMSprop([p], lr=0.1, alpha=0.75, eps=0)
    steps = run(optimizer, p, [[2.0], [1.0], [4.0]])
    np.testing.assert_allclose(np.ravel(steps), [0.8, 0.7, 0.7 - 0.4 / math.sqrt(4.75)], rtol=1e-14)
    assert optimizer.state[p]["square_avg"][0] == 4.75 and set(optimizer.state[p]) == {"square_avg"}


def test_rmsprop_adds_eps_outside_the_root_and_keeps_lr_outside_the_momentum_buffer():
    # α = 0.75, ε = 1, μ = 0.5, lr = 1 then 0.5:
    # g1 = 2: ms = 1, b = 2/(1 + 1) = 1, p = 10 − 1·1 = 9
    # g2 = 2: ms = 0.75 + 1 = 1.75, b = 0.5·1 + 2/(√1.75 + 1), p = 9 − 0.5·b
    p = param([10.0])
    optimizer = RMSprop([p], lr=1.0, alpha=0.75, eps=1.0, momentum=0.5)
    steps = run(optimizer, p, [[2.0], [2.0]], lrs=[1.0, 0.5])
    b2 = 0.5 + 2 / (math.sqrt(1.75) + 1)
    np.testing.assert_allclose(np.ravel(steps), [9.0, 9.0 - 0.5 * b2], rtol=1e-14)
    np.testing.assert_allclose(optimizer.state[p]["momentum_buffer"], [b2], rtol=1e-14)


def test_centered_rmsprop_divides_by_the_running_standard_deviation():
    # α = 0.5, ε = 0: g1 = 2: ms = 2, ḡ = 1, d = √(2 − 1) = 1, p = 0 − 0.5·2/1 = −1
    #                 g2 = 4: ms = 1 + 8 = 9, ḡ = 0.5 + 2 = 2.5, d = √(9 − 6.25) = √2.75, p = −1 − 0.5·4/√2.75
    p = param([0.0])
    optimizer = RMSprop([p], lr=0.5, alpha=0.5, eps=0, centered=True)
    steps = run(optimizer, p, [[2.0], [4.0]])
    np.testing.assert_allclose(np.ravel(steps), [-1.0, -1.0 - 2 / math.sqrt(2.75)], rtol=1e-14)
    assert optimizer.state[p]["grad_avg"][0] == 2.5 and optimizer.state[p]["square_avg"][0] == 9.0


def test_rmsprop_weight_decay_is_folded_into_the_gradient_before_the_mean_square():
    # g = 1 + 0.5·p0 = 1 + 0.5·2 = 2; α = 0.75: ms = 1, p = 2 − 0.25·2/1 = 1.5
    p = param([2.0])
    np.testing.assert_allclose(run(RMSprop([p], lr=0.25, alpha=0.75, eps=0, weight_decay=0.5), p, [[1.0]]),
                               [[1.5]], rtol=1e-15)


def test_pytorch_rmsprop_first_step_is_about_lr_over_root_one_minus_alpha_whatever_the_gradient():
    # ms = (1 − α)·g², so g/√ms = 1/√(1 − α) = 10 for α = 0.99: a large first step for tiny gradients
    p = param([0.0, 0.0])
    run(RMSprop([p], lr=0.01, alpha=0.99), p, [[1e-3, 1e3]])
    np.testing.assert_allclose(p.data, [-0.1, -0.1], rtol=1e-4)


# ---------------------------------------------------------------------------------------------------------
# RMSprop, TensorFlow's update (eps_inside_sqrt=True): ms starts at 1; mom = μ·mom + lr·g/√(ms + ε); p −= mom

def test_tensorflow_rmsprop_starts_ms_at_one_puts_eps_under_the_root_and_lr_inside_the_momentum():
    # ρ = 0.75, ε = 1, μ = 0.5, p0 = 10
    # g1 = 3, lr = 1:   ms = 0.75·1 + 0.25·9 = 3, √(3 + 1) = 2, mom = 1·3/2 = 1.5, p = 8.5
    # g2 = 6, lr = 0.5: ms = 0.75·3 + 0.25·36 = 11.25, √12.25 = 3.5, mom = 0.5·1.5 + 0.5·6/3.5 = 0.75 + 6/7
    p = param([10.0])
    optimizer = RMSprop([p], lr=1.0, alpha=0.75, eps=1.0, momentum=0.5, eps_inside_sqrt=True)
    steps = run(optimizer, p, [[3.0], [6.0]], lrs=[1.0, 0.5])
    np.testing.assert_allclose(np.ravel(steps), [8.5, 8.5 - 0.75 - 6 / 7], rtol=1e-14)
    np.testing.assert_allclose(optimizer.state[p]["momentum_buffer"], [0.75 + 6 / 7], rtol=1e-14)
    assert optimizer.state[p]["square_avg"][0] == 11.25


def test_tensorflow_rmsprop_without_momentum_steps_by_lr_times_g_over_root_ms_plus_eps():
    # ρ = 0.75, ε = 1: g = 3: ms = 3 (from 1), p = 0 − 0.5·3/√4 = −0.75; no momentum buffer is kept
    p = param([0.0])
    optimizer = RMSprop([p], lr=0.5, alpha=0.75, eps=1.0, eps_inside_sqrt=True)
    np.testing.assert_array_equal(run(optimizer, p, [[3.0]]), [[-0.75]])
    assert set(optimizer.state[p]) == {"square_avg"}


def test_tensorflow_centered_rmsprop_subtracts_the_squared_mean_gradient_under_the_root():
    # ρ = 0.5, ε = 1: g = 4: ms = 0.5·1 + 0.5·16 = 8.5, mg = 2, √(8.5 − 4 + 1) = √5.5, p = −1·4/√5.5
    p = param([0.0])
    optimizer = RMSprop([p], lr=1.0, alpha=0.5, eps=1.0, centered=True, eps_inside_sqrt=True)
    np.testing.assert_allclose(run(optimizer, p, [[4.0]]), [[-4 / math.sqrt(5.5)]], rtol=1e-14)


def tensorflow_rmsprop_reference(start, grads, lrs, decay, momentum, epsilon, centered):
    """TensorFlow's ApplyRMSProp / ApplyCenteredRMSProp, written from its documentation (training/rmsprop.py):

        mean_square = decay·mean_square + (1 − decay)·g²              (slot "rms", initialised to ones)
        mean_grad   = decay·mean_grad + (1 − decay)·g                 (centered; slot "mg", zeros)
        mom = momentum·mom + lr·g / sqrt(mean_square [− mean_grad²] + epsilon)      (slot "momentum", zeros)
        var = var − mom
    """
    var = np.array(start, dtype=np.float64)
    rms, mg, mom = np.ones_like(var), np.zeros_like(var), np.zeros_like(var)
    trajectory = []
    for g, lr in zip(grads, lrs):
        rms = decay * rms + (1 - decay) * g ** 2
        denominator = rms + epsilon
        if centered:
            mg = decay * mg + (1 - decay) * g
            denominator = denominator - mg ** 2
        mom = momentum * mom + lr * g / np.sqrt(denominator)
        var = var - mom
        trajectory.append(var)
    return trajectory


@pytest.mark.parametrize("centered", [False, True])
@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_tensorflow_rmsprop_matches_a_reference_of_tensorflows_update_with_lr_decay(momentum, centered):
    rng = np.random.default_rng(2)
    start, grads = rng.standard_normal(6), 3 * rng.standard_normal((10, 6))
    lrs = [0.045 * 0.94 ** (i // 2) for i in range(10)]           # Inception's ×0.94 every 2 "epochs"
    p = param(start)
    optimizer = RMSprop([p], lr=0.045, alpha=0.9, eps=1.0, momentum=momentum, centered=centered,
                        eps_inside_sqrt=True)
    steps = run(optimizer, p, grads, lrs)
    np.testing.assert_allclose(steps, tensorflow_rmsprop_reference(start, grads, lrs, 0.9, momentum, 1.0, centered),
                               rtol=1e-12)


def test_rmsprop_tensorflow_classmethod_gives_inception_v3_settings():
    optimizer = RMSprop.tensorflow([param([1.0])])
    group = optimizer.param_groups[0]
    assert (group["lr"], group["alpha"], group["eps"], group["momentum"]) == (0.045, 0.9, 1.0, 0.9)
    assert group["eps_inside_sqrt"] is True and group["centered"] is False and group["weight_decay"] == 0
    custom = RMSprop.tensorflow([param([1.0])], lr=0.01, decay=0.8, weight_decay=4e-5).param_groups[0]
    assert (custom["lr"], custom["alpha"], custom["weight_decay"]) == (0.01, 0.8, 4e-5)


def test_pytorch_and_tensorflow_rmsprop_differ_with_eps_one():
    # Same options, different updates: the first step alone shows it (ms from 0 vs from 1, ε in or out)
    steps = {}
    for inside in (False, True):
        p = param([0.0])
        run(RMSprop([p], lr=0.1, alpha=0.9, eps=1.0, eps_inside_sqrt=inside), p, [[1.0]])
        steps[inside] = -p.data[0]
    # PyTorch: ms = 0.1, 0.1·1/(√0.1 + 1); TensorFlow: ms = 0.9 + 0.1 = 1, 0.1·1/√2
    assert steps[False] == pytest.approx(0.1 / (math.sqrt(0.1) + 1), rel=1e-14)
    assert steps[True] == pytest.approx(0.1 / math.sqrt(2), rel=1e-14)


# ---------------------------------------------------------------------------------------------------------
# Adam and AdamW

def test_adam_first_step_is_lr_times_the_sign_of_the_gradient():
    # m = (1 − β1)·g, v = (1 − β2)·g²; bias-corrected m̂ = g, v̂ = g²: step = lr·g/|g|
    p = param([1.0, 1.0])
    run(Adam([p], lr=0.1, eps=0), p, [[1e-4, -300.0]])
    np.testing.assert_allclose(p.data, [0.9, 1.1], rtol=1e-14)


def test_adam_steps_with_bias_corrected_averages():
    # β = (0.5, 0.75), ε = 0, lr = 0.1, p0 = 1
    # g1 = 2:  m = 1, v = 1;  m̂ = 1/0.5 = 2, v̂ = 1/0.25 = 4, step 0.1·2/2 = 0.1 → p = 0.9
    # g2 = −2: m = 0.5 − 1 = −0.5, v = 0.75 + 1 = 1.75;  m̂ = −0.5/0.75 = −2/3, v̂ = 1.75/0.4375 = 4,
    #          step 0.1·(−2/3)/2 = −1/30 → p = 0.9 + 1/30
    p = param([1.0])
    optimizer = Adam([p], lr=0.1, betas=(0.5, 0.75), eps=0)
    steps = run(optimizer, p, [[2.0], [-2.0]])
    np.testing.assert_allclose(np.ravel(steps), [0.9, 0.9 + 1 / 30], rtol=1e-14)
    state = optimizer.state[p]
    assert state["step"] == 2 and state["exp_avg"][0] == -0.5 and state["exp_avg_sq"][0] == 1.75
    assert set(state) == {"step", "exp_avg", "exp_avg_sq"}


def test_adam_adds_eps_after_the_bias_correction():
    # g = 2, β = (0.5, 0.75), ε = 1: v̂ = 4, step = 0.1·2/(√4 + 1) = 0.2/3
    p = param([0.0])
    run(Adam([p], lr=0.1, betas=(0.5, 0.75), eps=1.0), p, [[2.0]])
    assert p.data[0] == pytest.approx(-0.2 / 3, rel=1e-14)


def test_amsgrad_divides_by_the_largest_second_moment_so_far():
    # β = (0.5, 0.75), ε = 0: g1 = 2: v = 1; g2 = 0: v = 0.75 but v* = max(1, 0.75) = 1
    # step 2: m = 0.5, m̂ = 0.5/0.75 = 2/3; √v*/√(1 − 0.5625) = 1/√0.4375; step = 0.1·(2/3)·√0.4375
    p = param([1.0])
    optimizer = Adam([p], lr=0.1, betas=(0.5, 0.75), eps=0, amsgrad=True)
    steps = run(optimizer, p, [[2.0], [0.0]])
    np.testing.assert_allclose(np.ravel(steps), [0.9, 0.9 - 0.1 * (2 / 3) * math.sqrt(0.4375)], rtol=1e-14)
    assert optimizer.state[p]["max_exp_avg_sq"][0] == 1.0 and optimizer.state[p]["exp_avg_sq"][0] == 0.75


def test_adam_folds_weight_decay_into_the_gradient_adamw_decays_the_parameter_directly():
    # p0 = 2, g = 2, lr = 0.1, wd = 0.5, ε = 0
    # Adam:  g = 2 + 0.5·2 = 3, the first step is lr·sign(g) = 0.1 → 1.9
    # AdamW: p = 2·(1 − 0.1·0.5) = 1.9, then the Adam step on g = 2: 0.1 → 1.8
    a, w = param([2.0]), param([2.0])
    run(Adam([a], lr=0.1, eps=0, weight_decay=0.5), a, [[2.0]])
    run(AdamW([w], lr=0.1, eps=0, weight_decay=0.5), w, [[2.0]])
    assert a.data[0] == pytest.approx(1.9, rel=1e-14) and w.data[0] == pytest.approx(1.8, rel=1e-14)


def test_adamw_decay_reaches_parameters_with_large_gradients_adam_decay_does_not():
    # Adam's decay is divided by √v̂ with the gradient: with |g| ≫ wd·|p| it is lost; AdamW's is not
    results = {}
    for cls in (Adam, AdamW):
        p = param([1.0])
        run(cls([p], lr=0.01, weight_decay=0.1), p, [[100.0], [-100.0]] * 5)
        results[cls] = p.data[0]
    assert results[AdamW] == pytest.approx(results[Adam] * (1 - 0.01 * 0.1) ** 10, rel=1e-3)
    assert results[AdamW] < results[Adam] - 5e-4


def test_adamw_default_weight_decay_is_pytorchs():
    assert AdamW([param([1.0])]).param_groups[0]["weight_decay"] == 1e-2
    assert Adam([param([1.0])]).param_groups[0]["weight_decay"] == 0


# ---------------------------------------------------------------------------------------------------------
# All new optimizers: in place, dtype, grad untouched, skipped parameters

NEW_OPTIMIZERS = [
    lambda ps: RMSprop(ps, lr=0.01, momentum=0.9, centered=True, weight_decay=0.1),
    lambda ps: RMSprop.tensorflow(ps, weight_decay=0.1, centered=True),
    lambda ps: Adam(ps, lr=0.01, weight_decay=0.1, amsgrad=True),
    lambda ps: AdamW(ps, lr=0.01, amsgrad=True),
    lambda ps: SGD(ps, lr=0.1, momentum=0.9, weight_decay=0.1, momentum_form="caffe"),
]
NEW_IDS = ["rmsprop", "rmsprop-tf", "adam", "adamw", "sgd-caffe"]


@pytest.mark.parametrize("make", NEW_OPTIMIZERS, ids=NEW_IDS)
def test_steps_update_in_place_keep_float32_and_never_touch_the_gradient(make):
    p, skipped = param([1.0, 2.0], dtype=np.float32), param([3.0], dtype=np.float32)
    array = p.data
    for group in (optimizer := make([p, skipped])).param_groups:
        for option in ("lr", "weight_decay", "eps", "alpha", "momentum"):
            if option in group:
                group[option] = np.float64(group[option])           # NumPy options must not promote
    set_grad(p, [0.5, -0.5])
    grad_array = p.grad.data
    optimizer.step()
    optimizer.step()
    assert p.data is array and p.dtype == np.float32
    assert p.grad.data is grad_array
    np.testing.assert_array_equal(grad_array, [0.5, -0.5])
    for value in optimizer.state[p].values():
        if hasattr(value, "dtype"):
            assert value.dtype == np.float32 and not np.shares_memory(value, grad_array)
    assert skipped.data[0] == 3.0 and skipped not in optimizer.state


@pytest.mark.parametrize("make", NEW_OPTIMIZERS, ids=NEW_IDS)
def test_steps_on_cupy_match_numpy(make, xp):
    rng = np.random.default_rng(3)
    start, grads = rng.standard_normal(5), rng.standard_normal((4, 5))
    p_numpy = param(start)
    p_xp = minicnn.Tensor(xp.asarray(start), requires_grad=True)
    ours, theirs = make([p_numpy]), make([p_xp])
    for g in grads:
        p_numpy.grad = minicnn.Tensor(g.copy())
        p_xp.grad = minicnn.Tensor(xp.asarray(g))
        ours.step()
        theirs.step()
    assert backend.get_array_module(p_xp.data) is xp
    np.testing.assert_allclose(backend.as_numpy(p_xp.data), p_numpy.data, rtol=1e-12)


# ---------------------------------------------------------------------------------------------------------
# State dicts: save, load into a fresh optimizer, continue identically

def make_model(rng, dtype=np.float32):
    return [minicnn.Tensor(rng.standard_normal(shape).astype(dtype), requires_grad=True)
            for shape in [(3, 4), (4,), (2, 3), (5,)]]


def grouped(params):
    w1, b1, w2, b2 = params
    return [{"params": [w1, w2]}, {"params": [b1, b2], "weight_decay": 0, "lr": 0.005}]


STATEFUL = {
    "rmsprop": lambda ps: RMSprop(grouped(ps), lr=0.01, momentum=0.9, centered=True, weight_decay=1e-3),
    "rmsprop-tf": lambda ps: RMSprop.tensorflow(grouped(ps), lr=0.01, weight_decay=1e-3),
    "adam": lambda ps: Adam(grouped(ps), lr=0.01, weight_decay=1e-3, amsgrad=True),
    "adamw": lambda ps: AdamW(grouped(ps), lr=0.01, betas=(0.8, 0.99)),
    "sgd-caffe": lambda ps: SGD(grouped(ps), lr=0.01, momentum=0.9, weight_decay=1e-3, momentum_form="caffe"),
}


def train(optimizer, params, grads):
    for step_grads in grads:
        optimizer.zero_grad()
        for p, g in zip(params, step_grads):
            p.grad = minicnn.Tensor(g.astype(p.dtype))
        optimizer.step()


@pytest.mark.parametrize("name", STATEFUL)
def test_resuming_from_a_saved_state_dict_gives_identical_steps(name, tmp_path):
    make = STATEFUL[name]
    rng = np.random.default_rng(4)
    params = make_model(rng)
    optimizer = make(params)
    grads = [[rng.standard_normal(p.shape) for p in params] for _ in range(6)]
    train(optimizer, params, grads[:3])
    minicnn.save({"params": [p.data for p in params], "optimizer": optimizer.state_dict()}, tmp_path / "c.npz")
    train(optimizer, params, grads[3:])

    checkpoint = minicnn.load(tmp_path / "c.npz")
    resumed_params = [minicnn.Tensor(a, requires_grad=True) for a in checkpoint["params"]]
    resumed = make(resumed_params)
    resumed.load_state_dict(checkpoint["optimizer"])
    train(resumed, resumed_params, grads[3:])
    for p, q in zip(params, resumed_params):
        np.testing.assert_array_equal(q.data, p.data)
    for p, q in zip(params, resumed_params):
        ours, theirs = optimizer.state[p], resumed.state[q]
        assert set(ours) == set(theirs)
        for key in ours:
            np.testing.assert_array_equal(theirs[key], ours[key])
    if name.startswith("adam"):
        assert resumed.state[resumed_params[0]]["step"] == 6 and type(resumed.state[resumed_params[0]]["step"]) is int


# ---------------------------------------------------------------------------------------------------------
# Validation

@pytest.mark.parametrize("cls, kwargs, error, message", [
    (RMSprop, dict(lr=-1.0), ValueError, "RMSprop: lr must be >= 0"),
    (RMSprop, dict(alpha=1.5), ValueError, r"RMSprop: alpha must be in \[0, 1\]"),
    (RMSprop, dict(alpha=-0.1), ValueError, "RMSprop: alpha must be >= 0"),
    (RMSprop, dict(eps=float("nan")), ValueError, "RMSprop: eps must be >= 0"),
    (RMSprop, dict(momentum=-0.9), ValueError, "RMSprop: momentum must be >= 0"),
    (RMSprop, dict(weight_decay=-1e-4), ValueError, "RMSprop: weight_decay must be >= 0"),
    (RMSprop, dict(lr="0.1"), TypeError, "RMSprop: lr must be a number"),
    (RMSprop, dict(eps_inside_sqrt="yes"), TypeError, "RMSprop: eps_inside_sqrt must be True or False"),
    (Adam, dict(lr=-1e-3), ValueError, "Adam: lr must be >= 0"),
    (Adam, dict(betas=(0.9, 1.0)), ValueError, r"Adam: betas\[1\] must be in \[0, 1\)"),
    (Adam, dict(betas=(-0.1, 0.999)), ValueError, r"Adam: betas\[0\] must be in \[0, 1\)"),
    (Adam, dict(betas=0.9), TypeError, "Adam: betas must be a pair of numbers"),
    (Adam, dict(eps=-1e-8), ValueError, "Adam: eps must be >= 0"),
    (Adam, dict(amsgrad=1), TypeError, "Adam: amsgrad must be True or False"),
    (AdamW, dict(weight_decay=-0.01), ValueError, "AdamW: weight_decay must be >= 0"),
    (AdamW, dict(betas=(0.9,)), TypeError, "AdamW: betas must be a pair"),
], ids=lambda v: v if isinstance(v, str) else None)
def test_invalid_options_raise_errors_naming_the_optimizer(cls, kwargs, error, message):
    with pytest.raises(error, match=message):
        cls([param([1.0])], **kwargs)


def test_invalid_options_in_a_group_or_a_loaded_state_dict_are_rejected():
    with pytest.raises(ValueError, match="Adam: lr must be >= 0"):
        Adam([{"params": [param([1.0])], "lr": -1.0}])
    optimizer = RMSprop([param([1.0])])
    state_dict = optimizer.state_dict()
    state_dict["param_groups"][0] = dict(state_dict["param_groups"][0], alpha=2.0)
    with pytest.raises(ValueError, match="RMSprop: alpha must be in"):
        optimizer.load_state_dict(state_dict)


def test_optim_package_exports_the_new_optimizers():
    assert optim.RMSprop is RMSprop and optim.Adam is Adam and optim.AdamW is AdamW
    assert issubclass(AdamW, Adam) and all(issubclass(c, optim.Optimizer) for c in (RMSprop, Adam))


# ---------------------------------------------------------------------------------------------------------
# PyTorch as an oracle

def assert_matches_torch(make_ours, make_theirs, dtype, rtol, steps=8, lr_change=(5, 0.003)):
    """Run both on the same gradients (one parameter skipped once, an lr change) and compare after every step."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    params = make_model(rng, dtype)
    torch_params = [torch.tensor(p.data.copy(), requires_grad=True) for p in params]
    ours, theirs = make_ours(grouped(params)), make_theirs(grouped(torch_params))
    grads = [[rng.standard_normal(p.shape) for p in params] for _ in range(steps)]
    grads[2][1] = None
    for step, step_grads in enumerate(grads):
        if step == lr_change[0]:
            ours.param_groups[0]["lr"] = theirs.param_groups[0]["lr"] = lr_change[1]
        ours.zero_grad()
        theirs.zero_grad()
        for p, q, g in zip(params, torch_params, step_grads):
            if g is not None:
                p.grad = minicnn.Tensor(g.astype(dtype))
                q.grad = torch.tensor(g.astype(dtype))
        ours.step()
        theirs.step()
        for p, q in zip(params, torch_params):
            np.testing.assert_allclose(p.data, q.detach().numpy(), rtol=rtol, atol=rtol * 1e-2, err_msg=f"step {step}")
    return ours, theirs


DTYPES = [(np.float64, 1e-10), (np.float32, 1e-4)]

RMSPROP_OPTIONS = [dict(alpha=a, eps=e, weight_decay=wd, momentum=m, centered=c)
                   for a, e, wd, m, c in itertools.product([0.99, 0.9], [1e-8, 1.0], [0.0, 1e-2], [0.0, 0.9],
                                                           [False, True])]


@pytest.mark.parametrize("dtype, rtol", DTYPES, ids=["float64", "float32"])
@pytest.mark.parametrize("options", RMSPROP_OPTIONS, ids=lambda o: "-".join(f"{k}={v}" for k, v in o.items()))
def test_rmsprop_matches_pytorch(options, dtype, rtol):
    torch = pytest.importorskip("torch")
    ours, theirs = assert_matches_torch(lambda ps: RMSprop(ps, lr=0.01, **options),
                                        lambda ps: torch.optim.RMSprop(ps, lr=0.01, **options), dtype, rtol)
    theirs_state = theirs.state_dict()["state"]
    for index, state in ours.state_dict()["state"].items():
        for key, value in state.items():
            np.testing.assert_allclose(value, theirs_state[index][key].numpy(), rtol=rtol, atol=rtol * 1e-2)


ADAM_OPTIONS = [dict(betas=b, eps=e, weight_decay=wd, amsgrad=ams)
                for b, e, wd, ams in itertools.product([(0.9, 0.999), (0.5, 0.9)], [1e-8, 1e-3], [0.0, 0.1],
                                                       [False, True])]


@pytest.mark.parametrize("dtype, rtol", DTYPES, ids=["float64", "float32"])
@pytest.mark.parametrize("options", ADAM_OPTIONS, ids=lambda o: "-".join(f"{k}={v}" for k, v in o.items()))
@pytest.mark.parametrize("name", ["Adam", "AdamW"])
def test_adam_and_adamw_match_pytorch(name, options, dtype, rtol):
    torch = pytest.importorskip("torch")
    ours_class, theirs_class = getattr(optim, name), getattr(torch.optim, name)
    ours, theirs = assert_matches_torch(lambda ps: ours_class(ps, lr=0.01, **options),
                                        lambda ps: theirs_class(ps, lr=0.01, **options), dtype, rtol)
    theirs_state = theirs.state_dict()["state"]
    for index, state in ours.state_dict()["state"].items():
        assert state["step"] == int(theirs_state[index]["step"])
        for key in ("exp_avg", "exp_avg_sq") + (("max_exp_avg_sq",) if options["amsgrad"] else ()):
            np.testing.assert_allclose(state[key], theirs_state[index][key].numpy(), rtol=rtol, atol=rtol * 1e-2)
