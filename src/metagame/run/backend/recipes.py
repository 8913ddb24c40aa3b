"""Recipes: how a worker builds the adapter (the factory and arguments it was built from), and their JSON form that
results store (``metadata["recipe"]``) so an adapter can be rebuilt from a result file alone."""


from __future__ import annotations

import inspect
import os
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from ...errors import MetagameError
from ...models.base import ModelAdapter


# ------------------------------------------------------------------------------------------------ recipes
@dataclass(frozen=True)
class AdapterRecipe:
    """How to build an adapter again in another process: ``factory(*args, **kwargs)`` (picklable: a model name/path
    and keyword options are a cheap recipe; a loaded model travels inside it)."""

    factory: Callable[..., ModelAdapter]
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)
    #: steps applied to the built adapter in order, ``(fn, options)`` with ``fn(adapter, options) -> adapter`` (an
    #: entry point's extension, e.g. ``components=``)
    then: tuple = ()

    def build(self, gpu: bool = False) -> ModelAdapter:
        """The adapter. On a GPU worker (``gpu=True``) a factory whose ``device`` option was left unset builds on the
        worker's GPU."""
        kwargs = dict(self.kwargs)
        if gpu and kwargs.get("device") is None and _takes(self.factory, "device"):
            kwargs["device"] = "cuda"
        adapter = self.factory(*self.args, **kwargs)
        for fn, options in self.then:
            adapter = fn(adapter, options)
        return adapter

    def extended(self, fn: Callable[[ModelAdapter, dict], ModelAdapter], options: dict) -> "AdapterRecipe":
        """This recipe followed by ``fn(adapter, options)``."""
        return AdapterRecipe(self.factory, self.args, self.kwargs, self.then + ((fn, dict(options)),))

    def to_json(self) -> dict | None:
        """``{"factory": name, "args": [...], "kwargs": {...}}``: the recipe as plain data, when its factory is
        registered for rebuilding under ``name`` (:attr:`metagame.domains.Domain.rebuild`), no step follows it and
        every argument is plain data (strings, numbers, paths, lists, dicts); else None (the factory takes Python
        objects, e.g. a loaded model or an image array)."""
        name = factory_name(self.factory)
        if name is None or self.then:
            return None
        try:
            return {"factory": name, "args": [_plain(a) for a in self.args],
                    "kwargs": {k: _plain(v) for k, v in self.kwargs.items()}}
        except TypeError:
            return None

    @classmethod
    def from_json(cls, data: Any) -> "AdapterRecipe":
        """The recipe :meth:`to_json` wrote, its factory looked up by name in the domain table."""
        from ...domains import rebuild_factories, resolve

        if not (isinstance(data, dict) and isinstance(data.get("factory"), str)
                and isinstance(data.get("args", []), (list, tuple)) and isinstance(data.get("kwargs", {}), dict)):
            raise MetagameError(f"a stored recipe must be {{'factory': name, 'args': [...], 'kwargs': {{...}}}}; got {data!r}")
        factories = rebuild_factories()
        if data["factory"] not in factories:
            raise MetagameError(f"the stored recipe names the adapter factory {data['factory']!r}, which no domain "
                                f"registers; known: {', '.join(sorted(factories))}")
        return cls(resolve(factories[data["factory"]]), tuple(data.get("args", ())), dict(data.get("kwargs", {})))

    def takes(self, name: str) -> bool:
        """Whether the factory takes the keyword ``name``."""
        return _takes(self.factory, name)


def _takes(factory: Callable, name: str) -> bool:
    try:
        return name in inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return False


def factory_name(factory: Callable) -> str | None:
    """The name under which a domain registers ``factory`` for rebuilding (:func:`metagame.domains.rebuild_factories`),
    or None."""
    from ...domains import rebuild_factories

    reference = f"{getattr(factory, '__module__', '')}:{getattr(factory, '__qualname__', '')}"
    return next((name for name, ref in rebuild_factories().items() if ref == reference), None)


def _plain(value: Any) -> Any:
    """``value`` as plain data (paths as strings, numpy scalars as numbers); TypeError for anything else."""
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, np.generic) and not isinstance(value, np.void):
        return value.item()
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v) for v in value)
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {k: _plain(v) for k, v in value.items()}
    raise TypeError(f"{type(value).__name__} is not plain data")


def set_recipe(adapter: ModelAdapter, factory: Callable[..., ModelAdapter], *args: Any, **kwargs: Any) -> ModelAdapter:
    """Record how ``adapter`` was built (``factory(*args, **kwargs)``) so Ray workers can build their own; returns it."""
    adapter.recipe = AdapterRecipe(factory, tuple(args), dict(kwargs))
    return adapter
