"""minicnn's CPU threads (minicnn.parallel): set/get_num_threads, the run() primitive, and conv2d cut
into one share of the batch per thread giving the gradients of one thread (float64, tight)."""
import os
import threading

import numpy as np
import pytest

import minicnn
from minicnn import Tensor, parallel
from minicnn.functional.conv import Conv2dFunction, conv2d
from minicnn.gradcheck import gradcheck


def blas_threads():
    """The thread counts of the BLAS libraries minicnn holds: those loaded when its first parallel region
    ran (NumPy's). Others loaded later (importing numba loads SciPy's OpenBLAS) are not minicnn's GEMMs'."""
    from threadpoolctl import threadpool_info
    controller = parallel._blas_controller()
    ours = {lib.filepath for lib in controller.lib_controllers} if controller else set()
    return [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas" and lib["filepath"] in ours]


def test_set_and_get_num_threads(threads):
    threads(3)
    assert minicnn.get_num_threads() == 3 and parallel.get_num_threads() == 3
    for bad in (0, -1, 1.5, "2", True):
        with pytest.raises(ValueError, match=r"set_num_threads: the number of threads must be a positive int"):
            minicnn.set_num_threads(bad)
    assert minicnn.get_num_threads() == 3


def test_run_spreads_shares_over_threads_and_keeps_their_order(threads):
    threads(3)
    barrier = threading.Barrier(3, timeout=10)     # passes only if three shares run at the same time

    def work(share):
        barrier.wait()
        return share * 10, threading.current_thread().name
    results = parallel.run(work, [1, 2, 3])
    assert [r[0] for r in results] == [10, 20, 30]
    assert len({r[1] for r in results}) == 3


def test_run_holds_blas_at_one_thread_inside_and_restores_it(threads):
    threads(2)
    before = blas_threads()
    if not before:
        pytest.skip("threadpoolctl sees no BLAS library")
    inside = parallel.run(lambda share: blas_threads(), [0, 1])
    assert inside == [[1] * len(before)] * 2
    assert blas_threads() == before


def test_run_waits_for_every_share_then_raises_the_first_error(threads):
    threads(2)
    finished = []

    def work(share):
        if share == 0:
            raise RuntimeError("share 0 failed")
        threading.Event().wait(0.2)
        finished.append(share)
    with pytest.raises(RuntimeError, match="share 0 failed"):
        parallel.run(work, [0, 1])
    assert finished == [1]
    assert parallel._active == 0


def test_a_nested_run_stays_on_its_worker(threads):
    threads(2)
    names = parallel.run(lambda share: {t for t in parallel.run(
        lambda inner: threading.current_thread().name, [0, 1])}, [0, 1])
    assert all(len(n) == 1 for n in names)


def test_one_thread_or_one_share_runs_inline(threads):
    threads(1)
    main = threading.current_thread().name
    assert parallel.run(lambda s: threading.current_thread().name, [0, 1, 2]) == [main] * 3


# (x shape, Cout, kernel, stride, padding, dilation, groups): a stride-1 conv (gx by convolution),
# a strided one (gx by col2im), a grouped dilated one.
CONVS = [((5, 3, 7, 6), 4, (3, 3), 1, 1, 1, 1),
         ((7, 4, 9, 8), 6, (3, 3), 2, 1, 1, 1),
         ((6, 6, 8, 7), 3, (2, 3), (1, 2), (1, 0), (2, 1), 3)]


def conv_grads(x, weight, bias, gy, hyper):
    x, weight, bias = (Tensor(a, requires_grad=True) for a in (x, weight, bias))
    y = conv2d(x, weight, bias, **hyper)
    y.backward(gy)
    return [y.data, x.grad.data, weight.grad.data, bias.grad.data]


@pytest.mark.parametrize("cached", [False, True], ids=["columns remade", "columns kept"])
@pytest.mark.parametrize("case", CONVS)
def test_conv2d_on_several_threads_equals_one_thread(threads, monkeypatch, case, cached):
    x_shape, Cout, kernel, stride, padding, dilation, groups = case
    rng = np.random.default_rng(0)
    x = rng.standard_normal(x_shape)
    weight = rng.standard_normal((Cout, x_shape[1] // groups, *kernel))
    bias = rng.standard_normal(Cout)
    hyper = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    gy = rng.standard_normal(conv2d(x, weight, **hyper).shape)
    threads(1)
    one = conv_grads(x, weight, bias, gy, hyper)
    monkeypatch.setattr(Conv2dFunction, "min_share_columns", 1)
    monkeypatch.setattr(Conv2dFunction, "min_chunk_columns", 1)
    if not cached:      # one image per chunk: several chunks per share, columns made again in backward
        monkeypatch.setattr(Conv2dFunction, "chunk_bytes", {"cpu": 1})
    threads(3)
    f = Conv2dFunction(**hyper)
    f.needs_input_grad = (True, True, True)
    f.forward(x, weight, bias)
    assert [s.stop - s.start for s in f._shares(x, weight)] in ([1, 2, 2], [2, 2, 2], [2, 2, 3], [2, 3, 2])
    by_convolution = f._input_gradient_is_a_convolution(weight)   # then backward uses gy's columns, not x's
    assert (f.cols is not None) == (cached and not by_convolution)
    many = conv_grads(x, weight, bias, gy, hyper)
    for a, b, what in zip(many, one, ("y", "gx", "gW", "gb")):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12, err_msg=what)


def test_conv2d_gradcheck_on_three_threads(threads, monkeypatch):
    monkeypatch.setattr(Conv2dFunction, "min_share_columns", 1)
    monkeypatch.setattr(Conv2dFunction, "chunk_bytes", {"cpu": 1})
    monkeypatch.setattr(Conv2dFunction, "min_chunk_columns", 1)
    threads(3)
    rng = np.random.default_rng(1)
    x = Tensor(rng.standard_normal((4, 4, 6, 5)), requires_grad=True)
    weight = Tensor(rng.standard_normal((6, 2, 3, 3)), requires_grad=True)
    bias = Tensor(rng.standard_normal(6), requires_grad=True)
    assert gradcheck(lambda x, w, b: conv2d(x, w, b, stride=(2, 1), padding=1, groups=2), (x, weight, bias))
    assert gradcheck(lambda x, w, b: conv2d(x, w, b, padding=1, groups=2), (x, weight, bias))


def test_small_batches_are_split_less(threads):
    threads(4)
    f = Conv2dFunction(padding=1)
    weight = np.zeros((2, 3, 3, 3))
    assert len(f._shares(np.zeros((2, 3, 8, 8)), weight)) == 1        # 128 columns < 256 per share
    assert len(f._shares(np.zeros((3, 3, 16, 16)), weight)) == 3      # one image each
    assert len(f._shares(np.zeros((64, 3, 16, 16)), weight)) == 4


@pytest.mark.parametrize("padding, dilation", [(1, 1), ((0, 2), (1, 2))])
def test_direct_depthwise_conv_on_several_threads_equals_one_thread(threads, monkeypatch, padding, dilation):
    rng = np.random.default_rng(3)
    x, weight, bias = rng.standard_normal((5, 4, 7, 6)), rng.standard_normal((4, 1, 3, 3)), rng.standard_normal(4)
    hyper = dict(padding=padding, dilation=dilation, groups=4)
    gy = rng.standard_normal(conv2d(x, weight, **hyper).shape)
    threads(1)
    one = conv_grads(x, weight, bias, gy, hyper)
    monkeypatch.setattr(Conv2dFunction, "min_share_columns", 1)
    threads(3)
    many = conv_grads(x, weight, bias, gy, hyper)
    for a, b, what in zip(many, one, ("y", "gx", "gW", "gb")):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12, err_msg=what)
    assert gradcheck(lambda x, w, b: conv2d(x, w, b, **hyper), (x, weight, bias))


@pytest.mark.parametrize("env, expected", [
    ({"MINICNN_NUM_THREADS": "3", "OMP_NUM_THREADS": "1"}, 3),
    ({"OMP_NUM_THREADS": "1"}, 1),
    ({}, None),
])
def test_the_default_comes_from_the_environment_then_the_cores(threads, monkeypatch, env, expected):
    for variable in ("MINICNN_NUM_THREADS", "OMP_NUM_THREADS"):
        monkeypatch.delenv(variable, raising=False)
    for variable, value in env.items():
        monkeypatch.setenv(variable, value)
    monkeypatch.setattr(parallel, "_num_threads", None)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert minicnn.get_num_threads() == (expected or cores)


def test_a_bad_environment_value_is_named(monkeypatch):
    monkeypatch.setenv("MINICNN_NUM_THREADS", "two")
    monkeypatch.setattr(parallel, "_num_threads", None)
    with pytest.raises(ValueError, match="MINICNN_NUM_THREADS: the number of threads must be a positive int, got 'two'"):
        minicnn.get_num_threads()


@pytest.mark.parametrize("training", [True, False])
def test_batch_norm_on_several_threads_equals_one_thread(threads, monkeypatch, training):
    from minicnn.functional.norm import BatchNorm, batch_norm
    rng = np.random.default_rng(4)
    x, gamma, beta, gy = (rng.standard_normal(s) for s in ((4, 5, 3, 3), 5, 5, (4, 5, 3, 3)))

    def step():
        stats = [np.zeros(5), np.ones(5)]
        inputs = [Tensor(a, requires_grad=True) for a in (x, gamma, beta)]
        y = batch_norm(inputs[0], *stats, inputs[1], inputs[2], training=training)
        y.backward(gy)
        return [y.data, *(t.grad.data for t in inputs), *stats]
    threads(1)
    one = step()
    monkeypatch.setattr(BatchNorm, "min_share", 1)
    threads(3)
    assert len(parallel.split(5, 36, BatchNorm.min_share)) == 3
    many = step()
    for a, b, what in zip(many, one, ("y", "gx", "gγ", "gβ", "running mean", "running var")):
        np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-13, err_msg=what)
    assert gradcheck(lambda x, g, b: batch_norm(x, None, None, g, b, training=True), (x, gamma, beta))


