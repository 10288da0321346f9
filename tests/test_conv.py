"""conv2d: forward against a naive loop convolution, gradients against finite differences.

Every test that takes the `xp` fixture runs on NumPy and, when a GPU is present, on CuPy; those that
also take `cpu_kernels` run with im2col/col2im (and the depthwise kernels) as NumPy calls and as the
compiled kernels of minicnn.cpu (skipped without numba).
"""
import itertools
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minicnn import Tensor, backend
from minicnn.functional.conv import conv2d
from minicnn.functional.im2col import conv_output_size
from minicnn.gradcheck import gradcheck


@pytest.fixture(params=["numpy", "cupy"])
def xp(request):
    if request.param == "numpy":
        return np
    if not backend.gpu_available():
        pytest.skip("CuPy or a CUDA GPU is not available")
    return backend.cupy()


def pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def naive_conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """Cross-correlation by definition: one loop per output element and per kernel tap."""
    (SH, SW), (PH, PW), (DH, DW) = pair(stride), pair(padding), pair(dilation)
    N, C, H, W = x.shape
    Cout, Cg, KH, KW = weight.shape
    OH = (H + 2 * PH - DH * (KH - 1) - 1) // SH + 1
    OW = (W + 2 * PW - DW * (KW - 1) - 1) // SW + 1
    xpad = np.pad(x, ((0, 0), (0, 0), (PH, PH), (PW, PW)))
    y = np.zeros((N, Cout, OH, OW), dtype=x.dtype)
    for n, f, oh, ow in itertools.product(range(N), range(Cout), range(OH), range(OW)):
        g = f // (Cout // groups)                       # the group output channel f belongs to
        for c, kh, kw in itertools.product(range(Cg), range(KH), range(KW)):
            y[n, f, oh, ow] += (weight[f, c, kh, kw]
                                * xpad[n, g * Cg + c, oh * SH + kh * DH, ow * SW + kw * DW])
        if bias is not None:
            y[n, f, oh, ow] += bias[f]
    return y


def random(shape, seed, dtype=np.float64):
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


# (x shape, Cout, kernel, stride, padding, dilation, groups)
CASES = {
    "3x3 same":            ((2, 3, 7, 7), 4, (3, 3), 1, 1, 1, 1),
    "stride 2 odd size":   ((2, 3, 9, 8), 5, (3, 3), 2, 1, 1, 1),
    "non-square all":      ((2, 2, 8, 9), 3, (3, 2), (2, 1), (1, 0), (1, 2), 1),
    "1x7 inception":       ((2, 3, 6, 9), 4, (1, 7), 1, (0, 3), 1, 1),
    "7x1 inception":       ((1, 3, 9, 6), 2, (7, 1), 1, (3, 0), 1, 1),
    "1x1 stride 2":        ((3, 4, 5, 7), 6, (1, 1), 2, 0, 1, 1),
    "dilation 2":          ((2, 2, 9, 9), 3, (3, 3), 1, 2, 2, 1),
    "alexnet-like":        ((2, 3, 19, 19), 4, (11, 11), 4, 2, 1, 1),
    "groups 2":            ((2, 4, 6, 7), 6, (3, 3), 1, 1, 1, 2),
    "groups 3 strided":    ((2, 6, 7, 6), 3, (2, 3), (2, 1), (1, 1), (1, 2), 3),
    "depthwise":           ((2, 4, 6, 6), 4, (3, 3), 1, 1, 1, 4),
    "depthwise x2":        ((2, 3, 7, 5), 6, (3, 3), 2, 1, 1, 3),
    "depthwise stride 2":  ((2, 4, 9, 8), 4, (3, 3), 2, 1, 1, 4),
    "depthwise dilated":   ((2, 3, 9, 10), 3, (3, 5), (1, 2), (2, 1), (2, 1), 3),
    "kernel = input":      ((2, 2, 4, 5), 3, (4, 5), 1, 0, 1, 1),
}


