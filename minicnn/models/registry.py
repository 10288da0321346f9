"""Build a network by name: ``get_model("vgg16", num_classes=10)``, ``list_models()``.

Every model file decorates its public constructors with ``@register``; importing ``minicnn.models``
imports them all, so the names are known as soon as this module is usable. The command line and the
lessons build networks through ``get_model`` and never need to know which file a network lives in.

    @register                     registers the function under its own name
    @register("vgg_a")            ... or under the name given
"""
from __future__ import annotations

import difflib

__all__ = ["register", "get_model", "list_models", "UnknownModelError"]

_MODELS = {}          # name -> constructor (a function returning a Module)


class UnknownModelError(KeyError):
    """``get_model`` was given a name nobody registered (the message lists close matches)."""

    def __str__(self):
        return str(self.args[0])      # KeyError would print the message in quotes


def register(name_or_function=None):
    """Decorator that adds a model constructor to the registry (under its ``__name__`` unless a name
    is given). Registering the same function twice is harmless; a different function under a name
    that is taken is an error."""

    def add(function, name):
        if not callable(function):
            raise TypeError(f"register: expected a function that builds a model, got {function!r}")
        existing = _MODELS.get(name)
        if existing is not None and existing is not function:
            raise ValueError(f"register: the model name {name!r} is already taken by "
                             f"{existing.__module__}.{existing.__qualname__}")
        _MODELS[name] = function
        return function

    if callable(name_or_function):
        return add(name_or_function, name_or_function.__name__)
    return lambda function: add(function, name_or_function or function.__name__)


def get_model(name, **kwargs):
    """Build the network registered as ``name`` with the constructor's keyword arguments
    (``num_classes``, ``in_channels``, ``small_input`` ... as each constructor documents)."""
    try:
        constructor = _MODELS[name]
    except KeyError:
        close = difflib.get_close_matches(str(name), _MODELS, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise UnknownModelError(f"get_model: no model named {name!r}{hint} (list_models() gives all "
                       f"{len(_MODELS)} names)") from None
    return constructor(**kwargs)


def list_models():
    """The registered model names, sorted."""
    return sorted(_MODELS)
