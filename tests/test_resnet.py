"""ResNet, ResNet-B/C/D, the small-input variants and the paper's CIFAR nets.

Specifications checked: exact parameter counts (papers.md §5, §8.1, §9), Table 1's output sizes, output
shapes at 224 (full width: 18/34 here, 50/101/152 with --runslow; full depth at reduced width always),
the structure each option promises (stride placement, shortcuts A/B/C, ResNet-C stem, ResNet-D
projection), float64 directional gradient checks of tiny instances in training mode, zero-γ blocks
starting as ReLU(shortcut(x)), clear errors for bad inputs, and learning on the bundled Fashion-MNIST.
"""
import time

import numpy as np
import pytest

import minicnn
from minicnn import nn
from minicnn.autograd import Tensor
from minicnn.functional.activation import relu
from minicnn.functional.loss import cross_entropy
from minicnn.gradcheck import gradcheck
from minicnn.models import resnet as R
from minicnn.models.summary import InputSizeError, InputTooSmallError, count_parameters, summary


count = count_parameters


def images(shape, seed=0, dtype=np.float32):
    return Tensor(np.random.default_rng(seed).standard_normal(shape).astype(dtype))


# ------------------------------------------------------------------ parameter counts -----------

@pytest.mark.parametrize("build, expected", [
    (R.resnet18, 11_689_512),
    (R.resnet34, 21_797_672),
    (R.resnet50, 25_557_032),
    (R.resnet101, 44_549_160),
    (R.resnet152, 60_192_808),
])
def test_parameter_count_matches_torchvision(build, expected):
    assert count(build()) == expected


@pytest.mark.parametrize("build, options, expected", [
    (R.resnet34, dict(shortcut="A"), 21_623_848),                   # papers.md §5.1
    (R.resnet34, dict(shortcut="C"), 22_716_840),
    (R.resnet50, dict(stride_on="1x1"), 25_557_032),               # stride placement changes no count
    (R.resnet50, dict(stem="C"), 25_576_264),                       # Bag of Tricks ResNet-50-C
    (R.resnet50, dict(stem="C", downsample="D"), 25_576_264),       # ResNet-50-D: the avg pool is free
])
def test_parameter_count_of_paper_and_bag_of_tricks_variants(build, options, expected):
    assert count(build(**options)) == expected


@pytest.mark.parametrize("build, in_channels, options, expected", [       # papers.md §9, 10 classes
    (R.resnet18, 3, {}, 11_173_962),
    (R.resnet18, 1, {}, 11_172_810),
    (R.resnet34, 3, {}, 21_282_122),
    (R.resnet50, 3, {}, 23_520_842),
    (R.resnet101, 3, {}, 42_512_970),
    (R.resnet152, 3, {}, 58_156_618),
    (R.resnet50, 3, dict(stem="C", downsample="D"), 23_547_754),
])
def test_parameter_count_of_small_input_variants(build, in_channels, options, expected):
    assert count(build(10, in_channels, small_input=True, **options)) == expected


@pytest.mark.parametrize("build, expected", [
    (R.resnet20, 269_722), (R.resnet32, 464_154), (R.resnet44, 658_586), (R.resnet56, 853_018),
    (R.resnet110, 1_727_962),
])
def test_parameter_count_of_cifar_resnets(build, expected):
    assert count(build()) == expected


@pytest.mark.parametrize("plain, residual", [(R.plain20, R.resnet20), (R.plain56, R.resnet56),
                                             (R.plain110, R.resnet110)])
def test_plain_nets_have_the_same_parameters_and_no_shortcuts(plain, residual):
    net = plain()
    assert count(net) == count(residual())
    blocks = [m for m in net.modules() if isinstance(m, R.BasicBlock)]
    assert blocks and all(b.shortcut is None for b in blocks)


@pytest.mark.slow
def test_parameter_count_of_cifar_resnet1202():
    assert count(R.cifar_resnet(1202)) == 19_421_274


# ------------------------------------------------------------------ multiply-accumulates -------

@pytest.mark.parametrize("build, options, gmacs", [
    (R.resnet50, dict(stride_on="3x3"), 4.089),                     # torchvision, ResNet-B
    (R.resnet50, dict(stride_on="1x1"), 3.858),                     # the paper's Caffe release
    (R.resnet18, {}, 1.814),
    (R.resnet34, {}, 3.664),
    (R.resnet50, dict(stem="C", downsample="D"), 4.329),            # Bag of Tricks ResNet-50-D
])
def test_macs_at_224(build, options, gmacs):
    assert round(summary(build(**options), (3, 224, 224), verbose=False).total_macs / 1e9, 3) == gmacs


