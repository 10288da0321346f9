"""im2col / col2im: against naive loops, as adjoints, on NumPy and (when present) CuPy.

Layout under test: col[c, kh, kw, n, oh, ow] = x_padded[n, c, oh·SH + kh·DH, ow·SW + kw·DW].
"""
import ctypes
import itertools
import shutil
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minicnn import backend, cpu
from minicnn.cuda.im2col_kernels import CUDA_SOURCE
from minicnn.functional.im2col import (col2im, col2im_by_slices, conv_output_size, im2col, im2col_by_runs,
                                       im2col_by_slices)


# ------------------------------------------------------------------ backends -------------------

@pytest.fixture(params=["numpy", "cupy"])
def xp(request):
    if request.param == "numpy":
        return np
    if not backend.gpu_available():
        pytest.skip("CuPy or a CUDA GPU is not available")
    return backend.cupy()


def to_numpy(a):
    return backend.as_numpy(a)


# ------------------------------------------------------------------ naive references -----------

def naive_im2col(x, kernel, stride, padding, dilation):
    """One loop per index of col, written for clarity."""
    (KH, KW), (SH, SW), (PH, PW), (DH, DW) = kernel, stride, padding, dilation
    N, C, H, W = x.shape
    OH = (H + 2 * PH - DH * (KH - 1) - 1) // SH + 1
    OW = (W + 2 * PW - DW * (KW - 1) - 1) // SW + 1
    col = np.zeros((C, KH, KW, N, OH, OW), dtype=x.dtype)
    for c, kh, kw, n, oh, ow in itertools.product(range(C), range(KH), range(KW), range(N),
                                                  range(OH), range(OW)):
        h = oh * SH - PH + kh * DH
        w = ow * SW - PW + kw * DW
        if 0 <= h < H and 0 <= w < W:
            col[c, kh, kw, n, oh, ow] = x[n, c, h, w]
    return col


def naive_col2im(col, x_shape, stride, padding, dilation):
    """Scatter every column entry back to the pixel it came from."""
    (SH, SW), (PH, PW), (DH, DW) = stride, padding, dilation
    N, C, H, W = x_shape
    gx = np.zeros(x_shape, dtype=col.dtype)
    for c, kh, kw, n, oh, ow in np.ndindex(*col.shape):
        h = oh * SH - PH + kh * DH
        w = ow * SW - PW + kw * DW
        if 0 <= h < H and 0 <= w < W:
            gx[n, c, h, w] += col[c, kh, kw, n, oh, ow]
    return gx


def naive_conv2d(x, weight, stride, padding, dilation):
    """Direct convolution (cross-correlation), six loops; no groups."""
    (SH, SW), (PH, PW), (DH, DW) = stride, padding, dilation
    N, C, H, W = x.shape
    F, _, KH, KW = weight.shape
    xpad = np.pad(x, ((0, 0), (0, 0), (PH, PH), (PW, PW)))
    OH = (H + 2 * PH - DH * (KH - 1) - 1) // SH + 1
    OW = (W + 2 * PW - DW * (KW - 1) - 1) // SW + 1
    y = np.zeros((N, F, OH, OW), dtype=x.dtype)
    for n, f, oh, ow in itertools.product(range(N), range(F), range(OH), range(OW)):
        for c, kh, kw in itertools.product(range(C), range(KH), range(KW)):
            y[n, f, oh, ow] += weight[f, c, kh, kw] * xpad[n, c, oh * SH + kh * DH, ow * SW + kw * DW]
    return y


# (x shape, kernel, stride, padding, dilation): odd sizes, non-square everything, stride > kernel
CASES = [
    ((2, 3, 7, 7), (3, 3), (1, 1), (1, 1), (1, 1)),
    ((2, 3, 8, 9), (3, 2), (2, 1), (1, 0), (1, 1)),
    ((1, 2, 9, 8), (2, 3), (2, 3), (0, 2), (2, 1)),
    ((3, 1, 11, 10), (1, 7), (1, 1), (0, 3), (1, 1)),
    ((2, 4, 5, 6), (1, 1), (3, 2), (0, 0), (1, 1)),
    ((1, 3, 13, 13), (5, 5), (4, 4), (2, 2), (1, 1)),
    ((2, 2, 10, 11), (3, 3), (1, 2), (2, 3), (2, 3)),
]


