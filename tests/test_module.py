"""nn.Module and Parameter, the containers, nn.Linear, and the initialisation schemes."""
import math
from collections import OrderedDict

import numpy as np
import pytest

import minicnn
from minicnn import Tensor, nn
from minicnn.backend import as_numpy
from minicnn.gradcheck import gradcheck
from minicnn.nn import init
from minicnn.random import manual_seed


class Block(nn.Module):
    """Parameters, a buffer, a non-persistent buffer and a submodule, in a deliberately non-alphabetic order."""

    def __init__(self):
        super().__init__()
        self.w2 = nn.Parameter(np.ones((2, 3), np.float32))
        self.inner = nn.Linear(3, 2)
        self.w1 = nn.Parameter(np.zeros(2, np.float32))
        self.register_buffer("running_mean", np.zeros(2, np.float32))
        self.register_buffer("steps", np.zeros((), np.int64))
        self.register_buffer("scratch", np.zeros(2, np.float32), persistent=False)

    def forward(self, x):
        return self.inner(x) + self.w1 + x @ self.w2.T


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Linear(4, 3), nn.Identity())
        self.block = Block()
        self.head = nn.Linear(2, 2)

    def forward(self, x):
        return self.head(self.block(self.features(x)))


# ---------------------------------------------------------------- registration and traversal ---

def test_parameters_are_registered_in_definition_order_own_before_children():
    block = Block()
    assert [name for name, _ in block.named_parameters()] == ["w2", "w1", "inner.weight", "inner.bias"]
    assert [id(p) for p in block.parameters()] == [id(p) for _, p in block.named_parameters()]


def test_named_parameters_have_qualified_names():
    names = [name for name, _ in Net().named_parameters()]
    assert names == ["features.0.weight", "features.0.bias", "block.w2", "block.w1", "block.inner.weight",
                     "block.inner.bias", "head.weight", "head.bias"]


def test_parameters_require_grad_and_are_tensors():
    p = nn.Parameter(np.zeros(3, np.float32))
    assert isinstance(p, Tensor) and p.requires_grad and p.is_leaf
    assert "Parameter containing" in repr(p)
    assert nn.Parameter([1.0, 2.0]).dtype == np.float32


def test_a_shared_parameter_or_module_is_listed_once():
    class Tied(nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = nn.Linear(3, 3)
            self.decoder = nn.Linear(3, 3)
            self.decoder.weight = self.encoder.weight        # shared Parameter
            self.again = self.encoder                        # shared Module

    tied = Tied()
    names = [name for name, _ in tied.named_parameters()]
    assert names == ["encoder.weight", "encoder.bias", "decoder.bias"]
    assert len(list(tied.modules())) == 3


def test_modules_lists_self_and_descendants_and_children_only_direct_ones():
    net = Net()
    assert list(net.children()) == [net.features, net.block, net.head]
    assert [name for name, _ in net.named_children()] == ["features", "block", "head"]
    names = [name for name, _ in net.named_modules()]
    assert names == ["", "features", "features.0", "features.1", "block", "block.inner", "head"]
    assert next(iter(net.modules())) is net


def test_train_and_eval_propagate_to_every_submodule():
    net = Net()
    assert all(m.training for m in net.modules())
    assert net.eval() is net
    assert not any(m.training for m in net.modules())
    net.train()
    assert all(m.training for m in net.modules())
    net.block.train(False)
    assert net.training and not net.block.training and not net.block.inner.training


def test_apply_visits_every_module():
    seen = []
    Net().apply(lambda m: seen.append(type(m).__name__))
    assert sorted(seen) == sorted(["Net", "Sequential", "Linear", "Identity", "Block", "Linear", "Linear"])
    assert seen[-1] == "Net"


def test_assigning_before_super_init_is_a_clear_error():
    class Forgetful(nn.Module):
        def __init__(self):
            self.w = nn.Parameter(np.zeros(1))

    with pytest.raises(AttributeError, match=r"call super\(\).__init__\(\) before assigning 'w'"):
        Forgetful()


def test_a_parameter_slot_accepts_only_a_parameter_or_none():
    lin = nn.Linear(2, 2)
    with pytest.raises(TypeError, match="weight is a Parameter"):
        lin.weight = np.zeros((2, 2))
    lin.bias = None
    assert [name for name, _ in lin.named_parameters()] == ["weight"]


def test_buffers_are_attributes_and_can_be_reassigned():
    block = Block()
    assert block.running_mean is block._buffers["running_mean"]
    block.running_mean = np.ones(2, np.float32)
    np.testing.assert_array_equal(block.state_dict()["running_mean"], [1.0, 1.0])
    assert [name for name, _ in block.named_buffers()] == ["running_mean", "steps", "scratch"]


# ---------------------------------------------------------------- gradients ---------------------

def test_zero_grad_clears_every_parameter_gradient():
    net = Net()
    x = Tensor(np.ones((5, 4), np.float32))
    net(x).sum().backward()
    assert all(p.grad is not None for p in net.parameters())
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())


