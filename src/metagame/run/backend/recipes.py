"""Recipes: how a worker builds the adapter (the factory and arguments it was built from)."""


from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any, Callable


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


def _takes(factory: Callable, name: str) -> bool:
    try:
        return name in inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return False


def set_recipe(adapter: ModelAdapter, factory: Callable[..., ModelAdapter], *args: Any, **kwargs: Any) -> ModelAdapter:
    """Record how ``adapter`` was built (``factory(*args, **kwargs)``) so Ray workers can build their own; returns it."""
    adapter.recipe = AdapterRecipe(factory, tuple(args), dict(kwargs))
    return adapter
