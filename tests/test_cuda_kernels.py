"""The CUDA kernels of minicnn/cuda/ against the CPU implementations, on every machine.

Without a GPU the kernels run in tests/cuda_emulator.py: their CUDA source compiled with g++ and
launched thread by thread, behind a stand-in for ``cupy``, so that each functional op takes its GPU
branch on NumPy arrays and the whole wrapper path (dispatch, checks, launch, argument packing) runs.
Each test computes the op on the CPU path, then again under ``emulated_gpu``, checks that the kernels
it expects were launched, and compares: bit for bit where the kernel does the CPU's operations in the
CPU's order (im2col, col2im, max pooling, batch norm), to rounding where a sum runs in another order
or a libm function differs (LRN's power, cross-entropy's exp/log and row sums). The sources are also
compiled with nvcc, and when a GPU is present the ``gpu`` tests run the same comparisons on CuPy.
"The CPU path" is NumPy's: the compiled CPU kernels of ``minicnn.cpu`` are off in this file.
"""
import re
import shutil
import subprocess

import numpy as np
import pytest

import minicnn.functional as F
from minicnn import backend, cpu
from minicnn.autograd import Tensor
from minicnn.cuda import im2col_kernels, launch, loss_kernels, norm_kernels, pool_kernels
from minicnn.functional.im2col import col2im_by_slices, im2col_by_slices
from minicnn.functional.pool import MaxPooling2d, _pool_geometry

from cuda_emulator import EmulatedCupy, compiler, emulated_gpu

MODULES = {"im2col": im2col_kernels, "pool": pool_kernels, "norm": norm_kernels, "loss": loss_kernels}
TOLERANCE = {np.float32: dict(rtol=2e-6, atol=1e-6), np.float64: dict(rtol=1e-12, atol=1e-14)}


@pytest.fixture(autouse=True)
def numpy_cpu_path():
    """The CPU reference is the NumPy path, whose order of operations the CUDA kernels follow."""
    with cpu.flags(enabled=False):
        yield


@pytest.fixture(scope="module")
def emu(tmp_path_factory):
    """The emulated ``cupy`` (skips the test when there is no g++ to compile the kernels with)."""
    if compiler() is None:
        pytest.skip("g++ not found: the CUDA kernels cannot be emulated on the CPU")
    return EmulatedCupy(tmp_path_factory.mktemp("cuda_emulator"))


def on_cpu_and_emulated(emu, fn):
    """fn() on the CPU path, then on the emulated GPU path: (CPU result, emulated result, kernels launched)."""
    emu.take_launches()
    expected = fn()
    assert emu.take_launches() == [], "the CPU path launched a kernel"
    with emulated_gpu(emu):
        got = fn()
    return expected, got, [name for name, _, _ in emu.take_launches()]


def assert_same(expected, got, exact, dtype):
    assert len(expected) == len(got)
    for e, g in zip(expected, got):
        assert (e is None) == (g is None)
        if e is None:
            continue
        e, g = np.asarray(e), np.asarray(g)
        assert e.shape == g.shape and e.dtype == g.dtype
        if exact:
            np.testing.assert_array_equal(g, e)      # NaN == NaN here; signed zeros are not told apart
        else:
            np.testing.assert_allclose(g, e, **TOLERANCE[dtype])


def forward_backward(fn, inputs, seed):
    """y = fn(*inputs) with autograd, backward with a random upstream gradient: (y, grad of each input)."""
    tensors = [Tensor(a.copy(order="K"), requires_grad=a.dtype.kind == "f") for a in inputs]   # keeps strides
    y = fn(*tensors)
    xp = backend.get_array_module(y.data)
    gy = xp.asarray(np.random.default_rng(seed).standard_normal(y.shape).astype(y.dtype))
    y.backward(gy)
    return (y.data, *[None if t.grad is None else t.grad.data for t in tensors])


# ------------------------------------------------------------------ im2col / col2im -------------

