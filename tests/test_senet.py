"""SE-ResNet: exact parameter and MAC counts (papers.md §6.1, §8.1, §9), the gate's place in every block,
output shapes, float64 directional gradient checks in training mode, zero-γ, and learning on the bundled
Fashion-MNIST."""
import numpy as np
import pytest

import minicnn
from minicnn import nn
from minicnn.autograd import Tensor
from minicnn.functional.activation import relu
from minicnn.functional.loss import cross_entropy
from minicnn.gradcheck import gradcheck
from minicnn.models import resnet as R
from minicnn.models import senet as S
from minicnn.models.summary import count_parameters as count
from minicnn.models.summary import summary


def images(shape, seed=0, dtype=np.float32):
    return Tensor(np.random.default_rng(seed).standard_normal(shape).astype(dtype))


def gmacs(model, input_shape):
    return round(summary(model, input_shape, verbose=False).total_macs / 1e9, 3)


# ------------------------------------------------------------------ counts ----------------------

@pytest.mark.parametrize("build, expected", [
    (S.se_resnet18, 11_778_592),
    (S.se_resnet34, 21_958_868),
    (S.se_resnet50, 28_088_024),
    (S.se_resnet101, 49_326_872),
    (S.se_resnet152, 66_821_848),
])
def test_parameter_count_with_se_biases(build, expected):
    assert count(build()) == expected


def test_se_resnet50_without_se_biases_has_the_ablation_count():
    assert count(S.se_resnet50(se_bias=False)) == 28_071_976
    assert count(S.se_resnet50()) - count(R.resnet50()) == 2_514_944 + 16_048


@pytest.mark.parametrize("build, expected", [(S.se_resnet18, 11_263_042), (S.se_resnet50, 26_051_834)])
def test_parameter_count_of_small_input_variants(build, expected):
    assert count(build(10, small_input=True)) == expected


@pytest.mark.parametrize("reduction, expected", [(4, 278_206), (16, 272_095)])
def test_parameter_count_of_se_cifar_resnet20(reduction, expected):
    assert count(S.se_resnet20(se_reduction=reduction)) == expected


@pytest.mark.parametrize("build, expected", [
    (S.se_resnet50, 3.860),
    pytest.param(S.se_resnet101, 7.575, marks=pytest.mark.slow),
    pytest.param(S.se_resnet152, 11.289, marks=pytest.mark.slow),
])
def test_macs_at_224_in_the_se_papers_layout_stride_on_first_1x1(build, expected):
    assert gmacs(build(stride_on="1x1"), (3, 224, 224)) == expected


def test_macs_at_224_default_layout_matches_resnet50_plus_the_gates():
    assert gmacs(S.se_resnet50(), (3, 224, 224)) == 4.092
    assert gmacs(S.se_resnet18(), (3, 224, 224)) == 1.814


@pytest.mark.parametrize("build, expected", [(S.se_resnet18, 0.556), (S.se_resnet50, 1.300)])
def test_macs_of_small_input_variants_at_32(build, expected):
    assert gmacs(build(10, small_input=True), (3, 32, 32)) == expected


# ------------------------------------------------------------------ structure -------------------

