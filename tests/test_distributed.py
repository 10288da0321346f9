"""minicnn.distributed: data parallelism on MPI.

Single-process tests (no MPI needed): the sharded DataLoader, SyncBatchNorm against BatchNorm2d and by
gradient check, convert_sync_batchnorm, and DistributedDataParallel's bucketed averaging with a stand-in
group. Multi-process tests run ``mpiexec -n 2`` on the CPU (mpi4py + an MPI, e.g. the mpich wheel of
``pip install ".[test]"``; skipped without them): 2 ranks with batch B end with the weights of one process
with batch 2B (the VGG paper's claim), with SyncBatchNorm also for a network with BN; checkpoints move
between 1 and 2 processes; one failing rank ends the whole job within seconds.
"""
import functools
import importlib.util
import os
import shutil
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import numpy as np
import pytest

import minicnn
from minicnn import cli, nn
from minicnn import distributed as dist
from minicnn.data import DataLoader
from minicnn.gradcheck import gradcheck
from minicnn.training import load_checkpoint

REPO = Path(minicnn.__file__).resolve().parents[1]
SCRIPT = Path(__file__).parent / "mpi_scripts" / "data_parallel.py"
TIMEOUT = 120          # seconds for one mpiexec job (they take 1–3 s; the machine may be loaded)


def _load_script():
    spec = importlib.util.spec_from_file_location("data_parallel", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


data_parallel = _load_script()


# ---------------------------------------------------------------- no MPI needed ------------------

def test_importing_minicnn_and_its_distributed_package_does_not_import_mpi4py():
    code = ("import sys, minicnn, minicnn.distributed, minicnn.training, minicnn.cli\n"
            "assert 'mpi4py' not in sys.modules, 'mpi4py was imported'")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO, timeout=TIMEOUT)


def test_without_init_process_group_a_program_is_rank_0_of_1_and_collectives_return_their_input():
    assert not dist.is_initialized()
    assert (dist.get_rank(), dist.get_world_size(), dist.is_main_process()) == (0, 1, True)
    a = np.arange(3.0)
    assert dist.all_reduce(a) is a and dist.broadcast(a) is a
    np.testing.assert_array_equal(a, [0, 1, 2])
    assert dist.broadcast_object({"x": 1}) == {"x": 1} and dist.all_gather_object(5) == [5]


@pytest.mark.parametrize("drop_last", [True, False], ids=["drop_last", "pad_last"])
def test_the_shards_of_w_ranks_are_disjoint_and_together_make_the_batch_of_one_process(drop_last):
    x = np.arange(22)
    one = DataLoader(x, 6, shuffle=True, seed=3, drop_last=drop_last, num_workers=0)
    shards = [DataLoader(x, 2, shuffle=True, seed=3, drop_last=drop_last, num_workers=0, num_replicas=3, rank=r)
              for r in range(3)]
    assert [len(s) for s in shards] == [len(one)] * 3
    for _ in range(2):           # two epochs: two orders
        for batch, *parts in zip(one, *shards):
            joined = np.concatenate(parts)
            if len(batch) == 6:
                np.testing.assert_array_equal(joined, batch)
            else:        # 22 = 3·6 + 4: the last batch of 4 is padded to 3·2 from the start of the order
                assert len(joined) == 6 and set(joined) >= set(batch)
                assert all(len(p) == 2 for p in parts)


def test_abort_on_error_in_a_single_process_lets_the_exception_through():
    with pytest.raises(ValueError, match="bad"):
        with dist.abort_on_error():
            raise ValueError("bad")


def test_a_sharded_loader_checks_its_rank():
    with pytest.raises(ValueError, match="rank must be an integer in 0..1"):
        DataLoader(np.zeros(4), 2, num_replicas=2, rank=2)
    with pytest.raises(ValueError, match="num_replicas"):
        DataLoader(np.zeros(4), 2, num_replicas=0)


def test_each_rank_augments_its_shard_with_its_own_random_numbers():
    draws = lambda images, rng: rng.random(len(images))                           # noqa: E731
    first = [next(iter(DataLoader(np.zeros((8, 1)), 2, transform=draws, seed=0, num_workers=0, num_replicas=2,
                                  rank=r))) for r in range(2)]
    assert not np.allclose(first[0], first[1])


