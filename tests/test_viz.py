"""Specification of minicnn.viz: figures are written as PNG files, and matplotlib loads lazily."""
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from minicnn import viz  # noqa: E402
from minicnn.training import History  # noqa: E402

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_plot_history_writes_a_png_of_loss_accuracy_and_learning_rate(tmp_path):
    history = History()
    for epoch, lr in enumerate([0.1, 0.05, 0.01], 1):
        history.append({"epoch": epoch, "lr": lr, "train_loss": 1.0 / epoch, "train_acc": 0.5 + 0.1 * epoch,
                        "val_loss": 1.2 / epoch, "val_acc": 0.45 + 0.1 * epoch, "val_top5": 0.9})
    path = viz.plot_history(history, tmp_path / "plots" / "curves.png", title="test")
    assert path.read_bytes().startswith(PNG_SIGNATURE) and path.stat().st_size > 1000
    assert sorted(p.name for p in path.parent.iterdir()) == ["curves.png"]      # no temporary file left


def test_plot_history_without_validation_or_with_a_single_epoch_still_draws(tmp_path):
    path = viz.plot_history([{"epoch": 1, "lr": 0.0, "train_loss": 2.0, "train_acc": 0.1}], tmp_path / "c.png")
    assert path.stat().st_size > 0
    with pytest.raises(ValueError, match="no epochs"):
        viz.plot_history(History(), tmp_path / "empty.png")


def test_plot_confusion_matrix_writes_a_png(tmp_path):
    counts = np.array([[5, 1, 0], [2, 3, 1], [0, 0, 6]])
    path = viz.plot_confusion_matrix(counts, tmp_path / "confusion.png", classes=["a", "b", "c"])
    assert path.read_bytes().startswith(PNG_SIGNATURE) and path.stat().st_size > 1000


def test_importing_minicnn_viz_does_not_import_matplotlib():
    code = "import sys, minicnn.viz, minicnn.training; assert 'matplotlib' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
