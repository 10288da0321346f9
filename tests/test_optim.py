"""Specification of minicnn.optim: the Optimizer base (parameter groups, zero_grad, state dicts) and SGD."""
import itertools

import numpy as np
import pytest

import minicnn
from minicnn import optim
from minicnn.optim import SGD, Optimizer


def param(values, dtype=np.float64):
    return minicnn.Tensor(np.array(values, dtype=dtype), requires_grad=True)


def set_grad(p, values):
    p.grad = minicnn.Tensor(np.array(values, dtype=p.dtype))


def run(optimizer, p, grads):
    """Take one step per gradient in ``grads``; return the parameter's values after each step."""
    values = []
    for g in grads:
        set_grad(p, g)
        optimizer.step()
        values.append(p.data.copy())
    return values


# ---------------------------------------------------------------------------------------------------------
# SGD's update rule, against values computed by hand (exact binary fractions, so equality is exact)

GRADS = [[1.0, 2.0], [0.5, -1.0], [2.0, 0.0]]


def test_plain_sgd_subtracts_lr_times_the_gradient():
    p = param([1.0, -2.0])
    np.testing.assert_array_equal(run(SGD([p], lr=0.5), p, [[0.5, 0.25]]), [[0.75, -2.125]])


def test_momentum_buffer_starts_as_the_gradient_then_accumulates():
    # buf1 = g1 = [1, 2]; buf2 = 0.5*buf1 + g2 = [1, 0]; buf3 = 0.5*buf2 + g3 = [2.5, 0]; p -= 0.5*buf
    p = param([0.0, 0.0])
    steps = run(SGD([p], lr=0.5, momentum=0.5), p, GRADS)
    np.testing.assert_array_equal(steps, [[-0.5, -1.0], [-1.0, -1.0], [-2.25, -1.0]])


def test_dampening_scales_new_gradients_but_not_the_first_one():
    # buf1 = g1 = [1, 2] (undamped); buf2 = 0.5*buf1 + 0.5*g2 = [0.75, 0.5]; buf3 = 0.5*buf2 + 0.5*g3 = [1.375, 0.25]
    p = param([0.0, 0.0])
    steps = run(SGD([p], lr=1.0, momentum=0.5, dampening=0.5), p, GRADS)
    np.testing.assert_array_equal(steps, [[-1.0, -2.0], [-1.75, -2.5], [-3.125, -2.75]])


def test_nesterov_steps_along_the_gradient_plus_momentum_times_the_buffer():
    # buf1 = [1, 2], step g1 + 0.5*buf1 = [1.5, 3]; buf2 = [1, 0], step g2 + 0.5*buf2 = [1, -1]
    p = param([0.0, 0.0])
    steps = run(SGD([p], lr=1.0, momentum=0.5, nesterov=True), p, GRADS[:2])
    np.testing.assert_array_equal(steps, [[-1.5, -3.0], [-2.5, -2.0]])


def test_weight_decay_adds_decay_times_the_current_parameter_to_the_gradient():
    # g = [1, 1] + 0.5*p: p0 = [2, -4] -> g = [2, -1] -> p1 = [1, -3.5] -> g = [1.5, -0.75] -> p2 = [0.25, -3.125]
    p = param([2.0, -4.0])
    steps = run(SGD([p], lr=0.5, weight_decay=0.5), p, [[1.0, 1.0]] * 2)
    np.testing.assert_array_equal(steps, [[1.0, -3.5], [0.25, -3.125]])


def test_weight_decay_is_folded_in_before_the_momentum_buffer():
    # g1 = [2, -1] = buf1 -> p1 = [1, -3.5]; g2 = [1.5, -0.75], buf2 = 0.5*buf1 + g2 = [2.5, -1.25] -> p2
    p = param([2.0, -4.0])
    optimizer = SGD([p], lr=0.5, momentum=0.5, weight_decay=0.5)
    steps = run(optimizer, p, [[1.0, 1.0]] * 2)
    np.testing.assert_array_equal(steps, [[1.0, -3.5], [-0.25, -2.875]])
    np.testing.assert_array_equal(optimizer.state[p]["momentum_buffer"], [2.5, -1.25])