@pytest.mark.parametrize("shape", [(6, 3, 4, 5), (7, 3)], ids=["4d", "2d"])
def test_sync_batchnorm_in_one_process_equals_batchnorm(xp, rng, shape):
    bn, sync = (nn.BatchNorm2d(3) if len(shape) == 4 else nn.BatchNorm1d(3)), dist.SyncBatchNorm(3)
    for layer in (bn, sync):
        layer.weight.data[...] = [0.5, 1.5, -1.0]
        layer.to("cuda" if xp is not np else "cpu")
    x = xp.asarray(rng.standard_normal(shape).astype(np.float32) * 3 + 2)
    gy = xp.asarray(rng.standard_normal(shape).astype(np.float32))
    outputs, grads = [], []
    for layer in (bn, sync):
        t = minicnn.Tensor(x.copy(), requires_grad=True)
        y = layer(t)
        y.backward(minicnn.Tensor(gy))
        outputs.append(y.data)
        grads.append([t.grad.data, layer.weight.grad.data, layer.bias.grad.data])
    np.testing.assert_allclose(minicnn.backend.as_numpy(outputs[1]), minicnn.backend.as_numpy(outputs[0]),
                               rtol=1e-5, atol=1e-5)
    for g_sync, g_bn in zip(grads[1], grads[0]):
        np.testing.assert_allclose(minicnn.backend.as_numpy(g_sync), minicnn.backend.as_numpy(g_bn),
                                   rtol=1e-4, atol=1e-5)
    for name in ("running_mean", "running_var", "num_batches_tracked"):
        np.testing.assert_allclose(minicnn.backend.as_numpy(getattr(sync, name)),
                                   minicnn.backend.as_numpy(getattr(bn, name)), rtol=1e-6, atol=1e-7)
    bn.eval(), sync.eval()
    np.testing.assert_allclose(minicnn.backend.as_numpy(sync(minicnn.Tensor(x)).data),
                               minicnn.backend.as_numpy(bn(minicnn.Tensor(x)).data), rtol=1e-5, atol=1e-5)


def test_sync_batchnorm_function_passes_a_float64_gradient_check(xp, rng):
    def fn(x, gamma, beta):
        return dist.SyncBatchNormFunction(None, None, 0.1, 1e-5)(x, gamma, beta)

    leaf = lambda a: minicnn.Tensor(xp.asarray(a), requires_grad=True)            # noqa: E731
    gradcheck(fn, [leaf(rng.standard_normal((4, 3, 2, 3)) * 2 + 1), leaf(rng.standard_normal(3)),
                   leaf(rng.standard_normal(3))])


def test_convert_sync_batchnorm_keeps_the_parameters_buffers_and_state_dict_keys():
    model = cli.resnet8()
    before = list(model.state_dict())
    params = list(model.parameters())
    batch_norms = sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    model.eval()
    converted = dist.convert_sync_batchnorm(model)
    assert converted is model
    assert not any(type(m) in (nn.BatchNorm1d, nn.BatchNorm2d) for m in model.modules())
    assert sum(isinstance(m, dist.SyncBatchNorm) for m in model.modules()) == batch_norms > 0
    assert list(model.state_dict()) == before
    assert all(a is b for a, b in zip(model.parameters(), params))
    assert not any(m.training for m in model.modules())
    assert isinstance(dist.SyncBatchNorm.convert_sync_batchnorm(nn.BatchNorm2d(4)), dist.SyncBatchNorm)


class TwinGroup:
    """A stand-in for a 2-rank ProcessGroup inside one process: the other rank's gradients are all ones."""
    rank, world_size = 0, 2

    def __init__(self, other_parameters=None):
        self.messages, self.other_parameters = [], other_parameters

    def all_reduce(self, array, op="sum"):
        self.messages.append(array.size)
        array += 1
        return array

    def broadcast(self, array, src=0):
        return array

    def all_gather_object(self, obj):
        return [obj, obj if self.other_parameters is None else self.other_parameters]


def _backward(model):
    minicnn.manual_seed(0)
    x = minicnn.Tensor(np.random.default_rng(0).standard_normal((4, 1, 28, 28)).astype(np.float32))
    minicnn.functional.cross_entropy(model(x), np.array([0, 1, 2, 3])).backward()