IM2COL_CASES = [  # x_shape, kernel, stride, padding, dilation
    ((2, 3, 7, 6), (3, 3), (1, 1), (1, 1), (1, 1)),
    ((1, 2, 9, 8), (3, 2), (2, 3), (1, 0), (2, 1)),
    ((2, 1, 5, 5), (5, 5), (1, 1), (2, 2), (1, 1)),
    ((3, 2, 4, 7), (1, 1), (2, 2), (0, 0), (1, 1)),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("x_shape, kernel, stride, padding, dilation", IM2COL_CASES)
def test_im2col_and_col2im_kernels_equal_the_slicing_path_bit_for_bit(emu, dtype, x_shape, kernel, stride,
                                                                       padding, dilation):
    rng = np.random.default_rng(1)
    x = rng.standard_normal(x_shape).astype(dtype)
    args = kernel, stride, padding, dilation
    col = im2col_by_slices(x, *args)
    c = rng.standard_normal(col.shape).astype(dtype)
    with emulated_gpu(emu):
        got_col, got_x = F.im2col(x, *args), F.col2im(c, x_shape, *args)
    assert [name for name, _, _ in emu.take_launches()] == [f"im2col_kernel<{launch.CTYPES[np.dtype(dtype)]}>",
                                      f"col2im_kernel<{launch.CTYPES[np.dtype(dtype)]}>"]
    np.testing.assert_array_equal(got_col, col)
    np.testing.assert_array_equal(got_x, col2im_by_slices(c, x_shape, *args))


# ------------------------------------------------------------------ max pooling ----------------

POOL_CASES = [  # x_shape, kernel, stride, padding, dilation, ceil_mode
    ((2, 3, 7, 8), 3, 2, 1, 1, True),                        # overlapping 3×3/2, padded, ceil mode
    ((1, 2, 6, 6), 2, None, 0, 1, False),                    # 2×2/2
    ((2, 2, 9, 7), (3, 2), (1, 2), (1, 0), (2, 1), True),    # rectangular, dilated
    ((1, 1, 5, 5), 2, 3, 1, 1, True),                        # stride > kernel: ceil mode drops a window
    ((1, 2, 1, 4), 2, 1, 1, 2, False),                       # taps on rows −1 and 1 only: all padding
    ((3, 1, 4, 4), 1, 1, 0, 1, False),                       # 1×1
]


def pool_input(kind, shape, dtype, seed):
    rng = np.random.default_rng(seed)
    if kind == "normal":
        return rng.standard_normal(shape).astype(dtype)
    x = rng.integers(-2, 3, shape).astype(dtype)             # "ties": many equal maxima
    if kind == "special":
        flat = x.reshape(-1)
        flat[rng.choice(flat.size, size=min(flat.size, 6), replace=False)] = [np.nan, -np.inf, np.inf,
                                                                              np.nan, -np.inf, 7][:min(flat.size, 6)]
    return x


def max_pool(x, kernel, stride, padding, dilation, ceil_mode):
    """MaxPooling2d's forward and backward (random gy): y, tap, the int64 indices and gx."""
    pool = MaxPooling2d(_pool_geometry("max_pool2d", x.shape, kernel, stride, padding, dilation, ceil_mode))
    y = pool.forward(x)
    gy = backend.get_array_module(x).asarray(np.random.default_rng(3).standard_normal(y.shape).astype(x.dtype))
    return y, pool.tap, pool.indices(), pool.backward(gy)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("values", ["normal", "ties", "special"])
@pytest.mark.parametrize("x_shape, kernel, stride, padding, dilation, ceil_mode", POOL_CASES)
def test_max_pool_kernels_equal_the_cpu_path_bit_for_bit(emu, dtype, values, x_shape, kernel, stride, padding,
                                                          dilation, ceil_mode):
    x = pool_input(values, x_shape, dtype, seed=2)
    expected, got, kernels = on_cpu_and_emulated(emu, lambda: max_pool(x, kernel, stride, padding, dilation, ceil_mode))
    ctype = launch.CTYPES[np.dtype(dtype)]
    assert kernels == [f"max_pool2d_forward_kernel<{ctype}>", f"max_pool2d_backward_kernel<{ctype}>"]
    assert got[1].dtype == np.int32
    assert_same(expected, got, exact=True, dtype=dtype)


def test_max_pool_kernel_keeps_the_first_maximum_and_lets_nan_win(emu):
    x = np.array([[[[1.0, 3.0, 3.0, 2.0], [np.nan, 0.0, 5.0, np.nan]]]])     # windows 2×2/2
    with emulated_gpu(emu):
        y, tap, _, gx = max_pool(x, 2, 2, 0, 1, False)
    np.testing.assert_array_equal(y, [[[[np.nan, np.nan]]]])
    np.testing.assert_array_equal(tap, [[[[2, 3]]]])      # (1, 0) is NaN; (1, 1): the later NaN wins over 3, 5
    gy = np.random.default_rng(3).standard_normal(y.shape)
    np.testing.assert_array_equal(gx, [[[[0, 0, 0, 0], [gy[0, 0, 0, 0], 0, 0, gy[0, 0, 0, 1]]]]])
    x = np.array([[[[-np.inf, 2.0, 2.0, -np.inf, -np.inf]]]])
    with emulated_gpu(emu):
        y, tap, _, _ = max_pool(x, (1, 2), (1, 1), 0, 1, False)
    np.testing.assert_array_equal(tap, [[[[1, 0, 0, 0]]]])   # the first of equal maxima wins, −inf ties too
    np.testing.assert_array_equal(y, [[[[2, 2, 2, -np.inf]]]])


def test_max_pool_through_autograd_and_return_indices(emu):
    x = pool_input("ties", (2, 3, 8, 8), np.float32, seed=5)
    run = lambda: forward_backward(lambda t: F.max_pool2d(t, 3, 2, 1, ceil_mode=True), [x], seed=6)
    expected, got, kernels = on_cpu_and_emulated(emu, run)
    assert kernels == ["max_pool2d_forward_kernel<float>", "max_pool2d_backward_kernel<float>"]
    assert_same(expected, got, exact=True, dtype=np.float32)


def test_grid_stride_loops_cover_more_elements_than_threads(emu, monkeypatch):
    # 2 blocks of 32 threads for hundreds of elements (and 100 rows): every thread walks its loop.
    monkeypatch.setattr(launch, "THREADS", 32)
    monkeypatch.setattr(launch, "MAX_BLOCKS", 2)
    x = pool_input("ties", (2, 3, 9, 9), np.float64, seed=7)
    a = np.random.default_rng(8).standard_normal((3, 7, 5, 5))
    logits = np.random.default_rng(10).standard_normal((100, 4))
    runs = [lambda: max_pool(x, 3, 2, 1, 1, True),
            lambda: forward_backward(lambda t: F.local_response_norm(t, 5), [a], 9),
            lambda: batch_norm_run(a, True, fused=True),
            lambda: cross_entropy_run(logits, np.arange(100) % 4)]
    for run, exact in zip(runs, [True, False, True, False]):
        expected = run()
        with emulated_gpu(emu):
            got = run()
        assert_same(expected, got, exact=exact, dtype=np.float64)
        launches = emu.take_launches()
        assert len(launches) == 2 and all(grid == (2, 1, 1) and block == (32, 1, 1) for _, grid, block in launches)


# ------------------------------------------------------------------ local response norm --------

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(2, 7, 3, 4), (3, 1, 5), (1, 6, 2, 2, 3)])
@pytest.mark.parametrize("size", [1, 2, 3, 4, 5, 9])
@pytest.mark.parametrize("convention", ["pytorch", "paper"])
def test_lrn_kernels_equal_the_cpu_path(emu, dtype, shape, size, convention):
    a = (np.random.default_rng(11).standard_normal(shape) * 4).astype(dtype)
    lrn = lambda t: F.local_response_norm(t, size, alpha=0.05, beta=0.75, k=2.0, convention=convention)
    expected, got, kernels = on_cpu_and_emulated(emu, lambda: forward_backward(lrn, [a], seed=12))
    ctype = launch.CTYPES[np.dtype(dtype)]
    assert kernels == [f"lrn_forward_kernel<{ctype}>", f"lrn_backward_kernel<{ctype}>"]
    assert_same(expected, got, exact=False, dtype=dtype)