def test_parameter_groups_have_their_own_weight_decay_and_lr_no_bias_decay():
    weight, bias, other = param([2.0]), param([2.0]), param([2.0])
    optimizer = SGD([{"params": [weight]},
                     {"params": [bias], "weight_decay": 0},
                     {"params": [other], "lr": 0.25}], lr=0.5, weight_decay=0.5)
    for p in (weight, bias, other):
        set_grad(p, [1.0])
    optimizer.step()
    assert weight.data[0] == 2 - 0.5 * (1 + 0.5 * 2)           # decayed
    assert bias.data[0] == 2 - 0.5 * 1                           # not decayed
    assert other.data[0] == 2 - 0.25 * (1 + 0.5 * 2)             # its own lr, the default decay
    assert [g["weight_decay"] for g in optimizer.param_groups] == [0.5, 0, 0.5]


def test_a_changed_group_lr_is_used_by_the_next_step():
    p = param([0.0])
    optimizer = SGD([p], lr=1.0)
    run(optimizer, p, [[1.0]])
    optimizer.param_groups[0]["lr"] = 0.25                       # what an lr scheduler does
    assert run(optimizer, p, [[1.0]]) == [np.array([-1.25])]


def test_parameters_without_a_gradient_are_skipped_and_get_no_state():
    a, b = param([1.0]), param([1.0])
    optimizer = SGD([a, b], lr=0.5, momentum=0.9, weight_decay=0.1)
    set_grad(a, [1.0])
    optimizer.step()
    assert b.data[0] == 1.0 and b not in optimizer.state
    assert list(optimizer.state_dict()["state"]) == [0]


def test_step_updates_the_parameter_array_in_place_and_never_touches_the_gradient():
    p = param([1.0, 2.0], dtype=np.float32)
    array = p.data
    optimizer = SGD([p], lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.1)
    set_grad(p, [0.5, 0.5])
    grad_array = p.grad.data
    optimizer.step()
    optimizer.step()
    assert p.data is array                                       # views and references stay valid
    assert p.grad.data is grad_array
    np.testing.assert_array_equal(grad_array, [0.5, 0.5])
    assert not np.shares_memory(optimizer.state[p]["momentum_buffer"], grad_array)


def test_step_keeps_float32_parameters_and_buffers_float32_even_with_numpy_float64_options():
    p = param([1.0, 2.0], dtype=np.float32)
    optimizer = SGD([p], lr=np.float64(0.1), momentum=np.float64(0.9), weight_decay=np.float64(1e-4))
    run(optimizer, p, [[1.0, 1.0]] * 2)
    assert p.dtype == np.float32 and optimizer.state[p]["momentum_buffer"].dtype == np.float32


def test_step_records_no_graph_and_runs_a_closure_with_gradients_enabled():
    p = param([1.0, -3.0])
    optimizer = SGD([p], lr=0.25)

    def closure():
        optimizer.zero_grad()
        loss = (p * p).sum()
        loss.backward()
        return loss

    with minicnn.no_grad():
        loss = optimizer.step(closure)
    assert loss.item() == 10.0
    np.testing.assert_array_equal(p.data, [0.5, -1.5])           # p - 0.25 * 2p
    assert p.is_leaf and p.requires_grad


# ---------------------------------------------------------------------------------------------------------
# zero_grad

def test_zero_grad_sets_gradients_to_none_by_default():
    a, b = param([1.0]), param([2.0])
    optimizer = SGD([a, b], lr=0.1)
    set_grad(a, [3.0])
    optimizer.zero_grad()
    assert a.grad is None and b.grad is None


def test_zero_grad_set_to_none_false_gives_zeros_without_touching_shared_gradient_arrays():
    a, b = param([1.0, 1.0]), param([1.0, 1.0])
    (a + b).sum().backward()                                     # backward may hand both leaves one array
    b_grad = b.grad.data.copy()
    SGD([a], lr=0.1).zero_grad(set_to_none=False)
    np.testing.assert_array_equal(a.grad.data, [0.0, 0.0])
    assert a.grad.dtype == a.dtype
    np.testing.assert_array_equal(b.grad.data, b_grad)           # b is not in the optimizer


# ---------------------------------------------------------------------------------------------------------
# Validation

@pytest.mark.parametrize("kwargs, message", [
    (dict(lr=-0.1), "lr must be >= 0"),
    (dict(lr=float("nan")), "lr must be >= 0"),
    (dict(lr=0.1, momentum=-0.9), "momentum must be >= 0"),
    (dict(lr=0.1, weight_decay=-1e-4), "weight_decay must be >= 0"),
    (dict(lr=0.1, nesterov=True), "nesterov=True needs momentum > 0 and dampening = 0"),
    (dict(lr=0.1, momentum=0.9, dampening=0.1, nesterov=True), "nesterov=True needs momentum > 0"),
], ids=["negative-lr", "nan-lr", "negative-momentum", "negative-decay", "nesterov-no-momentum",
        "nesterov-dampening"])