@pytest.mark.parametrize("build, in_channels, size, gmacs", [
    (R.resnet18, 3, 32, 0.555), (R.resnet18, 1, 28, 0.456), (R.resnet50, 3, 32, 1.298),
])
def test_macs_of_small_input_variants(build, in_channels, size, gmacs):
    model = build(10, in_channels, small_input=True)
    assert round(summary(model, (in_channels, size, size), verbose=False).total_macs / 1e9, 3) == gmacs


def test_macs_of_cifar_resnet20():
    assert round(summary(R.resnet20(), (3, 32, 32), verbose=False).total_macs / 1e9, 3) == 0.041


# ------------------------------------------------------------------ shapes -----------------------

def test_feature_sizes_reproduce_table_1_output_column():
    model = R.resnet50(width=8)
    assert model.feature_sizes(224) == [("stem", (56, 56)), ("layer1", (56, 56)), ("layer2", (28, 28)),
                                        ("layer3", (14, 14)), ("layer4", (7, 7))]
    small = R.resnet18(10, 1, small_input=True, width=8)
    assert [s for _, s in small.feature_sizes(28)] == [(28, 28), (28, 28), (14, 14), (7, 7), (4, 4)]
    assert [s for _, s in R.resnet20(width=4).feature_sizes(32)] == [(32, 32), (32, 32), (16, 16), (8, 8)]


@pytest.mark.parametrize("build", [R.resnet18, R.resnet34])
def test_forward_at_224_gives_one_score_per_class(build):
    minicnn.manual_seed(0)
    model = build().eval()
    y = model(images((1, 3, 224, 224)))
    assert y.shape == (1, 1000) and y.dtype == np.float32 and np.isfinite(y.numpy()).all()


@pytest.mark.slow
@pytest.mark.parametrize("build", [R.resnet50, R.resnet101, R.resnet152])
def test_forward_at_224_gives_one_score_per_class_bottleneck_nets(build):
    minicnn.manual_seed(0)
    model = build().eval()
    y = model(images((1, 3, 224, 224)))
    assert y.shape == (1, 1000) and np.isfinite(y.numpy()).all()


@pytest.mark.parametrize("build", [R.resnet50, R.resnet101, R.resnet152])
def test_full_depth_at_reduced_width_runs_forward_and_backward(build):
    minicnn.manual_seed(0)
    model = build(num_classes=7, width=4)
    x = images((2, 3, 64, 64))
    y = model(x)
    assert y.shape == (2, 7)
    y.sum().backward()
    assert all(p.grad is not None and p.grad.shape == p.shape for p in model.parameters())


@pytest.mark.parametrize("size", [1, 2, 7, 28, 33])
@pytest.mark.parametrize("options", [{}, dict(stride_on="1x1"), dict(stem="C", downsample="D"),
                                     dict(shortcut="A"), dict(shortcut="C", downsample="D")])
def test_any_input_size_works_in_eval_because_every_conv_and_pool_is_padded(size, options):
    for build in (R.resnet18, R.resnet50):
        model = build(5, width=4, **options).eval()
        assert model(images((1, 3, size, size))).shape == (1, 5)


def test_small_input_variants_accept_28x28_grey_and_32x32_colour():
    for model, shape in [(R.resnet18(10, 1, small_input=True, width=8), (2, 1, 28, 28)),
                         (R.resnet50(10, 3, small_input=True, width=4, stem="C", downsample="D"), (2, 3, 32, 32)),
                         (R.resnet20(10, 1, width=4), (2, 1, 28, 28))]:
        assert model(images(shape)).shape == (2, 10)


# ------------------------------------------------------------------ structure of each option ----

def strides_of(block):
    return {name: layer.stride for name, layer in block.residual.named_children() if isinstance(layer, nn.Conv2d)}


def test_stride_on_3x3_versus_1x1_in_the_bottleneck():
    b = R.resnet50(width=8).layer2[0]
    assert strides_of(b) == {"conv1": (1, 1), "conv2": (2, 2), "conv3": (1, 1)}
    v1 = R.resnet50(width=8, stride_on="1x1").layer2[0]
    assert strides_of(v1) == {"conv1": (2, 2), "conv2": (1, 1), "conv3": (1, 1)}
    assert strides_of(R.resnet18(width=8).layer2[0]) == {"conv1": (2, 2), "conv2": (1, 1)}


