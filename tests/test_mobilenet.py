"""MobileNet v1: exact parameter and MAC counts (papers.md §4.5, §8.1, §9), depthwise separable
blocks, width multiplier, shapes, gradients, learning."""
import numpy as np
import pytest

import minicnn
from minicnn import models, nn
from minicnn.models.mobilenet import MOBILENET_V1_BLOCKS, DepthwiseSeparableConv

from test_models_summary import check_gradients, fashion_256, memorise


def _forward(model, shape, seed=0):
    x = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    model.eval()
    with minicnn.no_grad():
        return model(minicnn.Tensor(x))


def test_full_size_counts_and_output_shape():
    result = models.summary(models.mobilenet_v1(), (3, 224, 224), verbose=False)
    assert result.total_params == 4_231_976
    assert round(result.total_macs / 1e9, 3) == 0.569
    assert result.output_shape == (1, 1000)


def test_small_variant_counts():
    result = models.summary(models.mobilenet_v1(num_classes=10, small_input=True), (3, 32, 32), verbose=False)
    assert result.total_params == 3_217_226
    assert round(result.total_macs / 1e9, 3) == 0.046
    assert result.output_shape == (1, 10)


def test_thirteen_depthwise_separable_blocks_with_the_papers_widths_and_strides():
    net = models.mobilenet_v1()
    blocks = [m for m in net.features if isinstance(m, DepthwiseSeparableConv)]
    assert len(blocks) == 13
    assert [(b.pointwise.out_channels, b.depthwise.stride[0]) for b in blocks] == MOBILENET_V1_BLOCKS
    for block in blocks:
        c = block.depthwise.in_channels
        assert block.depthwise.groups == c == block.depthwise.out_channels
        assert block.depthwise.kernel_size == (3, 3) and block.pointwise.kernel_size == (1, 1)
        assert block.depthwise.bias is None and block.pointwise.bias is None        # BN follows
        assert isinstance(block.bn1, nn.BatchNorm2d) and isinstance(block.bn2, nn.BatchNorm2d)
    assert net.features.stem.conv.stride == (2, 2)
    assert models.mobilenet_v1(small_input=True, width_mult=1 / 8).features.stem.conv.stride == (1, 1)


def test_depthwise_conv_costs_9_macs_per_output_value_and_pointwise_c_per_output_value():
    result = models.summary(models.mobilenet_v1(), (3, 224, 224), verbose=False)
    rows = {r.name: r for r in result.rows}
    depthwise, pointwise = rows["features.block2.depthwise"], rows["features.block2.pointwise"]
    assert depthwise.output_shape == (1, 64, 56, 56) and depthwise.macs == 64 * 56 * 56 * 9
    assert pointwise.output_shape == (1, 128, 56, 56) and pointwise.macs == 128 * 56 * 56 * 64


def test_width_multiplier_scales_every_layer():
    net = models.mobilenet_v1(width_mult=0.5)
    assert net.features.stem.conv.out_channels == 16 and net.fc.in_features == 512
    # the pointwise convs hold nearly all the weights: about α² of the full count
    full = 4_231_976 - 1_025_000
    half = models.count_parameters(net) - (512 * 1000 + 1000)
    assert 0.24 < half / full < 0.27


def test_reduced_width_full_depth_forward_at_224_and_any_size_runs():
    net = models.mobilenet_v1(width_mult=1 / 16)
    assert _forward(net, (2, 3, 224, 224)).shape == (2, 1000)
    assert _forward(net, (1, 3, 37, 51)).shape == (1, 1000)        # global pooling: any size
    small = models.mobilenet_v1(num_classes=10, in_channels=1, small_input=True, width_mult=1 / 8)
    assert _forward(small, (2, 1, 28, 28)).shape == (2, 10)


@pytest.mark.slow
def test_full_size_forward():
    out = _forward(models.mobilenet_v1(), (2, 3, 224, 224))
    assert out.shape == (2, 1000) and np.isfinite(out.data).all()


def test_tiny_network_passes_a_float64_gradient_check():
    minicnn.manual_seed(0)
    with minicnn.default_dtype(np.float64):
        net = models.mobilenet_v1(num_classes=10, small_input=True, width_mult=1 / 16)
    checked = check_gradients(net, (3, 3, 32, 32))
    assert len(checked) == 3 + 13 * 6 + 2           # stem conv + BN; per block two convs and two BNs; fc


def test_small_variant_loss_falls_in_a_few_steps():
    minicnn.manual_seed(0)
    x, y = fashion_256()
    net = models.mobilenet_v1(num_classes=10, in_channels=1, small_input=True, width_mult=1 / 8)
    # One batch, 20 steps: over the first dozen the loss wobbles (BN over 16 images, lr 0.1) by more
    # than float32 rounding of the algorithm can be trusted to leave alone; by step 20 it is ~0.4×.
    losses, _ = memorise(net, x[:16], y[:16], steps=20, lr=0.1, batch_size=16, check_every=1000)
    assert np.mean(losses[-3:]) < 0.6 * np.mean(losses[:3])


@pytest.mark.slow
def test_small_variant_memorises_256_fashion_mnist_images():
    minicnn.manual_seed(0)
    x, y = fashion_256()
    net = models.mobilenet_v1(num_classes=10, in_channels=1, small_input=True)
    _, reached = memorise(net, x, y, steps=400, lr=0.05)
    assert reached is not None