def test_workspace_is_per_thread_reused_and_grown(threads):
    """parallel.workspace(): the same thread gets the same memory back for the same name (no fresh
    pages each call), a bigger request grows it, another name or another thread gets other memory."""
    ws = parallel.workspace()
    a = ws.get("test-a", (4, 5), np.float32)
    assert a.shape == (4, 5) and a.dtype == np.float32
    a[...] = 7
    again = parallel.workspace().get("test-a", (2, 3), np.float32)
    assert np.shares_memory(a, again)
    assert not np.shares_memory(a, ws.get("test-b", (4, 5), np.float32))
    bigger = ws.get("test-a", (100, 100), np.float64)
    assert bigger.shape == (100, 100) and bigger.dtype == np.float64
    threads(2)
    other = parallel.run(lambda share: parallel.workspace(), [0, 1])
    assert other[0] is ws and other[1] is not ws


def test_blas_held_holds_one_blas_thread_and_nests(threads):
    threads(2)
    before = blas_threads()
    if not before:
        pytest.skip("threadpoolctl sees no BLAS library")
    with parallel.blas_held():
        assert blas_threads() == [1] * len(before)
        assert parallel.run(lambda share: blas_threads(), [0, 1]) == [[1] * len(before)] * 2
        assert blas_threads() == [1] * len(before)       # still held after the nested region
    assert blas_threads() == before
    threads(1)
    with parallel.blas_held():                            # one minicnn thread: BLAS keeps its threads
        assert blas_threads() == before