def test_shortcut_b_projects_only_where_the_shape_changes():
    model = R.resnet50(width=8)
    projections = [name for name, m in model.named_modules() if name.endswith("shortcut")
                   and isinstance(m, nn.Sequential)]
    assert projections == ["layer1.0.shortcut", "layer2.0.shortcut", "layer3.0.shortcut", "layer4.0.shortcut"]
    assert isinstance(model.layer1[1].shortcut, nn.Identity)
    basic = R.resnet18(width=8)
    assert isinstance(basic.layer1[0].shortcut, nn.Identity)      # 64 -> 64, stride 1: no projection


def test_shortcut_c_projects_in_every_block():
    model = R.resnet34(width=4, shortcut="C")
    blocks = [m for m in model.modules() if isinstance(m, R.BasicBlock)]
    assert len(blocks) == 16 and all(isinstance(b.shortcut, nn.Sequential) for b in blocks)


def test_shortcut_a_is_parameter_free_subsampling_with_zero_channels():
    block = R.resnet34(width=4, shortcut="A").layer2[0]
    assert isinstance(block.shortcut, R.ZeroPadShortcut) and count(block.shortcut) == 0
    x = np.random.default_rng(0).standard_normal((2, 4, 7, 7)).astype(np.float32)
    y = block.shortcut(Tensor(x)).numpy()
    assert y.shape == (2, 8, 4, 4)
    np.testing.assert_array_equal(y[:, :4], x[:, :, ::2, ::2])
    np.testing.assert_array_equal(y[:, 4:], 0)
    assert block.residual(Tensor(x)).shape == y.shape


def test_resnet_c_stem_is_three_3x3_convs_32_32_64_the_first_with_stride_2():
    stem = R.resnet50(stem="C").stem
    convs = [(m.in_channels, m.out_channels, m.kernel_size, m.stride) for m in stem if isinstance(m, nn.Conv2d)]
    assert convs == [(3, 32, (3, 3), (2, 2)), (32, 32, (3, 3), (1, 1)), (32, 64, (3, 3), (1, 1))]
    assert isinstance(stem.maxpool, nn.MaxPool2d)
    small = R.resnet50(10, small_input=True, stem="C", width=8).stem
    assert [m.stride for m in small if isinstance(m, nn.Conv2d)] == [(1, 1)] * 3
    assert not any(isinstance(m, nn.MaxPool2d) for m in small)


def test_resnet_d_shortcut_average_pools_before_a_stride_1_projection():
    model = R.resnet50(width=8, downsample="D")
    down = model.layer2[0].shortcut
    assert list(dict(down.named_children())) == ["pool", "conv", "bn"]
    assert isinstance(down.pool, nn.AvgPool2d) and down.pool.kernel_size == 2 and down.pool.stride == 2
    assert down.conv.stride == (1, 1) and down.conv.kernel_size == (1, 1)
    first = model.layer1[0].shortcut                              # stride 1: nothing to pool
    assert list(dict(first.named_children())) == ["conv", "bn"]
    x = images((1, 32, 7, 7))                                     # odd size: ceil mode keeps 4×4
    assert down(x).shape == model.layer2[0].residual(x).shape == (1, 64, 4, 4)


def test_small_input_has_a_3x3_stride_1_stem_and_no_max_pool():
    stem = R.resnet18(10, 1, small_input=True).stem
    assert (stem.conv1.kernel_size, stem.conv1.stride, stem.conv1.in_channels) == ((3, 3), (1, 1), 1)
    assert not any(isinstance(m, nn.MaxPool2d) for m in stem)


def test_cifar_resnet_layout_is_6n_plus_2_layers_with_option_a():
    for depth, build in [(20, R.resnet20), (32, R.resnet32), (44, R.resnet44), (56, R.resnet56), (110, R.resnet110)]:
        model = build()
        convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
        assert len(convs) + 1 == depth                            # + the fc layer
        assert {c.out_channels for c in convs} == {16, 32, 64}
        assert not any(isinstance(m, nn.MaxPool2d) for m in model.modules())
        assert all(isinstance(b.shortcut, (nn.Identity, R.ZeroPadShortcut))
                   for b in model.modules() if isinstance(b, R.BasicBlock))