def test_invalid_sgd_options_raise_value_error_naming_sgd(kwargs, message):
    with pytest.raises(ValueError, match=f"SGD: {message}"):
        SGD([param([1.0])], **kwargs)


def test_invalid_options_in_a_parameter_group_are_rejected_too():
    with pytest.raises(ValueError, match="SGD: lr must be >= 0, got -1"):
        SGD([{"params": [param([1.0])], "lr": -1}], lr=0.1)
    optimizer = SGD([param([1.0])], lr=0.1)
    with pytest.raises(ValueError, match="SGD: nesterov"):
        optimizer.add_param_group({"params": [param([1.0])], "nesterov": True})


def test_non_number_options_raise_type_error():
    with pytest.raises(TypeError, match="SGD: lr must be a number, got '0.1'"):
        SGD([param([1.0])], lr="0.1")


def test_lr_is_required_in_every_group_when_not_given_to_the_constructor():
    p, q = param([1.0]), param([1.0])
    optimizer = SGD([{"params": [p], "lr": 0.5}], momentum=0.9)
    assert optimizer.param_groups[0]["lr"] == 0.5
    with pytest.raises(ValueError, match="SGD: parameter group 0 does not give 'lr'"):
        SGD([q])


@pytest.mark.parametrize("params, error, message", [
    (lambda a, b: a, TypeError, "SGD: params should be an iterable of Tensors or of dicts.*got a single Tensor"),
    (lambda a, b: [], ValueError, "SGD: got an empty parameter list"),
    (lambda a, b: {a, b}, TypeError, "SGD: parameters must be given in an ordered collection, got a set"),
    (lambda a, b: [a, np.ones(2)], TypeError, "SGD: can only optimize Tensors, got ndarray at position 1"),
    (lambda a, b: [a, a * 2], ValueError, "SGD: can only optimize leaf Tensors"),
    (lambda a, b: [a, b, a], ValueError, "SGD: some parameters appear more than once"),
    (lambda a, b: [{"params": [a]}, {"params": [b, a]}], ValueError, "SGD: some parameters appear more than once"),
    (lambda a, b: [{"params": [a]}, "b"], TypeError, "SGD.add_param_group: expected a dict"),
    (lambda a, b: [{"weights": [a]}], ValueError, "SGD.add_param_group: the group has no 'params' entry"),
], ids=["single-tensor", "empty", "set", "not-a-tensor", "non-leaf", "duplicate", "duplicate-across-groups",
        "group-not-a-dict", "group-without-params"])
def test_bad_parameter_lists_raise_clear_errors(params, error, message):
    a, b = param([1.0, 2.0]), param([3.0])
    with pytest.raises(error, match=message):
        SGD(params(a, b), lr=0.1)


def test_add_param_group_fills_in_defaults_and_rejects_parameters_already_present():
    a, b = param([1.0]), param([1.0])
    optimizer = SGD([a], lr=0.5, momentum=0.5)
    optimizer.add_param_group({"params": b, "lr": 0.25})
    assert optimizer.param_groups[1] == {"params": [b], "lr": 0.25, "momentum": 0.5, "dampening": 0,
                                         "nesterov": False, "weight_decay": 0}
    set_grad(b, [1.0])
    optimizer.step()
    assert b.data[0] == 0.75
    with pytest.raises(ValueError, match="more than once"):
        optimizer.add_param_group({"params": [a]})


def test_a_subclass_only_writes_update():
    class SignDescent(Optimizer):
        def __init__(self, params, lr):
            super().__init__(params, dict(lr=lr))

        def update(self, param, grad, state, group):
            param -= group["lr"] * np.sign(grad)

    p = param([1.0, 1.0])
    set_grad(p, [3.0, -0.5])
    SignDescent([p], lr=0.25).step()
    np.testing.assert_array_equal(p.data, [0.75, 1.25])
    with pytest.raises(NotImplementedError, match="Optimizer.update"):
        Optimizer([p], {}).step()


def test_repr_lists_each_group_and_its_options():
    text = repr(SGD([{"params": [param([1.0])]}, {"params": [param([1.0])], "weight_decay": 0}],
                    lr=0.1, weight_decay=1e-4))
    assert text.startswith("SGD (\nParameter Group 0\n") and "Parameter Group 1" in text
    assert "    weight_decay: 0.0001" in text and "    weight_decay: 0\n" in text


