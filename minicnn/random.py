"""Random number generation: one seeded generator for parameter initialisation and dropout.

``minicnn.manual_seed(n)`` makes initialisation, dropout masks and data shuffling repeatable.
The generator is NumPy's (on the CPU); random arrays for the GPU are drawn there and moved.
"""
import numpy as np

_generator = np.random.default_rng()


def manual_seed(seed):
    """Seed minicnn's default generator (initialisation, dropout) like ``torch.manual_seed``."""
    global _generator
    _generator = np.random.default_rng(seed)
    return _generator


def default_generator():
    """The generator used when no ``generator=`` is passed."""
    return _generator


def get_state():
    """The default generator's state (a JSON-friendly dict), for checkpoints."""
    return _generator.bit_generator.state


def set_state(state):
    """Restore a state returned by ``get_state``."""
    _generator.bit_generator.state = state