def test_zero_grad_without_set_to_none_zeroes_in_place():
    net = Net()
    net(Tensor(np.ones((5, 4), np.float32))).sum().backward()
    grads = [p.grad for p in net.parameters()]
    net.zero_grad(set_to_none=False)
    assert all(p.grad is g for p, g in zip(net.parameters(), grads))
    assert all(not as_numpy(p.grad.data).any() for p in net.parameters())


def test_gradients_accumulate_across_backward_calls_until_zero_grad():
    lin = nn.Linear(3, 2)
    x = Tensor(np.ones((4, 3), np.float32))
    lin(x).sum().backward()
    once = lin.bias.grad.numpy().copy()
    lin(x).sum().backward()
    np.testing.assert_allclose(lin.bias.grad.numpy(), 2 * once)
    lin.zero_grad()
    lin(x).sum().backward()
    np.testing.assert_allclose(lin.bias.grad.numpy(), once)


# ---------------------------------------------------------------- state_dict -------------------

def test_state_dict_has_parameters_and_persistent_buffers_only():
    keys = list(Net().state_dict())
    assert keys == ["features.0.weight", "features.0.bias", "block.w2", "block.w1", "block.running_mean",
                    "block.steps", "block.inner.weight", "block.inner.bias", "head.weight", "head.bias"]
    assert "block.scratch" not in keys


def copied_state(module):
    return OrderedDict((k, np.array(v) + 1) for k, v in module.state_dict().items())


def test_load_state_dict_copies_in_place_into_the_same_parameter_objects():
    net, source = Net(), Net()
    params = {name: (p, p.data) for name, p in net.named_parameters()}
    state = copied_state(source)
    assert net.load_state_dict(state) == ([], [])
    for name, p in net.named_parameters():
        assert p is params[name][0] and p.data is params[name][1]
        np.testing.assert_array_equal(p.data, state[name].astype(np.float32))
    np.testing.assert_array_equal(net.block.running_mean, state["block.running_mean"])


def test_load_state_dict_keeps_each_destination_dtype():
    net = Net()
    state = OrderedDict((k, np.asarray(v, dtype=np.float64)) for k, v in Net().state_dict().items())
    net.load_state_dict(state)
    assert all(p.dtype == np.float32 for p in net.parameters())
    assert net.block.steps.dtype == np.int64


def test_load_state_dict_accepts_tensor_values():
    source, net = nn.Linear(3, 2), nn.Linear(3, 2)
    net.load_state_dict({"weight": source.weight, "bias": source.bias})
    np.testing.assert_array_equal(net.weight.data, source.weight.data)


def test_strict_load_names_missing_keys():
    state = copied_state(Net())
    del state["head.bias"]
    with pytest.raises(ValueError, match=r"missing keys: \['head.bias'\]"):
        Net().load_state_dict(state)


def test_strict_load_names_unexpected_keys():
    state = copied_state(Net())
    state["head.extra"] = np.zeros(2)
    with pytest.raises(ValueError, match=r"unexpected keys: \['head.extra'\]"):
        Net().load_state_dict(state)


@pytest.mark.parametrize("strict", [True, False])
def test_a_mis_shaped_key_fails_naming_key_and_both_shapes(strict):
    state = copied_state(Net())
    state["head.weight"] = np.zeros((3, 2))
    net = Net()
    before = net.head.bias.data.copy()
    with pytest.raises(ValueError, match=r"head.weight: checkpoint shape \(3, 2\) != model shape \(2, 2\)"):
        net.load_state_dict(state, strict=strict)
    np.testing.assert_array_equal(net.head.bias.data, before)          # nothing was half-loaded


def test_non_strict_load_returns_missing_and_unexpected_keys_and_loads_the_rest():
    state = copied_state(Net())
    del state["block.w1"]
    state["surplus"] = np.zeros(1)
    net = Net()
    missing, unexpected = net.load_state_dict(state, strict=False)
    assert missing == ["block.w1"] and unexpected == ["surplus"]
    np.testing.assert_array_equal(net.head.bias.data, state["head.bias"].astype(np.float32))


# ---------------------------------------------------------------- dtypes -----------------------