def test_ddp_averages_the_gradients_over_the_ranks_in_one_bucket_for_a_small_resnet():
    model = cli.resnet8()
    ddp = dist.DistributedDataParallel(model, group=TwinGroup())
    _backward(model)
    grads = [p.grad.data.copy() for p in model.parameters()]
    ddp.all_reduce_gradients()
    for p, g in zip(model.parameters(), grads):
        np.testing.assert_allclose(p.grad.data, (g + 1) / 2, rtol=1e-6)
        assert p.grad.data.dtype == np.float32 and p.grad.shape == g.shape
    assert len(grads) == 29 and ddp.group.messages == [sum(g.size for g in grads)]     # 29 tensors, 1 message


def test_ddp_splits_the_gradients_into_buckets_of_at_most_bucket_cap_mb():
    model = cli.resnet8()
    ddp = dist.DistributedDataParallel(model, bucket_cap_mb=0.05, group=TwinGroup())       # 52 KB
    _backward(model)
    buckets = dist.bucket_gradients(list(model.parameters()), bucket_cap_mb=0.05)
    ddp.all_reduce_gradients()
    assert 2 < len(buckets) < 29 and ddp.group.messages == [sum(p.size for p in b) for b in buckets]
    assert [id(p) for b in buckets for p in b] == [id(p) for p in model.parameters()]
    for bucket in buckets:          # at most 52 KB of float32, or one bigger tensor alone
        assert 4 * sum(p.size for p in bucket) <= 0.05 * 2 ** 20 or len(bucket) == 1


def test_ddp_refuses_to_average_when_the_ranks_have_gradients_for_different_parameters():
    model = cli.mlp()
    ddp = dist.DistributedDataParallel(model, group=TwinGroup(other_parameters=(0, 1)))
    _backward(model)
    with pytest.raises(RuntimeError, match="different parameters"):
        ddp.all_reduce_gradients()


# ---------------------------------------------------------------- mpiexec -n 2 -------------------

@functools.lru_cache(maxsize=1)
def _mpiexec():
    """The mpiexec of the MPI that mpi4py uses (the mpich wheel puts it beside python), after a probe run;
    None (and the reason) when there is none that works."""
    if importlib.util.find_spec("mpi4py") is None:
        return None, "mpi4py is not installed (pip install \".[distributed]\")"
    candidates = [Path(sys.executable).parent / "mpiexec", Path(sysconfig.get_path("scripts")) / "mpiexec",
                  shutil.which("mpiexec")]
    found = next((str(c) for c in candidates if c and os.access(c, os.X_OK)), None)
    if found is None:
        return None, "no mpiexec found (pip install mpich, or a system MPI)"
    probe = subprocess.run([found, "-n", "2", sys.executable, "-c",
                            "from mpi4py import MPI; assert MPI.COMM_WORLD.Get_size() == 2"],
                           capture_output=True, text=True, timeout=TIMEOUT, env=_environment())
    if probe.returncode != 0:
        return None, f"{found} -n 2 does not start 2 MPI ranks: {probe.stderr.strip()[-300:]}"
    return found, ""


