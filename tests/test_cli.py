"""The `minicnn` command: the README's main job, trained end to end on the bundled real data."""
import subprocess
import sys

import numpy as np
import pytest

import minicnn
from minicnn import cli, nn


def test_mlp_trained_on_bundled_fashion_mnist_beats_80_percent(tmp_path, capsys):
    code = cli.main(["train", "--model", "mlp", "--epochs", "3", "--no-progress", "--out", str(tmp_path)])
    assert code == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith("test accuracy: ")
    accuracy = float(last.split(":")[1].strip().rstrip("%")) / 100
    assert accuracy > 0.80


def test_checkpoint_written_by_train_loads_into_a_fresh_model_with_the_same_accuracy(tmp_path, capsys):
    cli.main(["train", "--model", "mlp", "--epochs", "1", "--limit", "1000", "--no-progress",
              "--out", str(tmp_path)])
    printed = float(capsys.readouterr().out.strip().splitlines()[-1].split(":")[1].strip().rstrip("%"))
    model = cli.MODELS["mlp"]()
    model.load_state_dict(minicnn.load(tmp_path / "model.npz"))
    _, _, x_test, y_test = minicnn.data.fashion_mnist_mini()
    assert round(100 * cli.evaluate(model, x_test, y_test), 1) == printed


def test_cnn_trains_a_few_steps_and_reports_accuracy(tmp_path, capsys):
    assert cli.main(["train", "--epochs", "1", "--limit", "640", "--no-progress", "--out", str(tmp_path)]) == 0
    assert "test accuracy:" in capsys.readouterr().out
    assert (tmp_path / "model.npz").exists()


@pytest.mark.slow
def test_default_cnn_run_beats_85_percent(tmp_path, capsys):
    assert cli.main(["train", "--no-progress", "--out", str(tmp_path)]) == 0
    accuracy = float(capsys.readouterr().out.strip().splitlines()[-1].split(":")[1].strip().rstrip("%"))
    assert accuracy > 85.0


@pytest.mark.parametrize("args", [["train", "--model", "nonet"], ["train", "--epochs", "0"],
                                  ["train", "--lr", "abc"], ["fly"]])
def test_bad_arguments_exit_nonzero_with_one_line_and_no_traceback(args):
    result = subprocess.run([sys.executable, "-m", "minicnn", *args], capture_output=True, text=True)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert "error" in result.stderr


def test_batch_larger_than_the_data_is_a_clean_error(tmp_path, capsys):
    code = cli.main(["train", "--limit", "10", "--batch-size", "64", "--no-progress", "--out", str(tmp_path)])
    assert code == 2
    assert "batch-size" in capsys.readouterr().err