def test_double_casts_floating_parameters_and_buffers_in_place():
    net = Net()
    params = list(net.parameters())
    assert net.double() is net
    assert [id(p) for p in net.parameters()] == [id(p) for p in params]
    assert all(p.dtype == np.float64 for p in net.parameters())
    assert net.block.running_mean.dtype == np.float64
    assert net.block.steps.dtype == np.int64                  # integer buffers are not cast
    y = net(Tensor(np.ones((2, 4))))
    assert y.dtype == np.float64
    net.float()
    assert all(p.dtype == np.float32 for p in net.parameters())


def test_modules_built_under_default_dtype_float64_are_float64():
    with minicnn.default_dtype(np.float64):
        lin = nn.Linear(3, 2)
    assert lin.weight.dtype == np.float64 and lin.bias.dtype == np.float64


def test_a_small_network_passes_gradcheck_in_float64():
    manual_seed(0)
    net = Net().double()
    x = Tensor(np.random.default_rng(0).standard_normal((3, 4)), requires_grad=True)
    result = gradcheck(net, [x], params=net.named_parameters())
    assert result.checked[0] == "input 0" and len(result.checked) == 9
    gradcheck(net, [x], params=net.named_parameters(), mode="directional")


# ---------------------------------------------------------------- containers -------------------

def test_sequential_applies_in_order_and_supports_indexing_slicing_and_len():
    manual_seed(0)
    a, b, c = nn.Linear(3, 4), nn.Identity(), nn.Linear(4, 2)
    seq = nn.Sequential(a, b, c)
    assert len(seq) == 3 and seq[0] is a and seq[-1] is c and list(seq) == [a, b, c]
    head = seq[1:]
    assert isinstance(head, nn.Sequential) and len(head) == 2 and head[0] is b and head[1] is c
    assert [name for name, _ in head.named_parameters()] == ["2.weight", "2.bias"]
    x = Tensor(np.ones((5, 3), np.float32))
    np.testing.assert_array_equal(seq(x).data, c(a(x)).data)
    seq.append(nn.Identity())
    assert len(seq) == 4


def test_sequential_from_an_ordered_dict_keeps_the_names():
    seq = nn.Sequential(OrderedDict(fc=nn.Linear(2, 3), out=nn.Linear(3, 1)))
    assert [name for name, _ in seq.named_parameters()] == ["fc.weight", "fc.bias", "out.weight", "out.bias"]
    assert seq.fc is seq[0]


def _conv_bn_relu_steps(seq, x, steps=2):
    """Two training steps (forward, backward, the gradients) of seq on x: outputs and every gradient."""
    results = []
    for _ in range(steps):
        seq.zero_grad()
        xt = Tensor(x, requires_grad=True)
        y = seq(xt)
        (y * Tensor(np.linspace(-1, 1, y.size, dtype=y.dtype).reshape(y.shape))).sum().backward()
        results += [y.data, xt.grad.data] + [p.grad.data for p in seq.parameters()]
    return results + [b.copy() for b in seq.buffers()]


@pytest.mark.parametrize("shape, bn", [((4, 3, 5, 5), nn.BatchNorm2d), ((6, 3), nn.BatchNorm1d)])
def test_sequential_fuses_batch_norm_then_relu_with_the_same_numbers(shape, bn, monkeypatch):
    from minicnn.functional.norm import BatchNormReLU
    manual_seed(0)
    first = nn.Conv2d(2, 3, 3, padding=1) if len(shape) == 4 else nn.Linear(5, 3)
    seq = nn.Sequential(first, bn(3), nn.ReLU())
    x = np.random.default_rng(0).standard_normal((shape[0], 2, 5, 5) if len(shape) == 4 else (shape[0], 5),
                                                 dtype=np.float32)
    assert isinstance(seq(Tensor(x, requires_grad=True)).creator, BatchNormReLU)      # fused
    state = {k: v.copy() for k, v in seq.state_dict().items()}
    fused = _conv_bn_relu_steps(seq, x)
    seq.load_state_dict(state)
    monkeypatch.setattr(nn.layers, "_fuses_with_relu", lambda *modules: False)
    assert not isinstance(seq(Tensor(x, requires_grad=True)).creator, BatchNormReLU)
    seq.load_state_dict(state)
    unfused = _conv_bn_relu_steps(seq, x)
    assert len(fused) == len(unfused)
    for a, b in zip(fused, unfused):
        np.testing.assert_array_equal(a, b)                     # bit for bit, running statistics too
    seq.eval()
    np.testing.assert_array_equal(seq(Tensor(x)).data, seq[2](seq[1](seq[0](Tensor(x)))).data)


