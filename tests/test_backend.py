"""The array backend: which module an array lives in, devices, the default dtype, mixed-device errors,
and a fast ``import minicnn`` that pulls in neither matplotlib nor CuPy."""
import json
import subprocess
import sys

import numpy as np
import pytest

import minicnn
from minicnn import Tensor, backend, nn
from minicnn.backend import BackendMismatchError
from minicnn.functional import math as M
from minicnn.functional.linear import linear

needs_gpu = pytest.mark.skipif(not backend.gpu_available(), reason="needs CuPy and a CUDA GPU")
needs_no_gpu = pytest.mark.skipif(backend.gpu_available(), reason="checks the error raised without a GPU")


@pytest.mark.parametrize("value", [np.zeros(3), Tensor(np.zeros(3)), 1.5, 3, np.float64(2.0), np.int32(1),
                                   None, [1.0, 2.0]],
                         ids=["ndarray", "Tensor", "float", "int", "np.float64", "np.int32", "None", "list"])
def test_get_array_module_gives_numpy_for_cpu_values(value):
    assert backend.get_array_module(value) is np
    assert backend.device_of(value) == "cpu"


def test_get_array_module_follows_the_array_of_any_argument(xp):
    assert backend.get_array_module(1.0, xp.zeros(2), None) is xp
    assert backend.get_array_module(Tensor(xp.zeros(2))) is xp
    assert Tensor(xp.zeros(2)).device == ("cpu" if xp is np else "cuda")


def test_default_dtype_is_float32():
    assert backend.get_default_dtype() == np.float32
    assert minicnn.get_default_dtype() == np.float32


def test_backend_mismatch_error_is_a_type_error():
    assert issubclass(BackendMismatchError, TypeError)


def test_numpy_only_operands_pass_the_device_check():
    backend.check_same_backend("add", np.zeros(2), Tensor(np.ones(2)), 3.0, None)


def test_to_device_cpu_returns_numpy_and_unknown_devices_are_named():
    a = np.arange(3.0)
    assert backend.to_device(a, "cpu") is a
    np.testing.assert_array_equal(backend.as_numpy(a), a)
    with pytest.raises(ValueError, match="'tpu'"):
        backend.to_device(a, "tpu")


@needs_no_gpu
def test_moving_to_cuda_without_a_gpu_says_what_is_missing():
    with pytest.raises(RuntimeError, match="cuda"):
        Tensor([1.0]).to("cuda")
    with pytest.raises(RuntimeError, match="cuda"):
        nn.Linear(2, 3).to("cuda")


def test_tensor_to_its_own_device_is_a_no_op():
    t = Tensor([1.0, 2.0], requires_grad=True)
    assert t.to("cpu") is t
    assert t.cpu() is t


def test_tensor_to_a_dtype_is_differentiable():
    t = Tensor(np.array([1.0, 2.0], np.float32), requires_grad=True)
    d = t.to(np.float64)
    assert d.dtype == np.float64 and t.double().dtype == np.float64
    (d * d).sum().backward()
    assert t.grad.dtype == np.float32
    np.testing.assert_array_equal(t.grad.data, [2.0, 4.0])