def random_array(xp, shape, dtype=np.float64, seed=0):
    return xp.asarray(np.random.default_rng(seed).standard_normal(shape).astype(dtype))


# ------------------------------------------------------------------ properties -----------------

@pytest.mark.parametrize("size, kernel, stride, padding, dilation, expected", [
    (227, 11, 4, 0, 1, 55),     # AlexNet conv1 (the 227 variant)
    (224, 11, 4, 2, 1, 55),     # AlexNet conv1 (the 224 variant, torchvision)
    (32, 3, 1, 1, 1, 32),       # "same" 3×3
    (7, 3, 2, 1, 1, 4),
    (10, 3, 1, 0, 2, 6),        # dilation 2: the kernel covers 5 pixels
    (5, 5, 1, 0, 1, 1),
])
def test_conv_output_size_follows_the_floor_formula(size, kernel, stride, padding, dilation, expected):
    assert conv_output_size(size, kernel, stride, padding, dilation) == expected


@pytest.mark.parametrize("x_shape, kernel, stride, padding, dilation", CASES)
def test_im2col_equals_naive_loops(xp, x_shape, kernel, stride, padding, dilation):
    x = random_array(xp, x_shape)
    expected = naive_im2col(to_numpy(x), kernel, stride, padding, dilation)
    np.testing.assert_array_equal(to_numpy(im2col(x, kernel, stride, padding, dilation)), expected)
    np.testing.assert_array_equal(to_numpy(im2col_by_slices(x, kernel, stride, padding, dilation)),
                                  expected)