# ------------------------------------------------------------------ keep_cores_awake -----------

linux_only = pytest.mark.skipif(not hasattr(os, "SCHED_IDLE"), reason="SCHED_IDLE is Linux's")


def _ended_within(pids, seconds):
    """True when none of the processes pids exists any more (or is a zombie) within ``seconds``."""
    import time
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        alive = []
        for pid in pids:
            try:
                with open(f"/proc/{pid}/stat") as f:
                    alive.append(f.read().split(") ")[-1][0] != "Z")
            except FileNotFoundError:
                alive.append(False)
        if not any(alive):
            return True
        time.sleep(0.05)
    return False


@linux_only
def test_keep_cores_awake_runs_one_idle_priority_process_per_thread_until_turned_off(threads):
    import time
    threads(2)
    try:
        assert parallel.keep_cores_awake() is True
        assert parallel.keep_cores_awake() is True                # a second call starts nothing more
        processes = list(parallel._spinners)
        assert len(processes) == min(2, len(os.sched_getaffinity(0)))
        deadline = time.monotonic() + 10                          # each sets its own policy when it starts
        while time.monotonic() < deadline and not all(
                os.sched_getscheduler(p.pid) == os.SCHED_IDLE for p in processes):
            time.sleep(0.05)
        assert all(os.sched_getscheduler(p.pid) == os.SCHED_IDLE for p in processes)
        assert all(p.poll() is None for p in processes)
    finally:
        assert parallel.keep_cores_awake(False) is False
    assert parallel._spinners == [] and all(p.poll() is not None for p in processes)


@linux_only
@pytest.mark.parametrize("how", ["exits", "is killed"])
def test_the_busy_processes_end_with_the_process_that_started_them(how):
    import signal
    import subprocess
    import sys
    code = ("import sys, time, minicnn; from minicnn import parallel; parallel.keep_cores_awake(); "
            "print(' '.join(str(p.pid) for p in parallel._spinners), flush=True); "
            + ("time.sleep(60)" if how == "is killed" else "pass"))
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    pids = [int(pid) for pid in child.stdout.readline().split()]
    assert pids
    if how == "is killed":                  # no atexit: they notice their parent is gone
        child.send_signal(signal.SIGKILL)
    child.wait(timeout=30)
    assert _ended_within(pids, 10)
