"""models/summary.py and models/registry.py: counting parameters and multiply-adds, the per-layer
summary, the too-small-input check, building networks by name.

Also home of the helpers the network tests share (``memorise`` trains a small variant on 256 images
of the bundled mini Fashion-MNIST; ``check_gradients`` runs a float64 directional gradient check
of a whole network, one tensor at a time).
"""
import time

import numpy as np
import pytest

import minicnn
import minicnn.functional as F
from minicnn import models, nn, optim
from minicnn.data import fashion_mnist_mini
from minicnn.gradcheck import gradcheck
from minicnn.models.registry import UnknownModelError
from minicnn.models.summary import InputSizeError, InputTooSmallError, trace_feature_map, window_layers


# ---------------------------------------------------------------- shared helpers ---------------

def fashion_256(pad_to_32=False):
    """The first 256 training images of the bundled set, normalised, (256, 1, 28 or 32, 28 or 32)."""
    x, y, _, _ = fashion_mnist_mini()
    x = x[:256].astype(np.float32) / 255.0
    if pad_to_32:                       # 2 black pixels each side: Fashion-MNIST's background
        x = np.pad(x, ((0, 0), (2, 2), (2, 2)))
    return ((x - 0.2860) / 0.3530)[:, None], y[:256].copy()


def training_accuracy(model, x, y):
    model.eval()
    with minicnn.no_grad():
        predictions = np.concatenate([model(minicnn.Tensor(x[i:i + 128])).data.argmax(axis=1)
                                      for i in range(0, len(x), 128)])
    model.train()
    return float(np.mean(predictions == y))


def memorise(model, x, y, steps, lr, batch_size=64, check_every=25, seed=0):
    """SGD with momentum on (x, y); returns (losses, step at which eval-mode training accuracy first
    reached 100%, or None)."""
    rng = np.random.default_rng(seed)
    optimizer = optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    losses = []
    model.train()
    for step in range(1, steps + 1):
        index = rng.choice(len(x), batch_size, replace=False)
        loss = F.cross_entropy(model(minicnn.Tensor(x[index])), y[index])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        if step % check_every == 0 and training_accuracy(model, x, y) == 1.0:
            return losses, step
    return losses, None


def check_gradients(model, input_shape, seed=0):
    """Directional float64 gradient check of ``model`` (built in float64) in training mode, separately
    for the input and for every parameter tensor, so that a wrong gradient of a small tensor (a bias,
    a BN β) cannot hide behind the large ones. Dropout masks are re-seeded in every pass."""
    x = minicnn.Tensor(np.random.default_rng(seed).standard_normal(input_shape), requires_grad=True)
    model.train()

    def run(x):
        minicnn.manual_seed(1234)        # the same dropout masks in every forward pass
        return model(x)

    gradcheck(run, [x], mode="directional", directions=2, atol=1e-8, rtol=1e-5, seed=seed)
    named = list(model.named_parameters())
    assert named, "the model has no parameters"
    for name, p in named:
        x.requires_grad = False
        gradcheck(run, [x], [(name, p)], mode="directional", directions=1, atol=1e-8, rtol=1e-5, seed=seed)
        x.requires_grad = True
    return [name for name, _ in named]


# ---------------------------------------------------------------- counting ---------------------

def test_count_parameters_counts_weights_and_biases_and_shared_parameters_once():
    layer = nn.Linear(4, 3)
    assert models.count_parameters(layer) == 4 * 3 + 3
    shared = nn.Sequential(layer, nn.ReLU(), layer)
    assert models.count_parameters(shared) == 15
    layer.bias.requires_grad = False
    assert models.count_parameters(layer, trainable_only=True) == 12


def _small_net():
    return nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(4, 6, 3, groups=2, bias=False), nn.Flatten(), nn.Linear(6 * 2 * 2, 5))


