"""Optimizers and learning-rate schedules.

    from minicnn import optim
    optimizer = optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    scheduler = optim.lr_scheduler.StepLR(optimizer, step_size=30, gamma=0.1)
    optimizer.zero_grad(); loss.backward(); optimizer.step()      # every batch
    scheduler.step()                                               # every epoch

One optimizer per file: ``Optimizer`` (parameter groups, state dicts) in optimizer.py, ``SGD``
(PyTorch's and Caffe's momentum) in sgd.py, ``RMSprop`` (PyTorch's and TensorFlow's) in rmsprop.py,
``Adam`` and ``AdamW`` in adam.py. The schedules live in the submodule ``optim.lr_scheduler``, as in
PyTorch, and are also exported here: ``optim.StepLR`` is ``optim.lr_scheduler.StepLR``.
"""
from . import lr_scheduler
from .adam import Adam, AdamW
from .lr_scheduler import (CosineAnnealingLR, ExponentialLR, LambdaLR, LinearWarmup, LRScheduler, MultiStepLR,
                           ReduceLROnPlateau, StepLR, linear_scaling_rule)
from .optimizer import Optimizer, required
from .rmsprop import RMSprop
from .sgd import SGD

__all__ = ["Optimizer", "SGD", "RMSprop", "Adam", "AdamW", "required", "lr_scheduler", "LRScheduler", "LambdaLR",
           "StepLR", "MultiStepLR", "ExponentialLR", "CosineAnnealingLR", "ReduceLROnPlateau", "LinearWarmup",
           "linear_scaling_rule"]