def test_sequential_does_not_fuse_a_replaced_or_overridden_forward():
    from minicnn.functional.norm import BatchNormReLU

    class LoggingReLU(nn.ReLU):
        pass

    class ShiftedBatchNorm(nn.BatchNorm2d):
        def forward(self, x):
            return super().forward(x) + 1

    x = Tensor(np.random.default_rng(0).standard_normal((2, 3, 4, 4), dtype=np.float32))
    for seq in (nn.Sequential(nn.BatchNorm2d(3), LoggingReLU()), nn.Sequential(ShiftedBatchNorm(3), nn.ReLU())):
        assert not isinstance(seq(x).creator, BatchNormReLU)
    seq = nn.Sequential(nn.BatchNorm2d(3), nn.ReLU())
    seq[1].forward = lambda t: t * 2                          # as models.summary records a layer
    np.testing.assert_array_equal(seq(x).data, seq[0](x).data * 2)
    assert nn.Sequential(nn.BatchNorm2d(3), nn.ReLU(), nn.ReLU())(x).data.min() >= 0


def test_module_list_registers_its_modules():
    layers = nn.ModuleList([nn.Linear(2, 2), nn.Linear(2, 3)])
    layers.append(nn.Linear(3, 1)).extend([nn.Identity()])
    assert len(layers) == 4 and isinstance(layers[-1], nn.Identity)
    assert [name for name, _ in layers.named_parameters()] == ["0.weight", "0.bias", "1.weight", "1.bias",
                                                               "2.weight", "2.bias"]
    assert isinstance(layers[1:3], nn.ModuleList) and len(layers[1:3]) == 2
    assert list(layers)[0] is layers[0]


def test_module_dict_registers_its_modules_in_insertion_order():
    heads = nn.ModuleDict({"b": nn.Linear(2, 1), "a": nn.Linear(2, 3)})
    heads["c"] = nn.Identity()
    assert list(heads) == ["b", "a", "c"] and list(heads.keys()) == ["b", "a", "c"]
    assert len(heads) == 3 and "a" in heads and isinstance(heads["c"], nn.Identity)
    assert [name for name, _ in heads.named_parameters()] == ["b.weight", "b.bias", "a.weight", "a.bias"]
    assert [m for _, m in heads.items()] == list(heads.values())


def test_repr_shows_the_module_tree():
    manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 3), nn.Sequential(nn.Flatten(), nn.Identity()))
    assert repr(net) == (
        "Sequential(\n"
        "  (0): Linear(in_features=4, out_features=3, bias=True)\n"
        "  (1): Sequential(\n"
        "    (0): Flatten(start_dim=1, end_dim=-1)\n"
        "    (1): Identity()\n"
        "  )\n"
        ")")


# ---------------------------------------------------------------- layers -----------------------

def test_linear_computes_x_W_transposed_plus_b_for_any_leading_dims():
    lin = nn.Linear(4, 3)
    x = np.random.default_rng(0).standard_normal((2, 5, 4)).astype(np.float32)
    y = lin(Tensor(x))
    assert y.shape == (2, 5, 3) and y.dtype == np.float32
    np.testing.assert_allclose(y.data, x @ lin.weight.data.T + lin.bias.data, rtol=1e-5, atol=1e-6)
    assert nn.Linear(4, 3, bias=False).bias is None
    assert list(nn.Linear(4, 3, bias=False).state_dict()) == ["weight"]


def test_linear_rejects_non_positive_sizes():
    with pytest.raises(ValueError, match="positive.*0, 3"):
        nn.Linear(0, 3)


def test_flatten_keeps_the_batch_axis():
    x = Tensor(np.zeros((2, 3, 4, 5), np.float32))
    assert nn.Flatten()(x).shape == (2, 60)
    assert nn.Flatten(0, 1)(x).shape == (6, 4, 5)
    assert nn.Identity()(x) is x


def test_linear_init_is_uniform_within_one_over_sqrt_in_features():
    manual_seed(0)
    lin = nn.Linear(400, 300)
    bound = 1 / math.sqrt(400)
    for values in (lin.weight.data, lin.bias.data):
        assert np.abs(values).max() <= bound
    # 120,000 uniform draws come within 0.1% of the bound; a narrower init would not.
    assert np.abs(lin.weight.data).max() > 0.999 * bound
    assert np.abs(lin.bias.data).max() > 0.95 * bound           # 300 draws