def test_summary_rows_give_shapes_parameters_and_macs_of_every_layer():
    net = _small_net()
    result = models.summary(net, (2, 8, 8), verbose=False)
    assert [r.name for r in result.rows] == ["0", "1", "2", "3", "4", "5", "6"]
    assert [r.type for r in result.rows] == ["Conv2d", "BatchNorm2d", "ReLU", "MaxPool2d", "Conv2d", "Flatten",
                                             "Linear"]
    assert [r.output_shape for r in result.rows] == [(1, 4, 8, 8), (1, 4, 8, 8), (1, 4, 8, 8), (1, 4, 4, 4),
                                                     (1, 6, 2, 2), (1, 24), (1, 5)]
    assert [r.params for r in result.rows] == [2 * 9 * 4 + 4, 8, 0, 0, 6 * 2 * 9, 0, 24 * 5 + 5]
    # conv: Cout·OH·OW·(C/G)·KH·KW; linear: in·out; everything else 0
    assert [r.macs for r in result.rows] == [4 * 8 * 8 * 2 * 9, 0, 0, 0, 6 * 2 * 2 * (4 // 2) * 9, 0, 24 * 5]
    assert result.total_params == models.count_parameters(net) == sum(r.params for r in result.rows)
    assert result.total_macs == sum(r.macs for r in result.rows)
    assert result.input_shape == (1, 2, 8, 8) and result.output_shape == (1, 5)


def test_summary_prints_a_table_and_leaves_the_model_as_it_was(capsys):
    net = _small_net()
    net.train()
    result = models.summary(net, (2, 8, 8))
    printed = capsys.readouterr().out
    assert printed.strip() == str(result).strip()
    for text in ("Conv2d", "BatchNorm2d", "(1, 4, 8, 8)", "Total params:", f"{result.total_params:,}",
                 "Total MACs:", f"{result.total_macs:,}"):
        assert text in printed
    assert all(m.training for m in net.modules())                       # mode restored
    assert all("forward" not in m.__dict__ for m in net.modules())       # no wrapper left behind
    assert net[1].running_mean.tolist() == [0.0] * 4                     # ran in eval mode


def test_summary_restores_forward_methods_when_the_forward_pass_fails():
    net = nn.Sequential(nn.Linear(3, 4), nn.Linear(5, 2))                # shapes do not chain
    with pytest.raises(Exception):
        models.summary(net, (3,), verbose=False)
    assert all("forward" not in m.__dict__ for m in net.modules())
    assert net[0](minicnn.Tensor(np.zeros((1, 3), np.float32))).shape == (1, 4)


def test_a_module_called_twice_gets_two_rows_and_its_parameters_once():
    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(3, 3)

        def forward(self, x):
            return self.fc(self.fc(x))

    result = models.summary(Twice(), (3,), verbose=False)
    assert [(r.name, r.params, r.macs) for r in result.rows] == [("fc", 12, 9), ("fc", 0, 9)]
    assert result.total_params == 12 and result.total_macs == 18


def test_parameters_of_modules_not_called_are_reported_apart():
    class WithSpareHead(nn.Module):
        def __init__(self):
            super().__init__()
            self.used, self.spare = nn.Linear(3, 2), nn.Linear(3, 7)

        def forward(self, x):
            return self.used(x)

    result = models.summary(WithSpareHead(), (3,), verbose=False)
    assert result.total_params == 8 + 28 and result.uncalled_params == 28
    assert "not called" in result.table()


# ---------------------------------------------------------------- input-size check -------------

def test_trace_follows_the_spatial_size_through_convolutions_and_pools():
    net = nn.Sequential(nn.Conv2d(1, 2, 5, stride=1, padding=2), nn.MaxPool2d(3, 2), nn.Conv2d(2, 2, 3),
                        nn.MaxPool2d(2, ceil_mode=True), nn.AdaptiveAvgPool2d(4))
    trace = trace_feature_map(window_layers(net), (28, 32))
    assert trace == [("0", (28, 32)), ("1", (13, 15)), ("2", (11, 13)), ("3", (6, 7)), ("4", (4, 4))]


def test_too_small_input_names_the_layer_and_the_smallest_size_that_works():
    class Chain(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(*[nn.MaxPool2d(2) for _ in range(5)])

        def forward(self, x):
            models.check_input_size(self, x)
            return self.features(x)

    net = Chain()
    assert net(minicnn.Tensor(np.zeros((1, 1, 32, 32), np.float32))).shape == (1, 1, 1, 1)
    with pytest.raises(InputTooSmallError) as error:
        net(minicnn.Tensor(np.zeros((1, 1, 28, 28), np.float32)))
    message = str(error.value)
    assert "features.4" in message and "28×28" in message and "32×32" in message and "1×1" in message


def test_wrong_size_for_a_fixed_head_names_the_sizes_that_work():
    net = nn.Sequential(nn.Conv2d(1, 1, 11, stride=4), nn.MaxPool2d(3, 2))
    x = minicnn.Tensor(np.zeros((1, 1, 224, 224), np.float32))
    with pytest.raises(InputSizeError) as error:
        models.check_input_size(net, x, final_size=(27, 27))
    assert "26×26" in str(error.value) and "227×227" in str(error.value)
    models.check_input_size(net, minicnn.Tensor(np.zeros((1, 1, 227, 227), np.float32)), final_size=27)


# ---------------------------------------------------------------- registry ---------------------

EXPECTED_NAMES = ["alexnet", "alexnet_paper", "mobilenet_v1", "vgg11", "vgg11_bn", "vgg11_lrn", "vgg13",
                  "vgg13_bn", "vgg16", "vgg16_bn", "vgg19", "vgg19_bn", "vgg_c", "vgg_c_bn"]


def test_list_models_names_every_network_of_this_issue():
    names = models.list_models()
    assert names == sorted(names)
    assert set(EXPECTED_NAMES) <= set(names)


def test_the_other_papers_networks_are_registered_and_exported_too():
    others = (["resnet18", "resnet34", "resnet50", "resnet101", "resnet152"]
              + [f"resnet{d}" for d in (20, 32, 44, 56, 110)] + [f"plain{d}" for d in (20, 32, 44, 56, 110)]
              + [f"se_resnet{d}" for d in (18, 34, 50, 101, 152)] + ["inception_v3"])
    for name in others:
        assert name in models.list_models()
        assert getattr(models, name) is models.registry._MODELS[name]


@pytest.mark.parametrize("name", EXPECTED_NAMES)
def test_get_model_builds_each_network_by_name(name):
    model = models.get_model(name, num_classes=10, in_channels=1, small_input=True, width_mult=1 / 16)
    assert isinstance(model, nn.Module)
    x = fashion_256(pad_to_32=True)[0][:2]
    with minicnn.no_grad():
        assert model(minicnn.Tensor(x)).shape == (2, 10)


def test_get_model_with_an_unknown_name_suggests_close_ones():
    with pytest.raises(UnknownModelError) as error:
        models.get_model("vgg61")
    assert "vgg16" in str(error.value) and not str(error.value).startswith("'")


def test_register_refuses_a_second_function_under_a_taken_name():
    def vgg16():
        return nn.Identity()

    with pytest.raises(ValueError, match="already taken"):
        models.register(vgg16)
    assert models.register(models.vgg16) is models.vgg16          # the same function again: harmless


def test_register_under_an_explicit_name():
    from minicnn.models import registry

    def build(num_classes=1000):
        return nn.Linear(2, num_classes)

    try:
        assert models.register("test_only_linear")(build) is build
        assert models.get_model("test_only_linear", num_classes=3).out_features == 3
    finally:
        registry._MODELS.pop("test_only_linear", None)


def test_memorise_helper_runs_and_reports(monkeypatch):
    # The helpers above are used by the network tests; make sure they work on a trivial model.
    x, y = fashion_256()
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
    started = time.perf_counter()
    losses, _ = memorise(model, x, y, steps=20, lr=0.05, check_every=1000)
    assert np.mean(losses[-5:]) < np.mean(losses[:5])
    assert time.perf_counter() - started < 30
