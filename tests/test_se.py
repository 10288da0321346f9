"""Squeeze-and-Excitation: forward against a NumPy reference written from the paper's formulas,
float64 gradient checks (elementwise and directional) for the input and every parameter, and the
parameter counts with and without the FC biases."""
import numpy as np
import pytest

import minicnn
from minicnn import backend
from minicnn.autograd import Tensor
from minicnn.gradcheck import gradcheck
from minicnn.nn.se import SqueezeExcitation


def numpy_squeeze_excitation(u, W1, b1, W2, b2):
    """z_c = mean of u_c over H, W;  s = σ(W₂ max(W₁ z + b₁, 0) + b₂);  y = s_c · u_c."""
    N, C = u.shape[:2]
    y = np.empty_like(u)
    for n in range(N):
        z = np.array([u[n, c].mean() for c in range(C)])
        hidden = np.maximum(W1 @ z + b1, 0)
        s = 1 / (1 + np.exp(-(W2 @ hidden + b2)))
        for c in range(C):
            y[n, c] = s[c] * u[n, c]
    return y


@pytest.mark.parametrize("bias", [True, False])
def test_forward_matches_numpy_reference(xp, bias):
    minicnn.manual_seed(0)
    with minicnn.default_dtype(np.float64):
        se = SqueezeExcitation(32, reduction=8, bias=bias)
    se.to("cuda" if xp is not np else "cpu")
    u = np.random.default_rng(1).standard_normal((3, 32, 5, 4))
    y = se(Tensor(xp.asarray(u)))
    W1, W2 = (backend.as_numpy(fc.weight.data) for fc in (se.fc1, se.fc2))
    b1 = backend.as_numpy(se.fc1.bias.data) if bias else np.zeros(4)
    b2 = backend.as_numpy(se.fc2.bias.data) if bias else np.zeros(32)
    assert y.shape == (3, 32, 5, 4)
    np.testing.assert_allclose(backend.as_numpy(y.data), numpy_squeeze_excitation(u, W1, b1, W2, b2),
                               rtol=1e-12, atol=1e-12)


def test_float32_in_float32_out():
    se = SqueezeExcitation(16, reduction=4)
    y = se(Tensor(np.ones((2, 16, 3, 3), np.float32)))
    assert y.dtype == np.float32


def test_gate_lies_in_zero_one_and_is_constant_over_space():
    minicnn.manual_seed(0)
    se = SqueezeExcitation(16, reduction=4)
    u = Tensor(np.random.default_rng(0).standard_normal((2, 16, 6, 6)).astype(np.float32) + 3)
    s = se.gate(u).numpy()
    assert s.shape == (2, 16) and (s > 0).all() and (s < 1).all()
    ratio = se(u).numpy() / u.numpy()
    np.testing.assert_allclose(ratio, np.broadcast_to(s[:, :, None, None], ratio.shape), rtol=1e-5)


@pytest.mark.parametrize("mode", ["elementwise", "directional"])
@pytest.mark.parametrize("bias", [True, False])
def test_gradcheck_input_and_parameters_float64(mode, bias):
    minicnn.manual_seed(0)
    with minicnn.default_dtype(np.float64):
        se = SqueezeExcitation(8, reduction=4, bias=bias)
    u = Tensor(np.random.default_rng(2).standard_normal((2, 8, 3, 3)), requires_grad=True)
    result = gradcheck(se, [u], se.named_parameters(), mode=mode, directions=5)
    assert result.ok and len(result.checked) == 1 + (4 if bias else 2)


@pytest.mark.parametrize("channels, reduction, bias, expected", [
    (256, 16, True, 256 * 16 + 16 + 16 * 256 + 256),       # SE-ResNet-50's conv2_x: fc [16, 256]
    (256, 16, False, 2 * 256 * 16),
    (2048, 16, True, 2 * 2048 * 128 + 128 + 2048),         # conv5_x: fc [128, 2048]
    (64, 16, False, 2 * 64 * 4),
])
def test_parameter_count(channels, reduction, bias, expected):
    se = SqueezeExcitation(channels, reduction, bias=bias)
    assert sum(p.size for p in se.parameters()) == expected


def test_se_resnet50_extra_parameters_match_papers_md():
    """papers.md §6.1: the SE blocks of SE-ResNet-50 add 2,514,944 weights and 16,048 biases."""
    stages = [(256, 3), (512, 4), (1024, 6), (2048, 3)]       # (channels, blocks) of conv2_x..conv5_x
    for bias, extra in ((False, 2_514_944), (True, 2_514_944 + 16_048)):
        total = sum(blocks * sum(p.size for p in SqueezeExcitation(c, 16, bias=bias).parameters())
                    for c, blocks in stages)
        assert total == extra
        assert 25_557_032 + total == (28_088_024 if bias else 28_071_976)


def test_min_hidden_sets_a_floor_on_the_hidden_width():
    assert SqueezeExcitation(16, reduction=16).hidden == 1
    assert SqueezeExcitation(16, reduction=16, min_hidden=4).hidden == 4
    assert SqueezeExcitation(64, reduction=16, min_hidden=4).hidden == 4
    assert SqueezeExcitation(128, reduction=16, min_hidden=4).hidden == 8


def test_wrong_channel_count_is_a_clear_error():
    se = SqueezeExcitation(16)
    with pytest.raises(ValueError, match=r"SqueezeExcitation: expected an input of shape \(N, 16, H, W\), "
                                         r"got \(2, 8, 3, 3\)"):
        se(Tensor(np.zeros((2, 8, 3, 3), np.float32)))
    with pytest.raises(ValueError, match="reduction must be a positive int"):
        SqueezeExcitation(16, reduction=0)
