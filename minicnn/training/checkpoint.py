"""Training checkpoints: everything needed to continue a run exactly where it stopped.

A checkpoint is one ``minicnn.save`` file (an ``.npz``, no pickle, written atomically: a crash while
writing leaves the previous checkpoint intact). It holds

    format, version   "minicnn.training-checkpoint", 1
    epoch             the number of epochs completed
    model             model.state_dict()        parameters and batch-norm buffers (float32 masters)
    optimizer         optimizer.state_dict()    momentum buffers, per-group lr
    scheduler         scheduler.state_dict()    or None
    scaler            GradScaler.state_dict()   loss scale and growth counter (mixed precision)
    ema               ModelEMA.state_dict()     or None
    rng               {"minicnn": the generator of initialisation and dropout,
                       "trainer": the generator of mixup,
                       "loader":  the training loader's state (shuffling, augmentation), or None}
    history           the per-epoch records so far
    config            free-form description of the run (model name and options, data set, recipe),
                      enough for ``minicnn evaluate`` to rebuild the model

Why every random state: resuming must give the *same* weights as a run that was never interrupted,
bit for bit. The next epoch's shuffling order, augmentation, dropout masks and mixup λ all come from
generators; restoring their states makes them draw the same numbers they would have drawn.
"""
from __future__ import annotations

from ..serialization import load, save

__all__ = ["save_checkpoint", "load_checkpoint", "CheckpointError", "FORMAT", "VERSION"]

FORMAT = "minicnn.training-checkpoint"
VERSION = 1


class CheckpointError(ValueError):
    """The file is not a training checkpoint (e.g. a bare state dict), or not one this version reads."""


def save_checkpoint(state, path):
    """Write ``state`` (a dict as described in the module docstring) to ``path`` atomically."""
    save({"format": FORMAT, "version": VERSION, **state}, path)


def load_checkpoint(path, map_location=None):
    """Read a checkpoint written by ``save_checkpoint``; raises FileNotFoundError or CheckpointError."""
    state = load(path, map_location=map_location)
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a minicnn training checkpoint (it has no {FORMAT!r} marker; "
                              f"a bare model state dict loads with model.load_state_dict(minicnn.load(path)))")
    if state.get("version", 0) > VERSION:
        raise CheckpointError(f"{path} has checkpoint version {state['version']}; this minicnn reads up to "
                              f"{VERSION}")
    return state
