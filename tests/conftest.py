"""Shared fixtures and options.

* ``xp``: the array module a test runs on: NumPy always, CuPy when a GPU is present (skipped
  otherwise). GPU tests are the same test functions, run with ``xp = cupy``.
* ``threads``: sets minicnn's CPU thread count for one test; ``cpu_kernels``: runs a test on the NumPy
  path and on the compiled kernels of ``minicnn.cpu`` (skipped without numba).
* ``--runslow`` runs the tests marked ``slow`` (full-size networks, long training); CI runs the
  fast, honest subset. ``pytest -m gpu`` runs only the GPU half.
"""
import numpy as np
import pytest

from minicnn import backend


def pytest_addoption(parser):
    parser.addoption("--runslow", action="store_true", default=False,
                     help="also run tests marked slow (big networks, long training)")


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: long-running; skipped unless --runslow is given")
    config.addinivalue_line("markers", "gpu: runs on CuPy; skipped without a CUDA GPU")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--runslow"):
        return
    skip = pytest.mark.skip(reason="slow: run with --runslow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(params=["numpy", pytest.param("cupy", marks=pytest.mark.gpu)])
def xp(request):
    """The array module under test: numpy, or cupy when a CUDA GPU is available."""
    if request.param == "numpy":
        return np
    if not backend.gpu_available():
        pytest.skip("CuPy with a CUDA GPU is not available")
    return backend.cupy()


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture
def threads():
    """Set minicnn's thread count inside a test (``threads(n)``); the previous count comes back afterwards."""
    import minicnn
    before = minicnn.get_num_threads()
    yield minicnn.set_num_threads
    minicnn.set_num_threads(before)


@pytest.fixture(params=["numpy", "kernels"])
def cpu_kernels(request):
    """Which CPU path an op with compiled kernels (``minicnn.cpu``) takes: "numpy" (kernels off) or
    "kernels" (on; skipped when numba is not installed). Yields True when the kernels are on."""
    from minicnn import cpu
    if request.param == "kernels" and not cpu.is_available():
        pytest.skip("numba is not installed: the compiled CPU kernels are not available")
    with cpu.flags(enabled=request.param == "kernels"):
        yield request.param == "kernels"