@pytest.mark.parametrize("build, block_type, count_blocks", [
    (S.se_resnet18, R.BasicBlock, 8), (S.se_resnet50, R.Bottleneck, 16),
])
def test_every_residual_branch_ends_in_an_se_gate_with_reduction_16(build, block_type, count_blocks):
    model = build(width=16)
    blocks = [m for m in model.modules() if isinstance(m, R.ResidualBlock)]
    assert len(blocks) == count_blocks and all(isinstance(b, block_type) for b in blocks)
    for b in blocks:
        last_name, last = list(b.residual.named_children())[-1]
        assert last_name == "se" and isinstance(last, nn.SqueezeExcitation)
        channels = b.residual.conv2.out_channels if block_type is R.BasicBlock else b.residual.conv3.out_channels
        assert last.channels == channels and last.hidden == max(channels // 16, 1)
    assert not any(isinstance(m, nn.SqueezeExcitation) for b in blocks if b.shortcut is not None
                   for m in b.shortcut.modules())


def test_the_gate_scales_the_branch_before_the_addition():
    """y = ReLU(SE(F(x)) + shortcut(x)), computed by hand from the block's parts."""
    minicnn.manual_seed(0)
    block = S.se_resnet50(width=8).layer2[0]
    x = images((2, 32, 9, 9))
    parts = list(block.residual.named_children())
    u = x
    for name, module in parts[:-1]:
        u = module(u)
    N, C = u.shape[:2]
    s = block.residual.se.gate(u).numpy().reshape(N, C, 1, 1)
    expected = np.maximum(u.numpy() * s + block.shortcut(x).numpy(), 0)
    np.testing.assert_allclose(block(x).numpy(), expected, rtol=1e-5, atol=1e-6)


def test_options_pass_through_to_the_resnet():
    model = S.se_resnet50(width=8, stem="C", downsample="D", stride_on="1x1", se_bias=False)
    assert list(dict(model.layer2[0].shortcut.named_children())) == ["pool", "conv", "bn"]
    assert model.layer2[0].residual.conv1.stride == (2, 2)
    assert model.stem.conv3.out_channels == 8
    assert model.layer1[0].residual.se.fc1.bias is None
    assert count(S.se_resnet50(stem="C", downsample="D")) == 25_576_264 + 2_514_944 + 16_048


def test_se_cifar_resnet20_uses_reduction_4_by_default():
    gates = [m for m in S.se_resnet20().modules() if isinstance(m, nn.SqueezeExcitation)]
    assert [(g.channels, g.hidden) for g in gates] == [(16, 4)] * 3 + [(32, 8)] * 3 + [(64, 16)] * 3


# ------------------------------------------------------------------ shapes -----------------------

def test_forward_at_224_gives_one_score_per_class():
    minicnn.manual_seed(0)
    y = S.se_resnet18().eval()(images((1, 3, 224, 224)))
    assert y.shape == (1, 1000) and np.isfinite(y.numpy()).all()


@pytest.mark.slow
@pytest.mark.parametrize("build", [S.se_resnet34, S.se_resnet50, S.se_resnet101, S.se_resnet152])
def test_forward_at_224_gives_one_score_per_class_deeper_nets(build):
    minicnn.manual_seed(0)
    y = build().eval()(images((1, 3, 224, 224)))
    assert y.shape == (1, 1000) and np.isfinite(y.numpy()).all()


@pytest.mark.parametrize("build", [S.se_resnet34, S.se_resnet50, S.se_resnet101, S.se_resnet152])
def test_full_depth_at_reduced_width_runs_forward_and_backward(build):
    minicnn.manual_seed(0)
    model = build(num_classes=7, width=4)
    y = model(images((2, 3, 64, 64)))
    assert y.shape == (2, 7)
    y.sum().backward()
    assert all(p.grad is not None and p.grad.shape == p.shape for p in model.parameters())


def test_small_input_variant_accepts_28x28_grey():
    assert S.se_resnet18(10, 1, small_input=True, width=16)(images((2, 1, 28, 28))).shape == (2, 10)


# ------------------------------------------------------------------ gradient checks ------------

TINY = {
    "SE basic blocks": lambda: S.se_resnet18(5, width=16),
    "SE bottlenecks, stride on 1x1, no SE bias": lambda: S.se_resnet50(5, width=8, stride_on="1x1", se_bias=False),
    "SE bottlenecks, ResNet-C stem, ResNet-D, reduction 4": lambda: S.se_resnet50(5, width=4, stem="C", downsample="D",
                                                                                   se_reduction=4),
    "SE CIFAR ResNet-20, option A": lambda: S.se_resnet20(5, width=4),
}


@pytest.mark.parametrize("name", list(TINY))
def test_directional_gradcheck_of_tiny_network_in_training_mode(name):
    minicnn.manual_seed(0)
    with minicnn.default_dtype(np.float64):
        model = TINY[name]()
    assert model.training
    x = Tensor(np.random.default_rng(1).standard_normal((3, 3, 20, 20)), requires_grad=True)
    result = gradcheck(model, [x], model.named_parameters(), mode="directional", directions=3)
    assert result.ok and len(result.checked) == 1 + len(list(model.parameters()))


def test_elementwise_gradcheck_of_one_se_bottleneck():
    minicnn.manual_seed(0)
    with minicnn.default_dtype(np.float64):
        block = R.Bottleneck(4, 2, stride=2, se=S.se_gate(reduction=2))
    x = Tensor(np.random.default_rng(2).standard_normal((2, 4, 5, 5)), requires_grad=True)
    assert gradcheck(block, [x], block.named_parameters(), mode="elementwise").ok


# ------------------------------------------------------------------ zero-γ -----------------------

def test_zero_init_residual_silences_the_gated_branch():
    minicnn.manual_seed(0)
    model = S.se_resnet50(10, width=8, zero_init_residual=True)
    x = model.stem(images((2, 3, 32, 32)))
    for block in [b for stage in model.stages() for b in stage]:
        np.testing.assert_array_equal(block.residual(x).numpy(), 0)
        y = block(x)
        np.testing.assert_array_equal(y.numpy(), relu(block.shortcut(x)).numpy())
        x = y


# ------------------------------------------------------------------ learning ---------------------

def fashion_subset(n):
    x, y, _, _ = minicnn.data.fashion_mnist_mini()
    return ((x[:n].astype(np.float32) / 255 - 0.2860) / 0.3530)[:, None], y[:n].copy()


def train_epoch(model, optimizer, x, y, batch, rng):
    """One pass over (x, y) in shuffled mini-batches; returns the loss of every step."""
    losses, order = [], rng.permutation(len(x))
    for start in range(0, len(x) - batch + 1, batch):
        idx = order[start:start + batch]
        loss = cross_entropy(model(Tensor(x[idx])), Tensor(y[idx]))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def test_loss_falls_over_a_few_steps():
    from minicnn import optim
    minicnn.manual_seed(0)
    x, y = fashion_subset(16)
    model = S.se_resnet18(10, 1, small_input=True, width=8, se_reduction=4)
    optimizer = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    losses = [loss for _ in range(6) for loss in train_epoch(model, optimizer, x, y, 16, np.random.default_rng(0))]
    assert np.isfinite(losses).all() and losses[-1] < 0.75 * losses[0]


@pytest.mark.slow
def test_se_resnet18_small_memorises_256_fashion_mnist_images():
    from minicnn import optim
    minicnn.manual_seed(0)
    x, y = fashion_subset(256)
    model = S.se_resnet18(10, 1, small_input=True)
    optimizer = optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    rng = np.random.default_rng(0)
    for epoch in range(75):                                     # 4 steps per epoch: at most 300 steps
        train_epoch(model, optimizer, x, y, 64, rng)
        model.eval()
        with minicnn.no_grad():
            predictions = np.concatenate([model(Tensor(x[i:i + 128])).numpy().argmax(1) for i in (0, 128)])
        model.train()
        if (predictions == y).all():
            break
    assert (predictions == y).all(), f"training accuracy {(predictions == y).mean():.3f} after 300 steps"