# ------------------------------------------------------------------ batch norm -----------------

def batch_norm_run(x, training, fused, seed=13):
    """batch_norm or batch_norm_relu forward + backward; also the updated running statistics."""
    rng, xp = np.random.default_rng(seed), backend.get_array_module(x)
    C, dtype = x.shape[1], x.dtype
    vectors = lambda *arrays: [xp.asarray(a.astype(dtype)) for a in arrays]
    running = vectors(rng.standard_normal(C), rng.random(C) + 0.5)
    op = F.batch_norm_relu if fused else F.batch_norm
    fn = lambda t, g, b: op(t, running[0], running[1], g, b, training=training, momentum=0.2)
    gamma, beta = vectors(rng.standard_normal(C), rng.standard_normal(C))
    return (*forward_backward(fn, [x, gamma, beta], seed=seed + 1), *running)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(6, 3), (4, 5, 3, 2), (2, 3, 7)])
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("fused", [False, True])
def test_batch_norm_kernels_equal_the_cpu_path_bit_for_bit(emu, dtype, shape, training, fused):
    x = (np.random.default_rng(14).standard_normal(shape) * 2 + 1).astype(dtype)
    expected, got, kernels = on_cpu_and_emulated(emu, lambda: batch_norm_run(x, training, fused))
    ctype = launch.CTYPES[np.dtype(dtype)]
    assert kernels == [f"batch_norm_forward_kernel<{ctype}>"] + [f"batch_norm_backward_kernel<{ctype}>"] * training
    if fused:
        assert (got[0] == 0).any() and (got[0] > 0).any()
    assert_same(expected, got, exact=True, dtype=dtype)   # y, gx, gγ, gβ, running mean and variance


