"""conv2d's chunks and memory: the columns of a few images at a time give the same result as the whole
batch's, the memory they take is bounded, and the direct depthwise path equals the im2col path.

The memory tests measure NumPy's allocations with tracemalloc (NumPy reports every array buffer to
it); timings are never asserted here (benchmarks/ measures speed).
"""
import gc
import tracemalloc

import numpy as np
import pytest

from minicnn import Tensor, backend
from minicnn.functional.conv import Conv2dFunction, conv2d
from minicnn.functional.depthwise import DepthwiseConv2dFunction
from minicnn.functional.im2col import conv_output_size


@pytest.fixture(params=["numpy", "cupy"])
def xp(request):
    if request.param == "numpy":
        return np
    if not backend.gpu_available():
        pytest.skip("CuPy or a CUDA GPU is not available")
    return backend.cupy()


def arrays(x_shape, Cout, kernel, groups, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(x_shape).astype(dtype)
    weight = rng.standard_normal((Cout, x_shape[1] // groups, *kernel)).astype(dtype)
    bias = rng.standard_normal(Cout).astype(dtype)
    return x, weight, bias


def pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


def conv_step(xp, x, weight, bias, gy, **hyper):
    """y, gx, gW, gb of one forward + backward through conv2d, as NumPy arrays."""
    x, weight, bias = (Tensor(xp.asarray(a), requires_grad=True) for a in (x, weight, bias))
    y = conv2d(x, weight, bias, **hyper)
    y.backward(xp.asarray(gy))
    return [backend.as_numpy(a) for a in (y.data, x.grad.data, weight.grad.data, bias.grad.data)]


# (x shape, Cout, kernel, stride, padding, dilation, groups)
GEOMETRIES = {
    "3x3 same":        ((7, 3, 8, 8), 4, (3, 3), 1, 1, 1, 1),
    "stride 2":        ((5, 4, 9, 8), 6, (3, 3), 2, 1, 1, 1),
    "1x7 dilated":     ((5, 2, 6, 12), 3, (1, 7), 1, (0, 3), (1, 2), 1),
    "groups strided":  ((6, 6, 7, 6), 3, (2, 3), (2, 1), (1, 1), (1, 2), 3),
    "depthwise x2":    ((5, 3, 7, 5), 6, (3, 3), 2, 1, 1, 3),
}


@pytest.mark.parametrize("images_per_chunk", [1, 2, 3])
@pytest.mark.parametrize("name", GEOMETRIES)
def test_chunked_columns_give_the_result_of_one_chunk(xp, monkeypatch, name, images_per_chunk):
    x_shape, Cout, kernel, stride, padding, dilation, groups = GEOMETRIES[name]
    x, weight, bias = arrays(x_shape, Cout, kernel, groups)
    hyper = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    (SH, SW), (PH, PW), (DH, DW) = (pair(v) for v in (stride, padding, dilation))
    OH = conv_output_size(x_shape[2], kernel[0], SH, PH, DH)
    OW = conv_output_size(x_shape[3], kernel[1], SW, PW, DW)
    gy = np.random.default_rng(1).standard_normal((x_shape[0], Cout, OH, OW))
    whole = conv_step(xp, x, weight, bias, gy, **hyper)
    device = "cpu" if xp is np else "cuda"
    per_image = x_shape[1] * kernel[0] * kernel[1] * OH * OW * 8
    monkeypatch.setattr(Conv2dFunction, "chunk_bytes", {device: images_per_chunk * per_image})
    monkeypatch.setattr(Conv2dFunction, "min_chunk_columns", 1)
    chunked = conv_step(xp, x, weight, bias, gy, **hyper)
    for a, b, what in zip(chunked, whole, ("y", "gx", "gW", "gb")):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12, err_msg=what)


def test_a_retained_graph_backpropagates_twice_through_chunks(monkeypatch):
    monkeypatch.setattr(Conv2dFunction, "chunk_bytes", {"cpu": 1})
    monkeypatch.setattr(Conv2dFunction, "min_chunk_columns", 1)
    x, weight, bias = (Tensor(a, requires_grad=True) for a in arrays((4, 3, 6, 6), 5, (3, 3), 1))
    y = conv2d(x, weight, bias, padding=1)
    gy = np.random.default_rng(2).standard_normal(y.shape)
    y.backward(gy, retain_graph=True)
    first = [t.grad.data.copy() for t in (x, weight, bias)]
    y.backward(gy)
    for t, g in zip((x, weight, bias), first):
        np.testing.assert_allclose(t.grad.data, 2 * g, rtol=1e-12)


@pytest.mark.parametrize("x_shape, Cout, kernel, padding, dilation, groups", [
    ((2, 3, 7, 6), 4, (3, 3), 1, 1, 1),
    ((2, 4, 8, 9), 6, (3, 2), (0, 1), (2, 1), 2),
    ((1, 3, 6, 12), 6, (1, 7), (0, 3), 1, 3),
    ((2, 2, 5, 5), 3, (5, 5), 0, 1, 1),
])
def test_input_gradient_as_a_convolution_equals_col2im(xp, monkeypatch, x_shape, Cout, kernel, padding,
                                                       dilation, groups):
    x, weight, bias = arrays(x_shape, Cout, kernel, groups, seed=5)
    hyper = dict(padding=padding, dilation=dilation, groups=groups)
    f = Conv2dFunction(1, padding, dilation, groups)
    assert f._input_gradient_is_a_convolution(weight)
    gy = np.random.default_rng(6).standard_normal(conv2d(x, weight, **hyper).shape)
    by_convolution = conv_step(xp, x, weight, bias, gy, **hyper)
    monkeypatch.setattr(Conv2dFunction, "_input_gradient_is_a_convolution", lambda self, weight: False)
    by_col2im = conv_step(xp, x, weight, bias, gy, **hyper)
    for a, b, what in zip(by_convolution, by_col2im, ("y", "gx", "gW", "gb")):     # gW from gy's columns too
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12, err_msg=what)


# ------------------------------------------------------------------ depthwise ------------------

@pytest.mark.parametrize("chunk_bytes", [2 ** 20, 1], ids=["one chunk", "one image per chunk"])
@pytest.mark.parametrize("padding, dilation", [(1, 1), (0, 1), ((2, 1), (2, 1)), ((0, 3), (1, 2))])
@pytest.mark.parametrize("stride", [1, 2, (1, 2)])
def test_direct_depthwise_path_equals_im2col_path(padding, dilation, stride, chunk_bytes, cpu_kernels, monkeypatch):
    if stride != 1 and not cpu_kernels:
        pytest.skip("the NumPy depthwise path is for stride 1")
    if cpu_kernels and chunk_bytes == 1:
        pytest.skip("the kernels have no chunks")
    monkeypatch.setattr(DepthwiseConv2dFunction, "chunk_bytes", chunk_bytes)
    x, weight, bias = arrays((3, 5, 9, 8), 5, (3, 3), 5, seed=3)
    gy = None
    results = []
    for function in (DepthwiseConv2dFunction, Conv2dFunction):
        f = function(stride, padding, dilation, 5)
        f.needs_input_grad = (True, True, True)
        y = f.forward(x, weight, bias)
        gy = np.random.default_rng(4).standard_normal(y.shape) if gy is None else gy
        results.append((y, *f.backward(gy)))
    for a, b, what in zip(*results, ("y", "gx", "gW", "gb")):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12, err_msg=what)


