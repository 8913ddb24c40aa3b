"""Models loaded once per set: while :func:`shared_loads` is active, a loader decorated with :func:`shared_load`
returns the object it loaded for the same arguments before (a set of inputs builds one adapter per input, but
reads the weights once). Outside the block every call loads afresh, as a single call always has."""

from __future__ import annotations

import contextlib
import contextvars
import functools
import os
from typing import Any, Callable, Iterator, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

_CACHE: contextvars.ContextVar[dict | None] = contextvars.ContextVar("metagame_shared_loads", default=None)
#: loads kept for the whole process (:func:`keep_loads`)
_PROCESS: dict | None = None


def shared_load(loader: F) -> F:
    """Decorate a model loader so that calls inside :func:`shared_loads` with equal arguments share one load."""

    @functools.wraps(loader)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        cache = _CACHE.get()
        cache = _PROCESS if cache is None else cache
        if cache is None:
            return loader(*args, **kwargs)
        key = (loader.__module__, loader.__qualname__, tuple(_part(a) for a in args),
               tuple((k, _part(v)) for k, v in sorted(kwargs.items())))
        if key not in cache:
            cache[key] = loader(*args, **kwargs)
        return cache[key]

    return wrapper  # type: ignore[return-value]


def _part(value: Any) -> Any:
    """A key part: names, paths, numbers and dtypes by value; any other object (a loaded model) by identity."""
    if value is None or isinstance(value, (str, int, float, bool, os.PathLike)) or type(value).__name__ == "dtype":
        return ("value", repr(value))
    return ("object", id(value))


@contextlib.contextmanager
def shared_loads() -> Iterator[dict]:
    """Share the loads of decorated loaders for the length of the block (nested blocks share the outer one)."""
    if _CACHE.get() is not None:
        yield _CACHE.get()  # type: ignore[misc]
        return
    token = _CACHE.set({})
    try:
        yield _CACHE.get()  # type: ignore[misc]
    finally:
        _CACHE.reset(token)


def keep_loads() -> dict:
    """Share loads for the rest of this process (a Ray worker that explains many inputs of a set)."""
    global _PROCESS
    if _PROCESS is None:
        _PROCESS = {}
    return _PROCESS


__all__ = ["keep_loads", "shared_load", "shared_loads"]