def test_fused_batch_norm_relu_kernel_equals_relu_of_batch_norm(emu):
    x = np.random.default_rng(15).standard_normal((5, 4, 3, 3))
    with emulated_gpu(emu):
        fused = batch_norm_run(x, True, fused=True)
        separate = batch_norm_run(x, True, fused=False)
    np.testing.assert_array_equal(fused[0], np.maximum(separate[0], 0))
    assert [name for name, _, _ in emu.take_launches()].count("batch_norm_forward_kernel<double>") == 2


# ------------------------------------------------------------------ cross-entropy --------------

def cross_entropy_run(logits, target, **options):
    """cross_entropy forward + backward; the target's gradient too when it is a soft target."""
    return forward_backward(lambda x, t: F.cross_entropy(x, t, **options), [logits, target], seed=16)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("soft", [False, True])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("smoothing", [(0.0, "pytorch"), (0.1, "pytorch"), (0.2, "k-1")])
def test_cross_entropy_kernels_equal_the_cpu_path(emu, dtype, soft, reduction, smoothing):
    rng = np.random.default_rng(17)
    logits = (rng.standard_normal((7, 5)) * 4).astype(dtype)
    target = rng.dirichlet(np.ones(5), 7).astype(dtype) if soft else rng.integers(0, 5, 7)
    options = dict(reduction=reduction, label_smoothing=smoothing[0], smoothing_convention=smoothing[1])
    expected, got, kernels = on_cpu_and_emulated(emu, lambda: cross_entropy_run(logits, target, **options))
    ctype = launch.CTYPES[np.dtype(dtype)]
    assert kernels == [f"cross_entropy_forward_kernel<{ctype}>", f"cross_entropy_backward_kernel<{ctype}>"]
    assert (got[2] is not None) == soft
    assert_same(expected, got, exact=False, dtype=dtype)