def test_conv2d_takes_the_direct_path_for_depthwise_on_the_cpu_any_stride_with_the_kernels(cpu_kernels):
    x, weight, _ = arrays((2, 4, 6, 6), 4, (3, 3), 4)
    y = conv2d(Tensor(x, requires_grad=True), weight, groups=4, padding=1)
    assert isinstance(y.creator, DepthwiseConv2dFunction) and y.creator.by_kernels == cpu_kernels
    strided = conv2d(Tensor(x, requires_grad=True), weight, groups=4, stride=2)
    assert type(strided.creator) is (DepthwiseConv2dFunction if cpu_kernels else Conv2dFunction)
    grouped = conv2d(Tensor(x, requires_grad=True), arrays((2, 4, 6, 6), 4, (3, 3), 2)[1], groups=2)
    assert type(grouped.creator) is Conv2dFunction


def test_the_numpy_depthwise_path_refuses_a_stride_it_cannot_do():
    x, weight, _ = arrays((2, 4, 6, 6), 4, (3, 3), 4)
    from minicnn import cpu
    with cpu.flags(enabled=False), pytest.raises(ValueError, match=r"depthwise.*stride must be \(1, 1\).*got \(2, 2\)"):
        DepthwiseConv2dFunction(2, 1, 1, 4).forward(x, weight)


# ------------------------------------------------------------------ memory ---------------------

def traced_peak(step):
    """Bytes of the peak of NumPy allocations during step() above what was allocated before it."""
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        step()
        return tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


def raw_conv_step(x, weight, bias, gy, **hyper):
    """One forward + backward of the conv on raw arrays: y, gx, gW and gb all allocated and kept."""
    f = Conv2dFunction(**hyper)
    f.needs_input_grad = (True, True, True)
    kept = [f.forward(x, weight, bias)]
    kept += f.backward(gy)
    return kept


@pytest.mark.parametrize("x_shape, Cout", [
    ((8, 64, 28, 28), 64),      # columns of several chunks (13.8 MiB)
    ((8, 64, 14, 14), 64),      # small maps (3.4 MiB)
    ((64, 16, 28, 28), 16),     # a large batch of a small layer (27.6 MiB)
])
def test_peak_memory_of_a_3x3_conv_step_is_at_most_1_5_times_its_column_matrix(x_shape, Cout):
    # The column matrix of a 3×3, stride-1 conv is 9× its input. The bound cannot apply where the
    # columns are not much larger than what any conv step allocates (output, gradients): 1×1 or
    # stride-2 layers (columns 1–2.25× the input), or layers of a single small chunk (< 2 MiB),
    # whose weight, weight gradient and flipped weight are no longer small beside their columns.
    x, weight, bias = arrays(x_shape, Cout, (3, 3), 1, dtype=np.float32)
    gy = np.ones((x_shape[0], Cout, *x_shape[2:]), np.float32)
    columns = x.nbytes * 9
    peak = traced_peak(lambda: raw_conv_step(x, weight, bias, gy, padding=1))
    assert peak <= 1.5 * columns, f"peak {peak / 2**20:.2f} MiB, columns {columns / 2**20:.2f} MiB"


def test_column_memory_stays_bounded_as_the_batch_grows(monkeypatch):
    monkeypatch.setattr(Conv2dFunction, "chunk_bytes", {"cpu": 2 ** 20})
    overheads = []
    for N in (64, 256):
        x, weight, bias = arrays((N, 16, 16, 16), 16, (3, 3), 1, dtype=np.float32)
        gy = np.ones(x.shape, np.float32)
        peak = traced_peak(lambda: raw_conv_step(x, weight, bias, gy, padding=1))
        # Beyond y and gx (one image-sized array each, kept) only the chunks' buffers remain.
        overheads.append(peak - 2 * x.nbytes)
    # The column matrix would be 9 and 36 MiB.
    assert max(overheads) <= 3 * 2 ** 20, f"{[round(o / 2**20, 2) for o in overheads]} MiB beyond y and gx"
    assert overheads[1] <= overheads[0] + 2 ** 18