@pytest.mark.parametrize("x_shape, kernel, stride, padding, dilation", CASES)
def test_col2im_equals_naive_scatter(xp, x_shape, kernel, stride, padding, dilation):
    col_shape = naive_im2col(np.zeros(x_shape), kernel, stride, padding, dilation).shape
    col = random_array(xp, col_shape, seed=1)
    expected = naive_col2im(to_numpy(col), x_shape, stride, padding, dilation)
    np.testing.assert_allclose(to_numpy(col2im(col, x_shape, kernel, stride, padding, dilation)),
                               expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("x_shape, kernel, stride, padding, dilation", CASES)
def test_col2im_is_the_adjoint_of_im2col(xp, x_shape, kernel, stride, padding, dilation):
    # <im2col(x), c> == <x, col2im(c)> for all x, c: col2im is exactly im2col's backward pass.
    x = random_array(xp, x_shape, seed=2)
    col = im2col(x, kernel, stride, padding, dilation)
    c = random_array(xp, col.shape, seed=3)
    left = float((col * c).sum())
    right = float((x * col2im(c, x_shape, kernel, stride, padding, dilation)).sum())
    assert left == pytest.approx(right, rel=1e-12, abs=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dtype_is_preserved(xp, dtype):
    x = random_array(xp, (2, 3, 6, 5), dtype)
    col = im2col(x, (3, 2), 2, 1, 1)
    assert col.dtype == dtype and im2col_by_slices(x, (3, 2), 2, 1, 1).dtype == dtype
    assert col2im(col, x.shape, (3, 2), 2, 1, 1).dtype == dtype
    assert col2im_by_slices(col, x.shape, (3, 2), 2, 1, 1).dtype == dtype


@pytest.mark.parametrize("x_shape, kernel, stride, padding, dilation", CASES)
def test_im2col_times_weights_is_a_convolution(xp, x_shape, kernel, stride, padding, dilation):
    x = random_array(xp, x_shape, seed=4)
    weight = random_array(xp, (5, x_shape[1], *kernel), seed=5)
    col = im2col(x, kernel, stride, padding, dilation)
    C, KH, KW, N, OH, OW = col.shape
    y = (weight.reshape(5, C * KH * KW) @ col.reshape(C * KH * KW, N * OH * OW))
    y = y.reshape(5, N, OH, OW).transpose(1, 0, 2, 3)
    expected = naive_conv2d(to_numpy(x), to_numpy(weight), stride, padding, dilation)
    np.testing.assert_allclose(to_numpy(y), expected, rtol=1e-10, atol=1e-10)


def test_gpu_kernels_equal_the_slicing_path_exactly(xp):
    # On CuPy `im2col`/`col2im` run the CUDA kernels; they must match the slicing path bit for bit
    # (col2im sums the taps in the same order). On NumPy both names are the slicing path.
    for dtype in (np.float32, np.float64):
        for x_shape, kernel, stride, padding, dilation in CASES:
            x = random_array(xp, x_shape, dtype, seed=6)
            col = im2col(x, kernel, stride, padding, dilation)
            np.testing.assert_array_equal(
                to_numpy(col), to_numpy(im2col_by_slices(x, kernel, stride, padding, dilation)))
            c = random_array(xp, col.shape, dtype, seed=7)
            np.testing.assert_array_equal(
                to_numpy(col2im(c, x_shape, kernel, stride, padding, dilation)),
                to_numpy(col2im_by_slices(c, x_shape, kernel, stride, padding, dilation)))


@settings(max_examples=60, deadline=None)
@given(N=st.integers(1, 2), C=st.integers(1, 3), H=st.integers(1, 9), W=st.integers(1, 9),
       KH=st.integers(1, 4), KW=st.integers(1, 4), SH=st.integers(1, 3), SW=st.integers(1, 3),
       PH=st.integers(0, 2), PW=st.integers(0, 2), DH=st.integers(1, 3), DW=st.integers(1, 3),
       seed=st.integers(0, 2**16))
def test_property_random_geometries(N, C, H, W, KH, KW, SH, SW, PH, PW, DH, DW, seed):
    args = (KH, KW), (SH, SW), (PH, PW), (DH, DW)
    OH, OW = conv_output_size(H, KH, SH, PH, DH), conv_output_size(W, KW, SW, PW, DW)
    x = random_array(np, (N, C, H, W), seed=seed)
    if OH < 1 or OW < 1:
        with pytest.raises(ValueError, match="im2col"):
            im2col(x, *args)
        return
    col = im2col(x, *args)
    assert col.shape == (C, KH, KW, N, OH, OW)
    np.testing.assert_array_equal(col, naive_im2col(x, *args))
    c = random_array(np, col.shape, seed=seed + 1)
    assert float((col * c).sum()) == pytest.approx(float((x * col2im(c, x.shape, *args)).sum()),
                                                   rel=1e-12, abs=1e-12)


# "same"-width convs (stride 1, OW = W), which the CPU's im2col copies as long runs: 3×3, 1×7, 7×1,
# 1×1, 5×5, dilations, a kernel wider than the map, one column, padding only in H.
SAME_WIDTH = [
    ((2, 3, 7, 7), (3, 3), (1, 1), (1, 1)), ((3, 2, 6, 11), (1, 7), (0, 3), (1, 1)),
    ((2, 2, 9, 5), (7, 1), (3, 0), (1, 1)), ((2, 4, 5, 6), (1, 1), (0, 0), (1, 1)),
    ((1, 3, 8, 8), (5, 5), (2, 2), (1, 1)), ((2, 2, 10, 11), (3, 3), (2, 3), (2, 3)),
    ((1, 2, 4, 3), (3, 7), (1, 3), (1, 1)), ((2, 1, 5, 1), (3, 3), (1, 1), (1, 1)),
    ((1, 2, 7, 6), (3, 1), (0, 0), (1, 1)), ((1, 1, 4, 4), (2, 3), (2, 2), (2, 2)),
]


@pytest.mark.parametrize("x_shape, kernel, padding, dilation", SAME_WIDTH)
def test_im2col_by_runs_equals_naive_loops(x_shape, kernel, padding, dilation):
    x = random_array(np, x_shape, seed=sum(x_shape))
    expected = naive_im2col(x, kernel, (1, 1), padding, dilation)
    out = np.full(expected.shape, np.nan)
    assert im2col_by_runs(x, kernel, 1, padding, dilation, out=out) is out
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(im2col_by_runs(x[:, ::-1], kernel, 1, padding, dilation),   # non-contiguous x
                                  naive_im2col(np.ascontiguousarray(x[:, ::-1]), kernel, (1, 1), padding, dilation))


def test_the_cpu_takes_runs_for_same_width_convs_only(monkeypatch):
    module = sys.modules["minicnn.functional.im2col"]        # (minicnn.functional.im2col is the function)
    taken = []
    monkeypatch.setattr(module, "im2col_by_runs", lambda *a, **k: taken.append("runs"))
    monkeypatch.setattr(module, "im2col_by_slices", lambda *a, **k: taken.append("slices"))
    x = np.zeros((1, 2, 8, 8), dtype=np.float32)
    with cpu.flags(enabled=False):                            # the NumPy path (see the next test for numba's)
        im2col(x, 3, 1, 1), im2col(x, (1, 7), 1, (0, 3)), im2col(x, 1)        # OW = W, stride 1
        im2col(x, 3, 2, 1), im2col(x, 3, 1, 0), im2col(x, 3, (2, 1), 1)       # stride 2, OW < W
        im2col(x, 3, 1, 1, out=np.zeros((2, 3, 3, 1, 8, 16), dtype=np.float32)[..., ::2])   # out not contiguous
    assert taken == ["runs"] * 3 + ["slices"] * 4


def test_with_numba_the_cpu_takes_the_compiled_kernels_for_float_arrays(monkeypatch):
    if not cpu.is_available():
        pytest.skip("numba is not installed")
    module = sys.modules["minicnn.functional.im2col"]
    taken = []
    for name in ("im2col_by_runs", "im2col_by_slices", "col2im_by_slices", "_im2col_by_kernel", "_col2im_by_kernel"):
        monkeypatch.setattr(module, name, lambda *a, _name=name, **k: taken.append(_name))
    x, col = np.zeros((1, 2, 8, 8), dtype=np.float32), np.zeros((2, 3, 3, 1, 8, 8), dtype=np.float32)
    im2col(x, 3, 1, 1), im2col(x, 3, 2, 1), col2im(col, x.shape, 3, 1, 1)
    im2col(x, 3, 1, 1, out=np.zeros((2, 3, 3, 1, 8, 16), dtype=np.float32)[..., ::2])   # out not contiguous
    im2col(x.astype(np.int64), 3, 1, 1), col2im(col.astype(np.float16), x.shape, 3, 1, 1)   # not float32/64
    assert taken == ["_im2col_by_kernel"] * 2 + ["_col2im_by_kernel", "im2col_by_slices", "im2col_by_runs",
                                                 "col2im_by_slices"]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("x_shape, kernel, stride, padding, dilation", CASES + [(s, k, (1, 1), p, d)
                                                                               for s, k, p, d in SAME_WIDTH])
def test_numba_and_numpy_paths_agree_bit_for_bit(dtype, x_shape, kernel, stride, padding, dilation):
    """The kernels copy the same numbers, and col2im adds the taps in the same order, as the NumPy path;
    into a given out (also one that is not contiguous), and from an x that is not contiguous."""
    if not cpu.is_available():
        pytest.skip("numba is not installed")
    x = random_array(np, x_shape, dtype, seed=3)[:, ::-1]            # not contiguous
    with cpu.flags(enabled=False):
        col = im2col(x, kernel, stride, padding, dilation)
        c = random_array(np, col.shape, dtype, seed=4)
        gx = col2im(c, x.shape, kernel, stride, padding, dilation)
    out = np.full(col.shape, np.nan, dtype=dtype)
    assert im2col(x, kernel, stride, padding, dilation, out=out) is out
    np.testing.assert_array_equal(out, col)
    np.testing.assert_array_equal(col2im(c, x.shape, kernel, stride, padding, dilation), gx)
    g_out = np.full(x.shape[:3] + (2 * x.shape[3],), np.nan, dtype=dtype)[..., ::2]
    assert col2im(c, x.shape, kernel, stride, padding, dilation, out=g_out) is g_out
    np.testing.assert_array_equal(g_out, gx)


def test_im2col_fills_an_out_that_is_not_contiguous():
    x = np.random.default_rng(0).standard_normal((2, 3, 6, 6))
    out = np.zeros((3, 3, 3, 2, 6, 12))[..., ::2]
    assert im2col(x, 3, 1, 1, out=out) is out
    np.testing.assert_array_equal(out, naive_im2col(x, (3, 3), (1, 1), (1, 1), (1, 1)))


@pytest.mark.parametrize("call, message", [
    (lambda: im2col_by_runs(np.zeros((1, 1, 5, 5)), 3, stride=2, padding=1), r"im2col_by_runs: stride 1 and an "
     r"output as wide as the input only, got stride \(2, 2\) and output width 3 for input width 5"),
    (lambda: im2col_by_runs(np.zeros((1, 1, 5, 5)), 3), "output width 3 for input width 5"),
    (lambda: im2col_by_runs(np.zeros((1, 1, 5, 5)), 3, padding=1, out=np.zeros((1, 3, 3, 1, 5, 4))),
     r"im2col: out has shape \(1, 3, 3, 1, 5, 4\), expected"),
    (lambda: im2col_by_runs(np.zeros((1, 1, 5, 5)), 3, padding=1, out=np.zeros((1, 3, 3, 1, 5, 10))[..., ::2]),
     r"im2col_by_runs: out must be C-contiguous"),
    (lambda: im2col(np.zeros((3, 5, 5)), 3), "4-D"),
    (lambda: im2col(np.zeros((1, 1, 5, 5)), 3, stride=0), "stride"),
    (lambda: im2col(np.zeros((1, 1, 5, 5)), 3, padding=-1), "padding"),
    (lambda: im2col(np.zeros((1, 1, 5, 5)), 3, dilation=3), "larger than the padded input"),
    (lambda: im2col(np.zeros((1, 1, 5, 5)), (3, 3, 3)), "pair"),
    (lambda: col2im(np.zeros((1, 3, 3, 1, 2, 2)), (1, 1, 5, 5), 3), "expected"),
])
def test_bad_arguments_raise_value_error(call, message):
    with pytest.raises(ValueError, match=message):
        call()


# ------------------------------------------------------------------ the CUDA source ------------

def test_cuda_kernels_use_64_bit_indices_only():
    # A 32-bit `int` index wraps past 2³¹ elements (8 GiB of float32 columns).
    import re
    assert re.search(r"\b(int|unsigned|size_t)\b", CUDA_SOURCE) is None


# The same kernel source, compiled for the CPU with a one-thread "grid", so the index arithmetic
# of both kernels is tested on every machine, GPU or not.
CPU_SHIM = r"""
struct Dim3 { long long x; };
static const Dim3 blockIdx = {0}, threadIdx = {0}, blockDim = {1}, gridDim = {1};
#define __global__
"""
EXPORTS = "".join(
    f'extern "C" void {kernel}_{ctype}(const {ctype}* src, {ctype}* dst, const long long* s) '
    f'{{ {kernel}_kernel<{ctype}>(src, dst, s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7], s[8], '
    f's[9], s[10], s[11], s[12], s[13], s[14]); }}\n'
    for kernel in ("im2col", "col2im") for ctype in ("float", "double"))


@pytest.fixture(scope="module")
def kernels_on_cpu(tmp_path_factory):
    compiler = shutil.which("g++") or shutil.which("clang++")
    if compiler is None:
        pytest.skip("no C++ compiler to build the CUDA source for the CPU")
    folder = tmp_path_factory.mktemp("kernels")
    (folder / "kernels.cpp").write_text(CPU_SHIM + CUDA_SOURCE + EXPORTS)
    subprocess.run([compiler, "-O1", "-shared", "-fPIC", "-o", str(folder / "kernels.so"),
                    str(folder / "kernels.cpp")], check=True, capture_output=True)
    return ctypes.CDLL(str(folder / "kernels.so"))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("x_shape, kernel, stride, padding, dilation", CASES)
def test_cuda_source_compiled_for_cpu_equals_the_slicing_path(kernels_on_cpu, dtype, x_shape, kernel,
                                                              stride, padding, dilation):
    ctype = "float" if dtype == np.float32 else "double"
    x = random_array(np, x_shape, dtype, seed=8)
    expected_col = im2col_by_slices(x, kernel, stride, padding, dilation)
    OH, OW = expected_col.shape[-2:]

    def run(name, source, target):
        sizes = np.array([target.size, *x_shape, *kernel, *stride, *padding, *dilation, OH, OW],
                         dtype=np.int64)
        getattr(kernels_on_cpu, f"{name}_{ctype}")(
            source.ctypes.data_as(ctypes.c_void_p), target.ctypes.data_as(ctypes.c_void_p),
            sizes.ctypes.data_as(ctypes.c_void_p))
        return target

    col = run("im2col", x, np.empty_like(expected_col))
    np.testing.assert_array_equal(col, expected_col)
    c = random_array(np, col.shape, dtype, seed=9)
    gx = run("col2im", c, np.empty(x_shape, dtype))
    np.testing.assert_array_equal(gx, col2im_by_slices(c, x_shape, kernel, stride, padding, dilation))