def test_bad_options_are_clear_errors():
    with pytest.raises(ValueError, match=r"shortcut must be one of \('A', 'B', 'C', None\), got 'D'"):
        R.resnet18(shortcut="D")
    with pytest.raises(ValueError, match="stride_on must be one of"):
        R.resnet50(stride_on="3×3")
    with pytest.raises(ValueError, match="downsample='D' changes the projection shortcut"):
        R.resnet50(shortcut="A", downsample="D")
    with pytest.raises(ValueError, match=r"depth must be one of \[18, 34, 50, 101, 152\]"):
        R.resnet(42)


# ------------------------------------------------------------------ gradient checks ------------

TINY = {
    "basic, shortcut B": lambda: R.resnet18(5, width=4),
    "basic, shortcut A": lambda: R.resnet34(5, width=4, shortcut="A"),
    "bottleneck, shortcut C, stride on 1x1": lambda: R.resnet50(5, width=4, shortcut="C", stride_on="1x1"),
    "bottleneck, ResNet-C stem, ResNet-D": lambda: R.resnet50(5, width=4, stem="C", downsample="D"),
    "small input, ResNet-C stem": lambda: R.resnet18(5, 1, small_input=True, width=4, stem="C"),
    "CIFAR ResNet-20": lambda: R.resnet20(5, width=4),
    "CIFAR plain-20": lambda: R.plain20(5, width=4),
}


@pytest.mark.parametrize("name", list(TINY))
def test_directional_gradcheck_of_tiny_network_in_training_mode(name):
    minicnn.manual_seed(0)
    with minicnn.default_dtype(np.float64):
        model = TINY[name]()
    assert model.training
    in_channels = model.in_channels
    x = Tensor(np.random.default_rng(1).standard_normal((3, in_channels, 20, 20)), requires_grad=True)
    result = gradcheck(model, [x], model.named_parameters(), mode="directional", directions=3)
    assert result.ok
    assert len(result.checked) == 1 + len(list(model.parameters()))


@pytest.mark.parametrize("block", [
    lambda: R.Bottleneck(4, 2, stride=2, downsample="D"),
    lambda: R.Bottleneck(4, 2, stride=2, stride_on="1x1"),
    lambda: R.BasicBlock(4, 6, stride=2, shortcut="A"),
    lambda: R.BasicBlock(4, 4, shortcut="C"),
])
def test_elementwise_gradcheck_of_single_blocks(block):
    minicnn.manual_seed(0)
    with minicnn.default_dtype(np.float64):
        module = block()
    x = Tensor(np.random.default_rng(2).standard_normal((2, 4, 5, 5)), requires_grad=True)
    assert gradcheck(module, [x], module.named_parameters(), mode="elementwise").ok


# ------------------------------------------------------------------ zero-γ -----------------------

def blocks_in_order(model):
    return [b for stage in model.stages() for b in stage]


@pytest.mark.parametrize("build", [
    lambda: R.resnet18(10, width=8, zero_init_residual=True),
    lambda: R.resnet50(10, width=8, zero_init_residual=True, stem="C", downsample="D"),
    lambda: R.cifar_resnet(20, width=8, zero_init_residual=True),
])
def test_zero_init_residual_makes_every_block_start_as_relu_of_its_shortcut(build):
    minicnn.manual_seed(0)
    model = build()
    x = model.stem(images((2, 3, 32, 32)))
    for block in blocks_in_order(model):
        residual = block.residual(x).numpy()
        np.testing.assert_array_equal(residual, 0)
        y = block(x)
        np.testing.assert_array_equal(y.numpy(), relu(block.shortcut(x)).numpy())
        x = y


def test_without_zero_init_the_last_bn_starts_at_one():
    block = R.resnet50(width=8).layer1[0]
    np.testing.assert_array_equal(block.residual.bn3.weight.numpy(), 1)
    np.testing.assert_array_equal(R.resnet50(width=8, zero_init_residual=True).layer1[0].residual.bn3.weight.numpy(), 0)


# ------------------------------------------------------------------ input errors ----------------

def test_wrong_channel_count_names_the_model_and_expected_shape():
    with pytest.raises(ValueError, match=r"ResNet-18: expected an input of shape \(N, 3, H, W\), got \(2, 1, 32, 32\)"):
        R.resnet18(width=4)(images((2, 1, 32, 32)))