# ---------------------------------------------------------------------------------------------------------
# State dicts

def make_model(rng, dtype=np.float32):
    return [minicnn.Tensor(rng.standard_normal(shape).astype(dtype), requires_grad=True)
            for shape in [(3, 4), (4,), (2, 3), (5,)]]


def make_sgd(params, lr=0.1):
    w1, b1, w2, b2 = params
    return SGD([{"params": [w1, w2]}, {"params": [b1, b2], "weight_decay": 0, "lr": lr / 2}],
               lr=lr, momentum=0.9, nesterov=True, weight_decay=1e-3)


def train(optimizer, params, grads):
    for step_grads in grads:
        optimizer.zero_grad()
        for p, g in zip(params, step_grads):
            if g is not None:
                p.grad = minicnn.Tensor(g.astype(p.dtype))
        optimizer.step()


def gradients(rng, params, steps):
    return [[rng.standard_normal(p.shape) for p in params] for _ in range(steps)]


def test_state_dict_refers_to_parameters_by_index_like_pytorch():
    rng = np.random.default_rng(0)
    params = make_model(rng)
    optimizer = make_sgd(params)
    grads = gradients(rng, params, 1)
    grads[0][1] = None                                           # b1 gets no gradient: no state
    train(optimizer, params, grads)
    state_dict = optimizer.state_dict()
    assert set(state_dict) == {"state", "param_groups"}
    assert list(state_dict["state"]) == [0, 1, 3]                # w1, w2, b2 (groups in order: w1 w2 | b1 b2)
    assert set(state_dict["state"][0]) == {"momentum_buffer"}
    assert [g["params"] for g in state_dict["param_groups"]] == [[0, 1], [2, 3]]
    assert state_dict["param_groups"][1] == {"params": [2, 3], "lr": 0.05, "momentum": 0.9, "dampening": 0,
                                             "nesterov": True, "weight_decay": 0}
    assert optimizer.param_groups[0]["params"][0] is params[0]   # the optimizer's own groups are untouched


def test_resuming_from_a_saved_state_dict_gives_identical_steps(tmp_path):
    rng = np.random.default_rng(1)
    params = make_model(rng)
    optimizer = make_sgd(params)
    grads = gradients(rng, params, 6)
    train(optimizer, params, grads[:3])
    minicnn.save({"params": [p.data for p in params], "optimizer": optimizer.state_dict()}, tmp_path / "c.npz")
    train(optimizer, params, grads[3:])

    checkpoint = minicnn.load(tmp_path / "c.npz")
    resumed_params = [minicnn.Tensor(a, requires_grad=True) for a in checkpoint["params"]]
    resumed = make_sgd(resumed_params, lr=7.0)                   # options come back from the state dict
    resumed.load_state_dict(checkpoint["optimizer"])
    assert [g["lr"] for g in resumed.param_groups] == [0.1, 0.05]
    train(resumed, resumed_params, grads[3:])

    for p, q in zip(params, resumed_params):
        np.testing.assert_array_equal(q.data, p.data)
        assert q.dtype == p.dtype
        np.testing.assert_array_equal(resumed.state[q]["momentum_buffer"], optimizer.state[p]["momentum_buffer"])
    assert all(a is b for a, b in zip(resumed.param_groups[1]["params"], resumed_params[1::2]))


def test_load_state_dict_copies_the_state_and_casts_it_to_each_parameters_dtype():
    rng = np.random.default_rng(2)
    source_params = make_model(rng, dtype=np.float64)
    source = make_sgd(source_params)
    train(source, source_params, gradients(rng, source_params, 2))
    state_dict = source.state_dict()

    params = make_model(rng, dtype=np.float32)
    optimizer = make_sgd(params)
    optimizer.load_state_dict(state_dict)
    for p, q in zip(source_params, params):
        buffer = optimizer.state[q]["momentum_buffer"]
        assert buffer.dtype == np.float32 and type(buffer) is np.ndarray
        np.testing.assert_allclose(buffer, source.state[p]["momentum_buffer"], rtol=1e-6)
        assert not np.shares_memory(buffer, source.state[p]["momentum_buffer"])
    before = {id(q): optimizer.state[q]["momentum_buffer"].copy() for q in params}
    train(source, source_params, gradients(rng, source_params, 1))  # the source trains on: no effect
    for q in params:
        np.testing.assert_array_equal(optimizer.state[q]["momentum_buffer"], before[id(q)])
    train(optimizer, params, gradients(rng, params, 1))
    assert all(q.dtype == np.float32 and optimizer.state[q]["momentum_buffer"].dtype == np.float32 for q in params)