def case_arrays(case, xp, seed=0, dtype=np.float64):
    x_shape, Cout, kernel, stride, padding, dilation, groups = case
    x = random(x_shape, seed, dtype)
    weight = random((Cout, x_shape[1] // groups, *kernel), seed + 1, dtype)
    bias = random((Cout,), seed + 2, dtype)
    hyper = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    return x, weight, bias, hyper


# ------------------------------------------------------------------ forward --------------------

@pytest.mark.parametrize("with_bias", [True, False])
@pytest.mark.parametrize("name", CASES)
def test_forward_equals_naive_convolution(xp, cpu_kernels, name, with_bias):
    x, weight, bias, hyper = case_arrays(CASES[name], xp)
    bias = bias if with_bias else None
    y = conv2d(xp.asarray(x), xp.asarray(weight), None if bias is None else xp.asarray(bias), **hyper)
    np.testing.assert_allclose(backend.as_numpy(y.data), naive_conv2d(x, weight, bias, **hyper),
                               rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("name", ["3x3 same", "groups 3 strided", "depthwise"])
def test_float32_stays_float32_and_matches_float64(xp, name):
    x, weight, bias, hyper = case_arrays(CASES[name], xp)
    y64 = conv2d(xp.asarray(x), xp.asarray(weight), xp.asarray(bias), **hyper)
    f32 = [xp.asarray(a.astype(np.float32)) for a in (x, weight, bias)]
    y32 = conv2d(*f32, **hyper)
    assert y32.dtype == np.float32
    np.testing.assert_allclose(backend.as_numpy(y32.data), backend.as_numpy(y64.data), rtol=1e-4, atol=1e-4)


# ------------------------------------------------------------------ backward -------------------

@pytest.mark.parametrize("name", CASES)
def test_gradients_of_x_weight_bias_match_finite_differences(xp, cpu_kernels, name):
    x, weight, bias, hyper = case_arrays(CASES[name], xp, seed=10)
    gradcheck(lambda x, w, b: conv2d(x, w, b, **hyper),
              [Tensor(xp.asarray(a), requires_grad=True) for a in (x, weight, bias)])


@pytest.mark.parametrize("name", ["non-square all", "groups 3 strided", "depthwise x2"])
def test_gradients_without_bias(xp, name):
    x, weight, _, hyper = case_arrays(CASES[name], xp, seed=20)
    gradcheck(lambda x, w: conv2d(x, w, **hyper),
              [Tensor(xp.asarray(a), requires_grad=True) for a in (x, weight)])


@pytest.mark.parametrize("which", ["x only", "weight only"])
def test_gradients_when_only_some_inputs_require_them(xp, cpu_kernels, which):
    # "x only" takes the path where no column buffer was cached; "weight only" skips col2im.
    x, weight, bias, hyper = case_arrays(CASES["groups 3 strided"], xp, seed=30)
    x = Tensor(xp.asarray(x), requires_grad=which == "x only")
    weight = Tensor(xp.asarray(weight), requires_grad=which == "weight only")
    gradcheck(lambda x, w, b: conv2d(x, w, b, **hyper), [x, weight, Tensor(xp.asarray(bias))])


def test_backward_twice_on_a_retained_graph_gives_the_same_gradients(xp):
    # The first backward reuses the cached columns as gcol's buffer; the second must recompute them.
    x, weight, bias, hyper = case_arrays(CASES["stride 2 odd size"], xp, seed=40)
    x, weight, bias = (Tensor(xp.asarray(a), requires_grad=True) for a in (x, weight, bias))
    y = conv2d(x, weight, bias, **hyper)
    gy = xp.asarray(random(y.shape, 41))
    y.backward(gy, retain_graph=True)
    first = [backend.as_numpy(t.grad.data).copy() for t in (x, weight, bias)]
    for t in (x, weight, bias):
        t.grad = None
    y.backward(gy)
    for t, g in zip((x, weight, bias), first):
        np.testing.assert_allclose(backend.as_numpy(t.grad.data), g, rtol=1e-12, atol=1e-12)


def test_upstream_gradient_is_not_modified(xp):
    x, weight, bias, hyper = case_arrays(CASES["3x3 same"], xp, seed=50)
    x, weight = Tensor(xp.asarray(x), requires_grad=True), Tensor(xp.asarray(weight), requires_grad=True)
    y = conv2d(x, weight, **hyper)
    gy = xp.asarray(random(y.shape, 51))
    kept = backend.as_numpy(gy).copy()
    y.backward(gy)
    np.testing.assert_array_equal(backend.as_numpy(gy), kept)


# Every route conv2d takes, with which the leaves keep backward's arrays as their .grad uncopied
# (Function.fresh_gradients): im2col stride 1 and 2, depthwise, Winograd F(4×4) and F(1×2, 1×7).
ROUTES = {"im2col": ((2, 3, 6, 6), (4, 3, 2, 3), dict(padding=1), "Conv2dFunction"),
          "im2col strided": ((2, 3, 7, 7), (4, 3, 3, 3), dict(stride=2, padding=1), "Conv2dFunction"),
          "depthwise": ((2, 4, 6, 6), (4, 1, 3, 3), dict(padding=1, groups=4), "DepthwiseConv2dFunction"),
          "winograd 3x3": ((2, 8, 8, 8), (8, 8, 3, 3), dict(padding=1), "WinogradConv2dFunction"),
          "winograd 1x7": ((2, 8, 6, 6), (8, 8, 1, 7), dict(padding=(0, 3)), "WinogradConv2dFunction")}


@pytest.mark.parametrize("route", ROUTES)
def test_leaves_own_the_gradients_they_keep_uncopied(xp, cpu_kernels, route, monkeypatch):
    """x.grad, W.grad and b.grad are each the leaf's own writable array: they share memory with nothing
    (not gy, not each other, not a buffer the next call reuses), and a second backward adds to them."""
    from minicnn.functional.winograd import WinogradConv2dFunction
    for limits in ("min_channels", "min_tiles_per_thread"):        # small layers take Winograd too
        monkeypatch.setattr(WinogradConv2dFunction, limits, dict.fromkeys(getattr(WinogradConv2dFunction, limits), 0))
    x_shape, w_shape, hyper, function = ROUTES[route]
    leaves = [Tensor(xp.asarray(random(shape, seed)), requires_grad=True)
              for shape, seed in ((x_shape, 60), (w_shape, 61), (w_shape[:1], 62))]
    y = conv2d(*leaves, **hyper)
    assert type(y.creator).__name__ == (function if xp is np or function != "WinogradConv2dFunction" else "Conv2dFunction")
    gy = xp.asarray(random(y.shape, 63))
    y.backward(gy)
    first = [backend.as_numpy(t.grad.data).copy() for t in leaves]
    other = [Tensor(xp.asarray(random(t.shape, 70 + i)), requires_grad=True) for i, t in enumerate(leaves)]
    conv2d(*other, **hyper).backward(-gy)             # the same shapes again: any reused buffer is overwritten
    for t, g in zip(leaves, first):
        np.testing.assert_array_equal(backend.as_numpy(t.grad.data), g)
    arrays = [t.grad.data for t in leaves + other] + [gy] + [t.data for t in leaves + other]
    for i, a in enumerate(arrays[:6]):
        assert a.flags.writeable
        assert not any(xp.shares_memory(a, b) for b in arrays[i + 1:]), f"gradient {i} shares memory"
    conv2d(*leaves, **hyper).backward(gy)
    for t, g in zip(leaves, first):
        np.testing.assert_allclose(backend.as_numpy(t.grad.data), 2 * g, rtol=1e-12, atol=1e-12)


# ------------------------------------------------------------------ random geometries ----------

@settings(max_examples=40, deadline=None)
@given(N=st.integers(1, 2), G=st.integers(1, 3), Cg=st.integers(1, 2), Fg=st.integers(1, 2),
       H=st.integers(1, 8), W=st.integers(1, 8), KH=st.integers(1, 3), KW=st.integers(1, 3),
       SH=st.integers(1, 3), SW=st.integers(1, 3), PH=st.integers(0, 2), PW=st.integers(0, 2),
       DH=st.integers(1, 2), DW=st.integers(1, 2), seed=st.integers(0, 2**16))
def test_property_random_geometries_match_naive_and_the_size_formula(N, G, Cg, Fg, H, W, KH, KW, SH, SW,
                                                                      PH, PW, DH, DW, seed):
    hyper = dict(stride=(SH, SW), padding=(PH, PW), dilation=(DH, DW), groups=G)
    x = random((N, G * Cg, H, W), seed)
    weight = random((G * Fg, Cg, KH, KW), seed + 1)
    bias = random((G * Fg,), seed + 2)
    OH, OW = conv_output_size(H, KH, SH, PH, DH), conv_output_size(W, KW, SW, PW, DW)
    if OH < 1 or OW < 1:
        with pytest.raises(ValueError, match="conv2d.*larger than the padded input"):
            conv2d(x, weight, bias, **hyper)
        return
    y = conv2d(x, weight, bias, **hyper)
    assert y.shape == (N, G * Fg, OH, OW)
    np.testing.assert_allclose(y.data, naive_conv2d(x, weight, bias, **hyper), rtol=1e-10, atol=1e-10)


# ------------------------------------------------------------------ bad input ------------------

@pytest.mark.parametrize("x_shape, w_shape, b_shape, hyper, message", [
    ((3, 8, 8), (4, 3, 3, 3), None, {}, r"x must be 4-D .*\(3, 8, 8\)"),
    ((1, 3, 8, 8), (4, 3, 3), None, {}, r"weight must be 4-D .*\(4, 3, 3\)"),
    ((1, 3, 8, 8), (4, 1, 3, 3), None, dict(groups=2), r"C=3 .*not divisible by groups=2"),
    ((1, 4, 8, 8), (3, 2, 3, 3), None, dict(groups=2), r"Cout=3 .*not divisible by groups=2"),
    ((1, 4, 8, 8), (4, 4, 3, 3), None, dict(groups=2), r"4 input channels per group, expected .* 2"),
    ((1, 3, 8, 8), (4, 2, 3, 3), None, {}, r"expected C/groups = 3/1 = 3"),
    ((1, 3, 4, 4), (4, 3, 5, 5), None, {}, r"larger than the padded input \(4, 4\)"),
    ((1, 3, 4, 4), (4, 3, 3, 3), None, dict(dilation=2), r"spans \(5, 5\)"),
    ((1, 3, 8, 8), (4, 3, 3, 3), None, dict(stride=0), r"stride"),
    ((1, 3, 8, 8), (4, 3, 3, 3), None, dict(stride=(1, -1)), r"stride"),
    ((1, 3, 8, 8), (4, 3, 3, 3), None, dict(dilation=0), r"dilation"),
    ((1, 3, 8, 8), (4, 3, 3, 3), None, dict(padding=-1), r"padding"),
    ((1, 3, 8, 8), (4, 3, 3, 3), None, dict(groups=0), r"groups"),
    ((1, 3, 8, 8), (4, 3, 3, 3), (3,), {}, r"bias must have shape \(Cout,\) = \(4,\), got \(3,\)"),
    ((1, 3, 8, 8), (4, 3, 3, 3), (4, 1), {}, r"bias must have shape"),
])
def test_bad_input_raises_value_error_naming_conv2d_and_the_shapes(x_shape, w_shape, b_shape, hyper,
                                                                   message):
    x, weight = np.zeros(x_shape), np.zeros(w_shape)
    bias = None if b_shape is None else np.zeros(b_shape)
    with pytest.raises(ValueError) as error:
        conv2d(x, weight, bias, **hyper)
    assert str(error.value).startswith("conv2d: ")
    assert re.search(message, str(error.value)), str(error.value)


def test_mixed_dtypes_raise_type_error():
    with pytest.raises(TypeError, match="conv2d: .*one dtype"):
        conv2d(np.zeros((1, 1, 3, 3), np.float32), np.zeros((1, 1, 3, 3), np.float64))


# ------------------------------------------------------------------ PyTorch cross-check --------

@pytest.mark.parametrize("name", CASES)
def test_matches_pytorch_forward_and_gradients(name):
    torch = pytest.importorskip("torch")
    x, weight, bias, hyper = case_arrays(CASES[name], np, seed=60)
    ours = [Tensor(a, requires_grad=True) for a in (x, weight, bias)]
    theirs = [torch.tensor(a, requires_grad=True) for a in (x, weight, bias)]
    y = conv2d(*ours, **hyper)
    y_torch = torch.nn.functional.conv2d(*theirs, **hyper)
    gy = random(y.shape, 61)
    y.backward(gy)
    y_torch.backward(torch.tensor(gy))
    np.testing.assert_allclose(y.data, y_torch.detach().numpy(), rtol=1e-10, atol=1e-10)
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a.grad.data, b.grad.numpy(), rtol=1e-10, atol=1e-10)


# ------------------------------------------------------------------ the nn.Conv2d layer --------

def test_conv2d_layer_shapes_parameters_and_repr():
    from minicnn.nn.conv import Conv2d
    layer = Conv2d(6, 12, (1, 7), padding=(0, 3), groups=3)
    assert layer.weight.shape == (12, 2, 1, 7) and layer.bias.shape == (12,)
    assert [name for name, _ in layer.named_parameters()] == ["weight", "bias"]
    assert layer.weight.dtype == backend.get_default_dtype()
    y = layer(Tensor(random((2, 6, 5, 9), 70, np.float32)))
    assert y.shape == (2, 12, 5, 9)
    assert repr(layer) == "Conv2d(6, 12, kernel_size=(1, 7), stride=(1, 1), padding=(0, 3), groups=3)"
    assert repr(Conv2d(3, 4, 3, stride=2, dilation=2, bias=False)) == \
        "Conv2d(3, 4, kernel_size=(3, 3), stride=(2, 2), dilation=(2, 2), bias=False)"
    assert Conv2d(3, 4, 3, bias=False).bias is None


def test_conv2d_layer_default_init_is_uniform_within_one_over_sqrt_fan_in():
    from minicnn.nn.conv import Conv2d
    layer = Conv2d(64, 128, 3, groups=2)
    bound = 1 / np.sqrt(32 * 3 * 3)                 # fan_in = C/G·KH·KW
    for p in (layer.weight.data, layer.bias.data):
        assert np.abs(p).max() <= bound
    assert np.abs(layer.weight.data).max() > 0.95 * bound          # fills the range…
    assert abs(float(layer.weight.data.std()) - bound / np.sqrt(3)) < 0.02 * bound   # …uniformly


def test_conv2d_layer_gradients(xp):
    from minicnn import default_dtype
    from minicnn.nn.conv import Conv2d
    with default_dtype(np.float64):
        layer = Conv2d(4, 6, (3, 2), stride=(2, 1), padding=1, groups=2)
    if xp is not np:
        layer.to("cuda")
    gradcheck(layer, [Tensor(xp.asarray(random((2, 4, 5, 6), 71)), requires_grad=True)],
              params=layer.named_parameters())


@pytest.mark.parametrize("arguments, message", [
    ((3, 4, 3, 1, 0, 1, 2), "divisible by groups=2"),
    ((4, 3, 3, 1, 0, 1, 2), "divisible by groups=2"),
    ((0, 3, 3), "positive"),
    ((3, 3, (3, 3, 3)), "kernel_size must be an int or a pair"),
])
def test_conv2d_layer_rejects_bad_arguments(arguments, message):
    from minicnn.nn.conv import Conv2d
    with pytest.raises(ValueError, match="Conv2d: .*" + re.escape(message)):
        Conv2d(*arguments)
