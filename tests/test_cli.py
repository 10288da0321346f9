"""The `minicnn` command: train (the README's main job), resume, evaluate, summary, gradcheck, and clean
one-line errors for bad arguments."""
import json
import subprocess
import sys

import numpy as np
import pytest

import minicnn
from minicnn import cli
from minicnn.training import Trainer

QUICK = ["--epochs", "1", "--limit", "256", "--no-progress"]


def last_accuracy(output):
    last = output.strip().splitlines()[-1]
    assert last.startswith("test accuracy: "), last
    return float(last.split(":")[1].strip().rstrip("%"))


def run_cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "minicnn", *args], capture_output=True, text=True, env=env)


# ---------------------------------------------------------------- train -------------------------

def test_quick_default_run_trains_resnet8_and_writes_checkpoint_history_curves_and_weights(tmp_path, capsys):
    assert cli.main(["train", *QUICK, "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "training resnet8" in out
    assert 0 <= last_accuracy(out) <= 100
    for name in ("checkpoint.npz", "model.npz", "history.json", "curves.png", "confusion.png"):
        assert (tmp_path / name).stat().st_size > 0, name
    history = json.loads((tmp_path / "history.json").read_text())["history"]
    assert [r["epoch"] for r in history] == [1]
    model = cli.resnet8()
    model.load_state_dict(minicnn.load(tmp_path / "model.npz"))


def test_the_checkpoint_evaluates_to_the_accuracy_train_printed(tmp_path, capsys):
    cli.main(["train", "mlp", *QUICK, "--out", str(tmp_path)])
    printed = last_accuracy(capsys.readouterr().out)
    assert cli.main(["evaluate", str(tmp_path / "checkpoint.npz"), "--limit", "256"]) == 0
    assert last_accuracy(capsys.readouterr().out) == printed


@pytest.fixture(scope="module")
def resnet8_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("resnet8")
    assert cli.main(["train", "--epochs", "1", "--limit", "128", "--no-progress", "--out", str(out)]) == 0
    return out


@pytest.mark.parametrize("protocol", ["10crop", "dense", "multiscale"])
def test_evaluate_protocols_print_top1_top5_and_an_accuracy(resnet8_run, capsys, protocol):
    assert cli.main(["evaluate", str(resnet8_run / "checkpoint.npz"), "--protocol", protocol, "--limit", "32"]) == 0
    out = capsys.readouterr().out
    assert "top-5 error" in out and f"protocol {protocol}" in out
    assert 0 <= last_accuracy(out) <= 100
    assert (resnet8_run / f"confusion_{protocol}.png").exists()


def test_dense_evaluation_of_a_network_with_a_fixed_size_head_is_a_clean_error(tmp_path, capsys):
    cli.main(["train", "mlp", "--epochs", "1", "--limit", "64", "--no-progress", "--out", str(tmp_path)])
    assert cli.main(["evaluate", str(tmp_path / "checkpoint.npz"), "--protocol", "dense", "--limit", "8"]) == 2
    assert "dense" in capsys.readouterr().err


def test_resume_from_the_checkpoint_ends_with_the_same_weights_as_an_uninterrupted_run(tmp_path, capsys,
                                                                                        monkeypatch):
    common = ["cnn", "--epochs", "2", "--limit", "96", "--batch-size", "32", "--no-progress", "--label-smoothing",
              "0.1", "--mixup", "0.2", "--clip", "2", "--ema", "0.9"]
    assert cli.main(["train", *common, "--out", str(tmp_path / "straight")]) == 0

    save = Trainer.save

    def save_then_get_killed(self):
        save(self)
        raise KeyboardInterrupt              # Ctrl-C right after the first checkpoint

    monkeypatch.setattr(Trainer, "save", save_then_get_killed)
    assert cli.main(["train", *common, "--out", str(tmp_path / "split")]) == 130
    monkeypatch.setattr(Trainer, "save", save)
    assert cli.main(["train", "--resume", str(tmp_path / "split" / "checkpoint.npz"), "--no-progress"]) == 0
    assert "resuming cnn from epoch 1" in capsys.readouterr().out
    straight = minicnn.load(tmp_path / "straight" / "checkpoint.npz")
    resumed = minicnn.load(tmp_path / "split" / "checkpoint.npz")
    assert resumed["epoch"] == straight["epoch"] == 2
    for key in straight["model"]:
        np.testing.assert_array_equal(resumed["model"][key], straight["model"][key], err_msg=key)
    for index, state in straight["optimizer"]["state"].items():
        for name, value in state.items():
            np.testing.assert_array_equal(resumed["optimizer"]["state"][index][name], value)
    assert resumed["optimizer"]["param_groups"] == straight["optimizer"]["param_groups"]


@pytest.mark.slow
def test_default_run_beats_85_percent_on_the_bundled_test_set(tmp_path, capsys):
    assert cli.main(["train", "--no-progress", "--out", str(tmp_path)]) == 0
    assert last_accuracy(capsys.readouterr().out) > 85.0


# ---------------------------------------------------------------- summary, gradcheck -------------

def test_summary_prints_the_layer_table_with_totals(capsys):
    assert cli.main(["summary", "resnet8"]) == 0
    out = capsys.readouterr().out
    assert "Conv2d" in out and "Total params:     77,754" in out


def test_summary_of_a_small_input_shape_builds_the_small_variant(capsys):
    assert cli.main(["summary", "vgg11_bn", "--input-shape", "3,32,32"]) == 0
    assert "Total params:     9,231,114" in capsys.readouterr().out          # papers.md §9, VGG-A-small


def test_summary_list_names_the_models(capsys):
    assert cli.main(["summary", "--list"]) == 0
    names = capsys.readouterr().out.split()
    assert {"resnet8", "cnn", "mlp", "vgg16"} <= set(names)


@pytest.mark.parametrize("model", ["resnet8", "vgg11_bn"])
def test_gradcheck_passes_on_a_tiny_float64_instance(capsys, model):
    assert cli.main(["gradcheck", model]) == 0
    out = capsys.readouterr().out
    assert "float64" in out and "passed" in out


def test_threads_sets_minicnn_and_blas_threads_while_training_and_restores_them(monkeypatch, capsys):
    threadpoolctl = pytest.importorskip("threadpoolctl")

    def threads():
        return ([pool["num_threads"] for pool in threadpoolctl.threadpool_info() if pool["user_api"] == "blas"],
                minicnn.get_num_threads())

    before, seen = threads(), []
    monkeypatch.setattr(cli, "train", lambda args: seen.append(threads()))
    assert cli.main(["train", "--threads", "3"]) == 0
    assert seen[0][1] == 3 and set(seen[0][0]) == {3}
    assert threads() == before
    seen.clear()
    assert cli.main(["train"]) == 0                     # no --threads: the libraries' own settings
    assert seen == [before]


@pytest.mark.parametrize("args, kept", [(["train"], True), (["train", "--no-keep-freed-memory"], False),
                                         (["evaluate", "run.npz"], True),
                                         (["evaluate", "run.npz", "--no-keep-freed-memory"], False)])
def test_train_and_evaluate_keep_freed_memory_unless_told_not_to(monkeypatch, args, kept):
    from minicnn import memory
    calls = []
    monkeypatch.setattr(memory, "keep_freed_memory", lambda: calls.append(True) or True)
    monkeypatch.setattr(cli, "train", lambda args: None)
    monkeypatch.setattr(cli, "evaluate_checkpoint", lambda args: None)
    assert cli.main(args) == 0
    assert calls == ([True] if kept else [])


# ---------------------------------------------------------------- errors -------------------------

@pytest.mark.parametrize("args, message", [
    (["train", "nonet"], "unknown model 'nonet'"),
    (["train", "resnt8"], "did you mean resnet8"),
    (["train", "--epochs", "0"], "must be > 0"),
    (["train", "--lr", "abc"], "expected a float"),
    (["train", "--lr", "-1"], "must be > 0"),
    (["train", "--lr", "nan"], "finite"),
    (["train", "--label-smoothing", "2"], "≤ 1"),
    (["train", "--threads", "0"], "must be > 0"),
    (["train", "--dataset", "imagenet"], "invalid choice"),
    (["train", "--limit", "10", "--batch-size", "64"], "batch-size 64 is larger"),
    (["evaluate", "no/such/checkpoint.npz"], "no such file"),
    (["summary", "nonet"], "unknown model"),
    (["gradcheck"], "required"),
    (["fly"], "invalid choice"),
])
def test_bad_arguments_exit_nonzero_with_one_line_and_no_traceback(args, message):
    result = run_cli(*args)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("minicnn"), result.stderr
    assert message in lines[0]


def test_a_missing_data_set_is_a_one_line_error(tmp_path, monkeypatch, capsys):
    fashion_mnist = sys.modules["minicnn.data.fashion_mnist"]
    monkeypatch.setenv("MINICNN_DATA", str(tmp_path))
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setattr(fashion_mnist, "DEBIAN_DIR", tmp_path / "nowhere")    # the machine may have the files
    assert cli.main(["train", "--dataset", "fashion-mnist", "--no-progress", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "minicnn: error:" in err


def test_a_file_that_is_not_a_training_checkpoint_is_a_clean_error(tmp_path):
    minicnn.save({"weight": np.zeros(3)}, tmp_path / "weights.npz")
    result = run_cli("evaluate", str(tmp_path / "weights.npz"))
    assert result.returncode == 2 and "not a minicnn training checkpoint" in result.stderr
    assert "Traceback" not in result.stderr


def test_cuda_without_a_gpu_is_a_clean_error(tmp_path, capsys):
    if minicnn.gpu_available():
        pytest.skip("a GPU is present")
    assert cli.main(["train", "--device", "cuda", "--out", str(tmp_path)]) == 2
    assert "CUDA" in capsys.readouterr().err


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=[pytest.mark.gpu, pytest.mark.skipif(
    not minicnn.gpu_available(), reason="needs CuPy and a CUDA GPU")])])
def test_tf32_sets_the_matmul_precision_on_the_gpu_only_while_training(device, tmp_path, monkeypatch, capsys):
    seen = []
    monkeypatch.setattr(Trainer, "fit", lambda self, epochs: seen.append(minicnn.get_float32_matmul_precision()))
    assert cli.main(["train", "mlp", *QUICK, "--device", device, "--tf32", "--out", str(tmp_path)]) == 0
    assert seen == ["high" if device == "cuda" else "highest"]
    assert minicnn.get_float32_matmul_precision() == "highest"
    assert ("--tf32 changes nothing on the CPU" in capsys.readouterr().out) == (device == "cpu")