def test_cross_entropy_kernel_is_stable_and_handles_an_empty_batch(emu):
    logits = np.array([[0.0, 2000.0, -2000.0], [1e4, 1e4, 1e4]])
    expected, got, _ = on_cpu_and_emulated(emu, lambda: cross_entropy_run(logits, np.array([0, 2]), reduction="none"))
    assert np.isfinite(got[0]).all()
    np.testing.assert_allclose(got[0], [2000.0, np.log(3)], rtol=1e-15)
    assert_same(expected, got, exact=False, dtype=np.float64)
    for reduction in ("sum", "none"):
        empty = lambda: cross_entropy_run(np.zeros((0, 4)), np.zeros(0, np.int64), reduction=reduction)
        expected, got, _ = on_cpu_and_emulated(emu, empty)
        assert got[1].shape == (0, 4)
        assert_same(expected, got, exact=True, dtype=np.float64)


# ------------------------------------------------------------------ strided inputs --------------

def test_kernel_paths_take_strided_views(emu):
    # A kernel reads flat offsets from the first element: the wrappers must copy views to C order
    # (the emulator raises on a non-contiguous array, as a GPU would silently misread it).
    rng = np.random.default_rng(18)
    wide = rng.standard_normal((3, 4, 10, 9))
    x = wide[:, 1:, ::2, :].transpose(0, 1, 3, 2)                      # (3, 3, 9, 5), strided
    logits = rng.standard_normal((6, 8)).T                              # (8, 6), Fortran order
    soft = rng.dirichlet(np.ones(8), 6).T
    runs = [lambda: forward_backward(lambda t: F.max_pool2d(t, 2, 1, 1), [x], 19),
            lambda: forward_backward(lambda t: F.local_response_norm(t, 3), [x], 20),
            lambda: batch_norm_run(x, True, fused=False),
            lambda: forward_backward(lambda v, t: F.cross_entropy(v, t), [logits, np.arange(8) % 6], 21),
            lambda: forward_backward(lambda v, t: F.cross_entropy(v, t), [logits, soft], 22)]
    assert not x.flags.c_contiguous and not x.copy(order="K").flags.c_contiguous
    for run in runs:
        expected, got, kernels = on_cpu_and_emulated(emu, run)
        assert len(kernels) == 2
        assert_same(expected, got, exact=False, dtype=np.float64)


# ------------------------------------------------------------------ bad input, the emulator -----

def test_kernel_wrappers_reject_what_the_kernels_cannot_index(emu):
    geometry = _pool_geometry("max_pool2d", (1, 1, 4, 4), 2, None, 0, 1, False)
    with emulated_gpu(emu):
        with pytest.raises(ValueError, match=r"max_pool2d backward: expected tap .*int32.*got .*int64"):
            pool_kernels.max_pool2d_backward(np.zeros((1, 1, 2, 2)), np.zeros((1, 1, 2, 2), np.int64), geometry)
        with pytest.raises(ValueError, match=r"batch_norm: expected scale with 3 values.*got shape \(2,\)"):
            norm_kernels.batch_norm_forward(np.zeros((2, 3)), np.zeros(3), np.zeros(2), np.zeros(3))
        with pytest.raises(ValueError, match=r"cross_entropy: expected class indices of shape \(2,\)"):
            loss_kernels.cross_entropy_forward(np.zeros((2, 3)), np.zeros(2, np.float32), 1.0, 0.0)
        with pytest.raises(ValueError, match="local_response_norm backward: expected gy of shape"):
            norm_kernels.lrn_backward(np.zeros((1, 2, 3)), np.zeros((1, 2, 4)), np.zeros((1, 2, 3)),
                                      np.zeros((1, 2, 3)), 3, 1e-4, 0.75)