def test_import_minicnn_is_fast_and_loads_neither_matplotlib_nor_cupy():
    code = ("import sys, time, json; t = time.perf_counter(); import minicnn; "
            "print(json.dumps([time.perf_counter() - t, 'matplotlib' in sys.modules, 'cupy' in sys.modules]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    seconds, has_matplotlib, has_cupy = json.loads(out.stdout.strip().splitlines()[-1])
    assert seconds < 1.0, f"import minicnn took {seconds:.2f} s"
    assert not has_matplotlib
    assert not has_cupy


# ---------------------------------------------------------------- GPU only ---------------------

@needs_gpu
@pytest.mark.gpu
@pytest.mark.parametrize("make", [
    lambda a, b: a + b,
    lambda a, b: a * b,
    lambda a, b: a @ b,
    lambda a, b: linear(a, b),
    lambda a, b: M.cat([a, b]),
    lambda a, b: a.data + b,             # a NumPy array meeting a CuPy tensor
    lambda a, b: a < b,
], ids=["add", "mul", "matmul", "linear", "cat", "ndarray+tensor", "compare"])
def test_mixing_numpy_and_cupy_raises_naming_the_operation(make):
    cp = backend.cupy()
    a = Tensor(np.ones((2, 2)), requires_grad=True)
    b = Tensor(cp.ones((2, 2)), requires_grad=True)
    with pytest.raises(BackendMismatchError, match=r"(?i)(add|mul|matmul|linear|concat|lt)\b.*cpu.*cuda"):
        make(a, b)


@needs_gpu
@pytest.mark.gpu
def test_tensor_round_trip_to_cuda_and_back_keeps_values_and_gradient():
    cp = backend.cupy()
    t = Tensor(np.array([1.0, 2.0, 3.0]), requires_grad=True)
    g = t.to("cuda")
    assert isinstance(g.data, cp.ndarray) and g.device == "cuda"
    back = (g * 2.0).cpu()
    assert isinstance(back.data, np.ndarray)
    np.testing.assert_array_equal(back.data, [2.0, 4.0, 6.0])
    back.sum().backward()
    assert isinstance(t.grad.data, np.ndarray)
    np.testing.assert_array_equal(t.grad.data, [2.0, 2.0, 2.0])


@needs_gpu
@pytest.mark.gpu
def test_module_round_trip_to_cuda_keeps_the_parameter_objects_and_values():
    cp = backend.cupy()
    model = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
    model.register_buffer("counter", np.arange(3))
    params = list(model.parameters())
    before = {k: np.array(v) for k, v in model.state_dict().items()}
    model.to("cuda")
    assert [id(p) for p in model.parameters()] == [id(p) for p in params]
    assert all(isinstance(p.data, cp.ndarray) for p in model.parameters())
    assert isinstance(model.counter, cp.ndarray)
    y = model(Tensor(cp.ones((5, 3))))
    y.sum().backward()
    assert all(isinstance(p.grad.data, cp.ndarray) for p in model.parameters())
    model.cpu()
    assert all(isinstance(p.grad.data, np.ndarray) for p in model.parameters())
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, before[k])


# ---------------------------------------------------------------- float32 matmul precision (TF32) ----

@pytest.fixture
def restore_matmul_precision():
    """Put the precision back (listed before monkeypatch, so that it runs after a fake GPU is gone)."""
    before = backend.get_float32_matmul_precision()
    yield
    backend.set_float32_matmul_precision(before)


class _FakeGPU:
    """Stands in for CuPy, its GEMM dispatch and cuBLAS, recording what set_float32_matmul_precision sets."""

    def __init__(self, compute_capability):
        import types
        self.calls = []
        self.cupy = types.SimpleNamespace(cuda=types.SimpleNamespace(
            Device=lambda: types.SimpleNamespace(compute_capability=compute_capability),
            device=types.SimpleNamespace(get_cublas_handle=lambda: 1234)))
        self.linalg = types.ModuleType("cupy._core._routines_linalg")
        self.linalg.COMPUTE_TYPE_DEFAULT, self.linalg.COMPUTE_TYPE_TF32 = 1, 7
        self.linalg.set_compute_type = lambda dtype, kind: self.calls.append(("compute_type", np.dtype(dtype), kind))
        self.cublas = types.ModuleType("cupy_backends.cuda.libs.cublas")
        self.cublas.CUBLAS_DEFAULT_MATH, self.cublas.CUBLAS_TF32_TENSOR_OP_MATH = 0, 3
        self.cublas.setMathMode = lambda handle, mode: self.calls.append(("math_mode", handle, mode))

    def install(self, monkeypatch):
        import types
        core = types.ModuleType("cupy._core")
        core._routines_linalg = self.linalg
        libs = types.ModuleType("cupy_backends.cuda.libs")
        libs.cublas = self.cublas
        for name, module in {"cupy": types.ModuleType("cupy"), "cupy._core": core,
                             "cupy._core._routines_linalg": self.linalg, "cupy_backends": types.ModuleType("cupy_backends"),
                             "cupy_backends.cuda": types.ModuleType("cupy_backends.cuda"),
                             "cupy_backends.cuda.libs": libs, "cupy_backends.cuda.libs.cublas": self.cublas}.items():
            monkeypatch.setitem(sys.modules, name, module)
        monkeypatch.setattr(backend, "gpu_available", lambda: True)
        monkeypatch.setattr(backend, "cupy", lambda: self.cupy)


