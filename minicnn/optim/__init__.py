"""Optimizers: ``Optimizer`` (parameter groups, state dicts) and ``SGD``.

    from minicnn import optim
    optimizer = optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    optimizer.zero_grad(); loss.backward(); optimizer.step()

One optimizer per file (sgd.py, then rmsprop.py, adam.py); lr schedulers go in lr_scheduler.py.
"""
from .optimizer import Optimizer, required
from .sgd import SGD

__all__ = ["Optimizer", "SGD", "required"]
