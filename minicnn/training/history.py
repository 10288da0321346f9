"""The training history: one record per epoch (losses, accuracies, learning rate, speed), kept as a
list of dicts and written to a JSON file after every epoch.

A record looks like

    {"epoch": 3, "lr": 0.0412, "lr_steps": [0.0498, …, 0.0412], "train_loss": 0.418, "train_acc": 0.851,
     "val_loss": 0.361, "val_acc": 0.872, "val_top5": 0.997, "images_per_s": 812.4, "seconds": 12.3,
     "skipped_steps": 0}

("lr" is the learning rate of the epoch's last step, "lr_steps" the lr of its steps, evenly thinned to at
most 50.)
(``val_*`` are missing when there is no validation data). The file is written atomically (temporary
file, fsync, rename), so a run killed while writing leaves the previous history intact.
``minicnn.viz.plot_history`` draws the curves from it.
"""
from __future__ import annotations

import json
import math

from ..serialization import _atomic_write

__all__ = ["History"]


class History:
    """``History(records=())``: ``append(record)``, ``records``, ``column(key)``, ``save(path)``, ``load(path)``."""

    def __init__(self, records=()):
        self.records = [dict(r) for r in records]

    def append(self, record):
        self.records.append({k: _plain(v) for k, v in record.items()})

    def column(self, key):
        """(epochs, values) of ``key`` over the records that have it."""
        rows = [r for r in self.records if key in r]
        return [r["epoch"] for r in rows], [r[key] for r in rows]

    def __len__(self):
        return len(self.records)

    def __getitem__(self, index):
        return self.records[index]

    def save(self, path):
        """Write ``{"history": [...]}`` to ``path`` as JSON, atomically. NaN and inf become null."""
        text = json.dumps({"history": [{k: _json_safe(v) for k, v in r.items()} for r in self.records]},
                          indent=1)
        _atomic_write(str(path), lambda f: f.write(text.encode("utf-8")))

    @classmethod
    def load(cls, path):
        with open(path, encoding="utf-8") as f:
            return cls(json.load(f)["history"])

    def state_dict(self):
        return {"records": [dict(r) for r in self.records]}

    def load_state_dict(self, state):
        self.records = [dict(r) for r in state["records"]]


def _plain(value):
    """NumPy scalars -> Python numbers, so records compare, print and serialise simply."""
    return value.item() if hasattr(value, "item") and getattr(value, "ndim", 1) == 0 else value


def _json_safe(value):
    return None if isinstance(value, float) and not math.isfinite(value) else value