def _environment():
    # The ranks import this checkout's minicnn; one BLAS thread each, as two ranks share two cores.
    return {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
            "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def mpiexec(*args, ranks=2, check=True):
    """Run ``mpiexec -n ranks python args...`` (skip when there is no MPI); returns the CompletedProcess."""
    found, reason = _mpiexec()
    if found is None:
        pytest.skip(reason)
    result = subprocess.run([found, "-n", str(ranks), sys.executable, *map(str, args)], capture_output=True,
                            text=True, timeout=TIMEOUT, env=_environment(), cwd=REPO)
    if check and result.returncode != 0:
        raise AssertionError(f"mpiexec failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


@functools.lru_cache(maxsize=None)
def one_process_reference(batch_norm, epochs=2):
    """The final state dict of one process trained with batch 2B (the ranks' global batch)."""
    trainer = data_parallel.make_trainer(2 * data_parallel.BATCH, batch_norm=batch_norm)
    trainer.fit(epochs)
    return {k: np.array(v, copy=True) for k, v in trainer.model.state_dict().items()}


def assert_same_weights(state, reference):
    assert list(state) == list(reference)
    for name in reference:          # float32, summed in another order: equal to ~1e-7 relative
        np.testing.assert_allclose(state[name], reference[name], rtol=1e-5, atol=1e-6, err_msg=name)


def test_two_ranks_with_batch_b_end_with_the_weights_of_one_process_with_batch_2b(tmp_path):
    mpiexec(SCRIPT, "--out", tmp_path, "--epochs", 2)
    assert_same_weights(load_checkpoint(tmp_path / "checkpoint.npz")["model"], one_process_reference(False))


def test_with_sync_batchnorm_two_ranks_also_match_one_process_for_a_network_with_bn(tmp_path):
    mpiexec(SCRIPT, "--out", tmp_path / "sync", "--epochs", 2, "--batch-norm", "--sync-bn")
    reference = one_process_reference(True)
    state = load_checkpoint(tmp_path / "sync" / "checkpoint.npz")["model"]
    assert_same_weights(state, reference)                          # running mean and variance included
    mpiexec(SCRIPT, "--out", tmp_path / "per_rank", "--epochs", 2, "--batch-norm")
    per_rank = load_checkpoint(tmp_path / "per_rank" / "checkpoint.npz")["model"]
    assert not np.allclose(per_rank["1.running_var"], reference["1.running_var"], rtol=1e-3)


def test_a_checkpoint_of_two_ranks_resumes_in_one_process_and_vice_versa(tmp_path):
    reference = one_process_reference(False, epochs=2)
    # 2 ranks for epoch 1, then 1 process (batch 2B) for epoch 2
    mpiexec(SCRIPT, "--out", tmp_path / "two", "--epochs", 1)
    trainer = data_parallel.make_trainer(2 * data_parallel.BATCH)
    assert trainer.resume(tmp_path / "two" / "checkpoint.npz") == 1
    trainer.fit(2)
    assert_same_weights(trainer.model.state_dict(), reference)
    # 1 process for epoch 1, then 2 ranks for epoch 2
    data_parallel.make_trainer(2 * data_parallel.BATCH, out_dir=tmp_path / "one").fit(1)
    mpiexec(SCRIPT, "--out", tmp_path / "then_two", "--epochs", 2, "--resume", tmp_path / "one" / "checkpoint.npz")
    state = load_checkpoint(tmp_path / "then_two" / "checkpoint.npz")
    assert state["epoch"] == 2 and [r["epoch"] for r in state["history"]["records"]] == [1, 2]
    assert_same_weights(state["model"], reference)


def test_a_rank_that_raises_ends_the_whole_job_non_zero_within_seconds(tmp_path):
    started = time.perf_counter()
    result = mpiexec(SCRIPT, "--out", tmp_path, "--fail-rank", 1, check=False)
    assert result.returncode != 0
    assert time.perf_counter() - started < 60
    assert "rank 1 of 2 failed" in result.stderr and "injected failure at step 3" in result.stderr
    assert not (tmp_path / "checkpoint.npz").exists()              # rank 0 was stopped inside epoch 1


def test_minicnn_train_distributed_prints_and_writes_once_and_resumes_in_one_process(tmp_path, capsys):
    out = tmp_path / "run"
    result = mpiexec("-m", "minicnn", "train", "cnn", "--limit", "128", "--epochs", "1", "--no-progress",
                     "--distributed", "--scale-lr", "--sync-bn", "--batch-size", "32", "--lr", "0.02", "--out", out)
    assert result.stdout.count("epoch 1/1") == 1 and result.stdout.count("test accuracy") == 1
    assert "sgd lr 0.04 (= 0.02 × 2 processes, linear scaling rule)" in result.stdout
    assert "batch 32 × 2 processes, synchronised batch norm" in result.stdout
    for name in ("checkpoint.npz", "model.npz", "history.json"):
        assert (out / name).stat().st_size > 0
    assert cli.main(["train", "--resume", str(out / "checkpoint.npz"), "--epochs", "2", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "resuming cnn from epoch 1" in printed
    assert "sgd lr 0.04, cosine schedule, batch 64, synchronised batch norm" in printed
    assert [r["epoch"] for r in load_checkpoint(out / "checkpoint.npz")["history"]["records"]] == [1, 2]


def test_minicnn_train_distributed_reports_a_bad_argument_in_one_line_and_exits_2(tmp_path):
    result = mpiexec("-m", "minicnn", "train", "mlp", "--limit", "100", "--batch-size", "64", "--distributed",
                     "--no-progress", "--out", tmp_path, check=False)
    assert result.returncode == 2
    assert "minicnn: error: --batch-size 64 × 2 processes is larger than the 100 training images" in result.stderr
    assert "Traceback" not in result.stderr