def test_float32_matmul_precision_is_highest_by_default_and_checked(restore_matmul_precision):
    assert minicnn.get_float32_matmul_precision() == "highest"
    with pytest.raises(ValueError, match=r"set_float32_matmul_precision: expected 'highest', 'high' or 'medium', got 'tf32'"):
        minicnn.set_float32_matmul_precision("tf32")
    assert minicnn.get_float32_matmul_precision() == "highest"


@pytest.mark.parametrize("precision, tf32", [("high", True), ("medium", True), ("highest", False)])
def test_float32_matmul_precision_sets_cupys_compute_type_and_the_cublas_math_mode(
        precision, tf32, restore_matmul_precision, monkeypatch):
    gpu = _FakeGPU(compute_capability="90")
    gpu.install(monkeypatch)
    minicnn.set_float32_matmul_precision(precision)
    assert minicnn.get_float32_matmul_precision() == precision
    assert gpu.calls == [("compute_type", np.dtype(np.float32), 7 if tf32 else 1), ("math_mode", 1234, 3 if tf32 else 0)]


def test_tf32_is_not_asked_of_a_gpu_older_than_ampere(restore_matmul_precision, monkeypatch):
    gpu = _FakeGPU(compute_capability="70")
    gpu.install(monkeypatch)
    minicnn.set_float32_matmul_precision("high")
    assert gpu.calls == [("compute_type", np.dtype(np.float32), 1), ("math_mode", 1234, 0)]


def test_a_cupy_without_the_calls_it_needs_is_a_clear_error(restore_matmul_precision, monkeypatch):
    gpu = _FakeGPU(compute_capability="90")
    del gpu.cublas.setMathMode
    gpu.install(monkeypatch)
    with pytest.raises(RuntimeError, match=r"set_float32_matmul_precision: this CuPy .* lacks .*setMathMode"):
        minicnn.set_float32_matmul_precision("high")
    assert minicnn.get_float32_matmul_precision() == "highest"          # not recorded as set


def test_without_a_gpu_the_precision_is_only_recorded(restore_matmul_precision, monkeypatch):
    gpu = _FakeGPU(compute_capability="90")
    gpu.install(monkeypatch)
    monkeypatch.setattr(backend, "gpu_available", lambda: False)
    minicnn.set_float32_matmul_precision("high")
    assert gpu.calls == [] and minicnn.get_float32_matmul_precision() == "high"


@needs_gpu
@pytest.mark.gpu
def test_tf32_rounds_float32_products_on_the_gpu_and_highest_does_not(restore_matmul_precision):
    """Products of random float32 matrices against float64: TF32 (10-bit mantissa) errs ~1e-3
    relative, float32 ~1e-6; both the 2-D and the batched (3-D) cupy.matmul paths."""
    cp = backend.cupy()
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((4, 256, 256)).astype(np.float32) for _ in range(2))
    exact = np.matmul(a.astype(np.float64), b.astype(np.float64))

    def errors():
        two_d = cp.asnumpy(cp.matmul(cp.asarray(a[0]), cp.asarray(b[0])))
        batched = cp.asnumpy(cp.matmul(cp.asarray(a), cp.asarray(b)))
        return [float(np.abs(p - e).max() / np.abs(e).max()) for p, e in ((two_d, exact[0]), (batched, exact))]

    minicnn.set_float32_matmul_precision("highest")
    assert max(errors()) < 1e-5
    minicnn.set_float32_matmul_precision("high")
    if int(cp.cuda.Device().compute_capability) >= 80:
        assert min(errors()) > 1e-4
    else:
        assert max(errors()) < 1e-5