def test_manual_seed_makes_initialisation_repeatable():
    def initial_values():
        net = nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2))
        return [p.data.copy() for p in net.parameters()]

    manual_seed(123)
    first = initial_values()
    manual_seed(123)
    second = initial_values()
    manual_seed(124)
    third = initial_values()
    assert all(np.array_equal(a, b) for a, b in zip(first, second))
    assert not any(np.array_equal(a, c) for a, c in zip(first, third))


def test_an_explicit_generator_is_repeatable_too():
    a, b = Tensor(np.empty((3, 3))), Tensor(np.empty((3, 3)))
    init.normal_(a, generator=np.random.default_rng(7))
    init.normal_(b, generator=np.random.default_rng(7))
    np.testing.assert_array_equal(a.data, b.data)


# ---------------------------------------------------------------- init schemes -----------------

SHAPE = (256, 64, 3, 3)                 # a conv weight: fan_in = 64·9 = 576, fan_out = 256·9 = 2304
FAN_IN, FAN_OUT = 64 * 9, 256 * 9
N = int(np.prod(SHAPE))

TRUNCATED_STD = math.sqrt(1 - 2 * 2 * math.exp(-2) / math.sqrt(2 * math.pi) / math.erf(2 / math.sqrt(2)))

SCHEMES = {
    "kaiming_normal fan_in relu": (lambda t: init.kaiming_normal_(t, nonlinearity="relu"), math.sqrt(2 / FAN_IN)),
    "kaiming_normal fan_out relu": (lambda t: init.kaiming_normal_(t, mode="fan_out", nonlinearity="relu"),
                                    math.sqrt(2 / FAN_OUT)),
    "kaiming_uniform a=0": (lambda t: init.kaiming_uniform_(t), math.sqrt(2 / FAN_IN)),
    "kaiming_uniform a=sqrt5": (lambda t: init.kaiming_uniform_(t, a=math.sqrt(5)), 1 / math.sqrt(3 * FAN_IN)),
    "xavier_uniform": (lambda t: init.xavier_uniform_(t), math.sqrt(2 / (FAN_IN + FAN_OUT))),
    "xavier_normal gain 2": (lambda t: init.xavier_normal_(t, gain=2.0), 2 * math.sqrt(2 / (FAN_IN + FAN_OUT))),
    "normal 0.01": (lambda t: init.normal_(t, 0.0, 0.01), 0.01),
    "uniform -3..3": (lambda t: init.uniform_(t, -3.0, 3.0), 6 / math.sqrt(12)),
    "trunc_normal 2 std": (lambda t: init.trunc_normal_(t, std=0.02, a=-0.04, b=0.04), 0.02 * TRUNCATED_STD),
}


@pytest.mark.parametrize("name", sorted(SCHEMES))
def test_init_scheme_empirical_std_matches_its_formula(xp, name):
    fill, expected_std = SCHEMES[name]
    manual_seed(0)
    t = Tensor(xp.zeros(SHAPE, np.float32))
    assert fill(t) is t
    values = as_numpy(t.data).astype(np.float64)
    assert t.dtype == np.float32
    # Standard errors of the sample mean and std for N draws (normal kurtosis, the widest of these
    # distributions); five of them is a tolerance that a wrong fan or gain (≥ 10% off) cannot meet.
    assert abs(values.mean()) < 5 * expected_std / math.sqrt(N)
    assert abs(values.std() - expected_std) < 5 * expected_std / math.sqrt(2 * N)


def test_trunc_normal_stays_inside_its_absolute_bounds():
    t = Tensor(np.zeros((100, 100)))
    init.trunc_normal_(t, mean=1.0, std=1.0, a=0.5, b=2.0)
    assert t.data.min() >= 0.5 and t.data.max() <= 2.0


def test_constant_zeros_and_ones():
    t = Tensor(np.empty((2, 3), np.float32))
    np.testing.assert_array_equal(init.constant_(t, 0.25).data, np.full((2, 3), 0.25))
    np.testing.assert_array_equal(init.zeros_(t).data, 0)
    np.testing.assert_array_equal(init.ones_(t).data, 1)
    assert t.dtype == np.float32


def test_calculate_gain_values():
    assert init.calculate_gain("linear") == 1.0
    assert init.calculate_gain("relu") == pytest.approx(math.sqrt(2))
    assert init.calculate_gain("tanh") == pytest.approx(5 / 3)
    assert init.calculate_gain("leaky_relu", 0.2) == pytest.approx(math.sqrt(2 / 1.04))
    with pytest.raises(ValueError, match="swish"):
        init.calculate_gain("swish")


def test_fans_need_two_dimensions():
    with pytest.raises(ValueError, match=r"at least 2 dimensions.*\(5,\)"):
        init.kaiming_normal_(Tensor(np.zeros(5)))