@pytest.mark.parametrize("change, message", [
    (lambda sd: sd["param_groups"].pop(), "the state dict has 1 parameter groups, this optimizer has 2"),
    (lambda sd: sd["param_groups"][1]["params"].pop(), "parameter group 1 has 1 parameters in the state dict and 2"),
    (lambda sd: sd["state"].update({9: {}}), "state for parameter 9"),
    (lambda sd: sd["state"][0].update(momentum_buffer=np.zeros((4, 3))), r"state\[0\]\['momentum_buffer'\] has shape \(4, 3\)"),
    (lambda sd: sd.pop("state"), "expected a dict with 'state' and 'param_groups'"),
    (lambda sd: sd["param_groups"][0].update(lr=-1.0), "SGD: lr must be >= 0"),
], ids=["groups", "group-size", "unknown-index", "shape", "missing-key", "bad-option"])
def test_load_state_dict_rejects_a_state_dict_that_does_not_fit(change, message):
    rng = np.random.default_rng(3)
    params = make_model(rng)
    optimizer = make_sgd(params)
    train(optimizer, params, gradients(rng, params, 1))
    state_dict = optimizer.state_dict()
    state_dict = {"state": {k: dict(v) for k, v in state_dict["state"].items()},
                  "param_groups": [dict(g, params=list(g["params"])) for g in state_dict["param_groups"]]}
    change(state_dict)
    fresh = make_sgd(make_model(rng))
    with pytest.raises(ValueError, match=message):
        fresh.load_state_dict(state_dict)
    assert fresh.state == {}                                     # nothing half-loaded


def test_optim_package_exports_the_base_class_and_sgd():
    assert optim.SGD is SGD and optim.Optimizer is Optimizer and issubclass(SGD, Optimizer)


# ---------------------------------------------------------------------------------------------------------
# PyTorch as an oracle

SGD_OPTIONS = [dict(momentum=m, dampening=d, nesterov=n, weight_decay=wd)
               for m, d, n, wd in itertools.product([0.0, 0.9], [0.0, 0.3], [False, True], [0.0, 1e-2])
               if not (n and (m == 0 or d != 0))]


@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-12), (np.float32, 1e-5)])
@pytest.mark.parametrize("options", SGD_OPTIONS, ids=lambda o: "-".join(f"{k}={v}" for k, v in o.items()))
def test_sgd_matches_pytorch_over_several_steps_with_groups_and_an_lr_change(options, dtype, rtol):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(4)
    params = make_model(rng, dtype)
    torch_params = [torch.tensor(p.data.copy(), requires_grad=True) for p in params]

    def groups(ps):
        return [{"params": [ps[0], ps[2]]}, {"params": [ps[1], ps[3]], "weight_decay": 0.0, "lr": 0.03}]

    ours = SGD(groups(params), lr=0.1, **options)
    theirs = torch.optim.SGD(groups(torch_params), lr=0.1, **options)
    grads = gradients(rng, params, 6)
    grads[2][1] = None                                           # skipped by both
    for step, step_grads in enumerate(grads):
        if step == 4:
            ours.param_groups[0]["lr"] = theirs.param_groups[0]["lr"] = 0.02
        train(ours, params, [step_grads])
        theirs.zero_grad()
        for p, g in zip(torch_params, step_grads):
            if g is not None:
                p.grad = torch.tensor(g.astype(dtype))
        theirs.step()
        for p, q in zip(params, torch_params):
            np.testing.assert_allclose(p.data, q.detach().numpy(), rtol=rtol, atol=rtol * 1e-2,
                                       err_msg=f"step {step}")
    ours_state, theirs_state = ours.state_dict(), theirs.state_dict()
    assert list(ours_state["state"]) == sorted(theirs_state["state"])
    for index, state in ours_state["state"].items():
        np.testing.assert_allclose(state["momentum_buffer"],
                                   theirs_state["state"][index]["momentum_buffer"].numpy(), rtol=rtol, atol=rtol * 1e-2)
    assert [g["params"] for g in ours_state["param_groups"]] == [g["params"] for g in theirs_state["param_groups"]]