def test_the_emulator_checks_arguments_against_the_kernel_signature(emu):
    with emulated_gpu(emu):
        function = launch.kernel(pool_kernels.CUDA_SOURCE, pool_kernels._KERNELS, "max_pool2d_backward_kernel",
                                 np.float32)
    gy, tap, gx = np.zeros((1, 1, 2, 2), np.float32), np.zeros((1, 1, 2, 2), np.int32), np.zeros((1, 1, 4, 4),
                                                                                                 np.float32)
    sizes = launch.int64s(16, 4, 4, 2, 2, 2, 2, 0, 0, 1, 1, 2, 2)
    function((1,), (32,), (gy, tap, gx, *sizes))                           # well-typed: runs
    for args, message in [((gy, tap.astype(np.int64), gx, *sizes), "int32 pointer, got an array of dtype int64"),
                          ((gy, tap, gx, 16, *sizes[1:]), "int64 scalar, got int"),
                          ((gy, tap, gx, *sizes[:-1]), "takes 16 arguments, got 15"),
                          ((gy, tap, np.zeros((1, 1, 4, 8), np.float32)[..., ::2], *sizes), "C-contiguous")]:
        with pytest.raises(TypeError, match=message):
            function((1,), (32,), args)


# ------------------------------------------------------------------ the sources -----------------

@pytest.mark.parametrize("name", MODULES)
def test_sources_avoid_what_nvrtc_lacks_and_what_breaks_determinism(name):
    source = MODULES[name].CUDA_SOURCE
    # NVRTC (CuPy's compiler) has no host headers: no INFINITY/NAN macros, no #include.
    assert re.search(r"#include|\bINFINITY\b|\bNAN\b|HUGE_VAL", source) is None
    # No inter-thread communication: deterministic, and exact under the serial emulator.
    assert re.search(r"atomic|__shared__|__syncthreads|__shfl", source) is None
    # 64-bit indices: `int` only for pool's int32 tap array, never an index variable.
    assert re.findall(r"\b(?:unsigned|size_t|short)\b|\bint\b(?!\*| \*|\))", source) == []


@pytest.mark.parametrize("name", MODULES)
def test_sources_compile_with_nvcc(name, tmp_path):
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        pytest.skip("nvcc not found")
    module = MODULES[name]
    kernels = [k for k in vars(module)["_KERNELS"]]
    # Taking each instantiation's address instantiates it, as CuPy's name_expressions do.
    uses = "".join(f"void* instance_{i}_{ctype} = (void*)&{k}<{ctype}>;\n"
                   for i, k in enumerate(kernels) for ctype in ("float", "double"))
    (tmp_path / "kernels.cu").write_text(module.CUDA_SOURCE + uses)
    result = subprocess.run([nvcc, "-std=c++17", "-c", "-x", "cu", "-Werror", "all-warnings",
                             "-o", str(tmp_path / "kernels.o"), str(tmp_path / "kernels.cu")],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr


# ------------------------------------------------------------------ on a real GPU ---------------

@pytest.mark.gpu
def test_real_gpu_kernels_agree_with_the_cpu():
    if not backend.gpu_available():
        pytest.skip("CuPy with a CUDA GPU is not available")
    cp = backend.cupy()
    on_gpu = lambda fn, *arrays: [None if a is None else cp.asnumpy(a) for a in fn(*map(cp.asarray, arrays))]
    x = pool_input("special", (2, 3, 7, 8), np.float32, seed=2)
    expected = max_pool(x, 3, 2, 1, 1, True)
    assert_same(expected, on_gpu(lambda a: max_pool(a, 3, 2, 1, 1, True), x), exact=True, dtype=np.float32)
    a = np.random.default_rng(11).standard_normal((2, 7, 3, 4))
    lrn = lambda v: forward_backward(lambda t: F.local_response_norm(t, 5), [v], seed=12)
    assert_same(lrn(a), on_gpu(lrn, a), exact=False, dtype=np.float64)
    bn = lambda v: batch_norm_run(v, True, fused=True)
    assert_same(bn(a), on_gpu(bn, a), exact=False, dtype=np.float64)     # fused multiply-add: not bit for bit
    logits, target = a.reshape(12, 7), np.arange(12) % 7
    ce = lambda v, t: cross_entropy_run(v, t, label_smoothing=0.1)
    assert_same(ce(logits, target), on_gpu(ce, logits, target), exact=False, dtype=np.float64)