def test_empty_input_names_the_layer_where_the_map_vanishes():
    """Every conv and pool of a ResNet is padded, so 1×1 is the smallest input (torchvision's min_size);
    only an empty one vanishes."""
    with pytest.raises(InputTooSmallError, match=r"input 0×0 is too small: the feature map vanishes at layer "
                                                 r"'stem.conv1' .* the smallest input that works is 1×1"):
        R.resnet18(width=4).eval()(images((1, 3, 0, 0)))


def test_training_with_batch_1_on_a_too_small_input_names_the_layer_and_a_size_that_works():
    """ImageNet ResNet-18 on 28×28: 28 -> 14 -> 7 -> 7 -> 4 -> 2 -> 1, so conv5_x's batch norms would see one
    value per channel; 33×33 is the smallest square input that leaves them two."""
    model = R.resnet18(10, 1, width=4)
    with pytest.raises(InputSizeError, match=r"ResNet-18: an input of 28×28 is too small to train with a batch of 1: "
                                         r"the feature map at layer4.0.residual.conv1 is 1×1, .* at least 33×33"):
        model(images((1, 1, 28, 28)))
    assert model(images((1, 1, 33, 33))).shape == (1, 10)
    assert model(images((2, 1, 28, 28))).shape == (2, 10)
    assert model.eval()(images((1, 1, 28, 28))).shape == (1, 10)


# ------------------------------------------------------------------ learning ---------------------

def fashion_subset(n=256):
    """The first n training images of the bundled mini Fashion-MNIST, normalised, as (n, 1, 28, 28)."""
    x, y, _, _ = minicnn.data.fashion_mnist_mini()
    x = ((x[:n].astype(np.float32) / 255 - 0.2860) / 0.3530)[:, None]
    return x, y[:n].copy()


def accuracy(model, x, y, batch=128):
    model.eval()
    with minicnn.no_grad():
        predictions = np.concatenate([model(Tensor(x[i:i + batch])).numpy().argmax(1) for i in range(0, len(x), batch)])
    model.train()
    return float((predictions == y).mean())


def fit(model, x, y, steps, batch=64, lr=0.05, seed=0):
    """Plain SGD with momentum over shuffled mini-batches; returns the loss of every step."""
    from minicnn import optim
    optimizer = optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    rng, losses, order = np.random.default_rng(seed), [], np.empty(0, int)
    for _ in range(steps):
        if len(order) < batch:
            order = rng.permutation(len(x))
        idx, order = order[:batch], order[batch:]
        loss = cross_entropy(model(Tensor(x[idx])), Tensor(y[idx]))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def memorise(model, x, y, max_epochs, batch=64, lr=0.05):
    """Train epoch by epoch until every training image is classified right (in eval mode); returns the
    number of steps taken, or None."""
    steps_per_epoch = len(x) // batch
    for epoch in range(max_epochs):
        fit(model, x, y, steps_per_epoch, batch, lr, seed=epoch)
        if accuracy(model, x, y) == 1.0:
            return (epoch + 1) * steps_per_epoch
    return None


@pytest.mark.parametrize("build", [
    lambda: R.resnet18(10, 1, small_input=True, width=8),
    lambda: R.resnet20(10, 1, width=8),
], ids=["resnet18-small-width8", "resnet20-width8"])
def test_loss_falls_over_a_few_steps(build):
    minicnn.manual_seed(0)
    x, y = fashion_subset(16)
    model = build()
    losses = fit(model, x, y, steps=6, batch=16, lr=0.1)
    assert np.isfinite(losses).all() and losses[-1] < 0.75 * losses[0]


@pytest.mark.slow
@pytest.mark.parametrize("build", [lambda: R.resnet18(10, 1, small_input=True), lambda: R.resnet20(10, 1)],
                         ids=["resnet18-small", "resnet20"])
def test_small_variant_memorises_256_fashion_mnist_images(build):
    minicnn.manual_seed(0)
    x, y = fashion_subset(256)
    model = build()
    start = time.time()
    steps = memorise(model, x, y, max_epochs=75)
    assert steps is not None and steps <= 300, f"not at 100% after 300 steps ({time.time() - start:.0f} s)"


def test_models_resnet_and_senet_are_the_submodules():
    """`from minicnn.models import resnet` must give the module (a same-named function once hid it)."""
    import types
    from minicnn import models
    assert isinstance(models.resnet, types.ModuleType) and isinstance(models.senet, types.ModuleType)
