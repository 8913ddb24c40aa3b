"""Loaded models, reused: the one model cache, with one key rule.

A loader decorated with :func:`shared_load` returns what it loaded before for an equal key: the loader and its
arguments (bound to its signature, defaults filled in), a local file or folder by its content identity (each file's
name, size and modification time, so changed weights load again), names, numbers, dtypes and devices by value, any
other object (a loaded model, a loader function) by identity. How long a load is reused depends on the loader:

* ``@shared_load``: while :func:`shared_loads` is active (a set of inputs builds one adapter per input, but reads
  the weights once), or for the rest of the process after :func:`keep_loads` (a Ray worker); outside, every call
  loads afresh, as a single call always has;
* ``@shared_load(kept=True)``: also between calls: the last :data:`CACHE_SIZE` such loads are kept (the encoders'
  models named by hub name or path, reused by later calls on the same source and options); :func:`clear_cache`
  forgets them.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import inspect
import os
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

_CACHE: contextvars.ContextVar[dict | None] = contextvars.ContextVar("metagame_shared_loads", default=None)
#: loads kept for the whole process (:func:`keep_loads`)
_PROCESS: dict | None = None
#: how many loads of ``kept=True`` loaders are kept between calls
CACHE_SIZE = 2
#: the loads kept between calls, oldest first
_LOADED: OrderedDict[tuple, Any] = OrderedDict()


class _Same:
    """A key part that compares by identity (and keeps its object alive while the key is in a cache, so the id
    cannot be reused by another object)."""

    __slots__ = ("obj",)

    def __init__(self, obj: Any):
        self.obj = obj

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Same) and other.obj is self.obj

    def __hash__(self) -> int:
        return id(self.obj)


def _content(path: Path) -> tuple:
    """What identifies a local file's or folder's weights: its files' names, sizes and modification times."""
    if path.is_file():
        st = path.stat()
        return (str(path.resolve()), st.st_size, st.st_mtime_ns)
    files = []
    for f in sorted(path.rglob("*")):
        if f.is_file():
            st = f.stat()
            files.append((str(f.relative_to(path)), st.st_size, st.st_mtime_ns))
    return (str(path.resolve()), tuple(files))


def _part(value: Any) -> Any:
    """A key part (module docstring): an existing path by its content, plain values by value, objects by identity."""
    if isinstance(value, (str, os.PathLike)):
        try:
            path = Path(value).expanduser()
            if path.exists():
                return ("path", _content(path))
        except OSError:  # a name that cannot be a path (too long, ...) is a name
            pass
        return ("value", repr(os.fspath(value)))
    if value is None or isinstance(value, (int, float, bool)) or type(value).__name__ in ("dtype", "device"):
        return ("value", repr(value))
    return ("object", _Same(value))


def load_key(loader: Callable[..., Any], args: tuple, kwargs: dict[str, Any]) -> tuple | None:
    """The cache key of ``loader(*args, **kwargs)`` (module docstring); None when the arguments do not fit the
    loader's signature (the call then raises its own error)."""
    try:
        bound = inspect.signature(loader).bind(*args, **kwargs)
    except TypeError:
        return None
    bound.apply_defaults()
    return (loader.__module__, loader.__qualname__, tuple((k, _part(v)) for k, v in bound.arguments.items()))


def shared_load(loader: F | None = None, *, kept: bool = False) -> Any:
    """Decorate a model loader so that calls with equal keys share one load (module docstring): inside
    :func:`shared_loads` (or after :func:`keep_loads`), and with ``kept=True`` between calls too (the last
    :data:`CACHE_SIZE` loads). Used as ``@shared_load`` or ``@shared_load(kept=True)``."""
    if loader is None:
        return functools.partial(shared_load, kept=kept)

    @functools.wraps(loader)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if kept:
            store: dict | None = _LOADED
        else:
            store = _CACHE.get()
            store = _PROCESS if store is None else store
        key = None if store is None else load_key(loader, args, kwargs)
        if key is None:
            return loader(*args, **kwargs)
        if key in store:
            if kept:
                _LOADED.move_to_end(key)
            return store[key]
        value = loader(*args, **kwargs)
        store[key] = value
        if kept:
            while len(_LOADED) > CACHE_SIZE:
                _LOADED.popitem(last=False)
        return value

    return wrapper


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


def clear_cache() -> None:
    """Forget the loads kept between calls and for the process (frees their memory once nothing else holds them)."""
    _LOADED.clear()
    if _PROCESS is not None:
        _PROCESS.clear()


__all__ = ["CACHE_SIZE", "clear_cache", "keep_loads", "load_key", "shared_load", "shared_loads"]
