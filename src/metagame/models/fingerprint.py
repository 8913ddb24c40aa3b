"""Content fingerprints: a hash of everything that determines a run's numbers (values, never names or ids).

Checkpoints are keyed by them, so a checkpoint written for one input, baseline, model or answer is never
replayed into a run with another. :func:`content_digest` hashes tensors and arrays by dtype, shape and bytes,
a ``torch.nn.Module`` by its state dict (names, dtypes, shapes and values) and its class, a plain function by
the weights it reads (modules, tensors and arrays in its closure and globals; its behaviour is checked by the
run's probe values), scikit-learn style estimators by their parameters, and containers element by element.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import types
from typing import Any

import numpy as np
import torch

#: how deep closures, containers and attributes are followed
_MAX_DEPTH = 6


def _has(obj: Any, name: str) -> bool:
    """``hasattr`` that also survives objects whose ``__getattr__`` raises something else (e.g. a KeyError)."""
    try:
        return hasattr(obj, name)
    except Exception:  # noqa: BLE001
        return False


def _update(h: "hashlib._Hash", obj: Any, depth: int, seen: set[int]) -> None:
    tag = type(obj).__name__
    h.update(tag.encode())
    if obj is None or isinstance(obj, (bool, int, float, complex, str, bytes)):
        h.update(repr(obj).encode())
        return
    if depth > _MAX_DEPTH:
        return
    if isinstance(obj, torch.Tensor):
        t = obj.detach().cpu().contiguous()
        h.update(f"{t.dtype}{tuple(t.shape)}".encode())
        if t.dtype == torch.bfloat16:
            t = t.view(torch.int16)
        h.update(t.numpy().tobytes())
        return
    if isinstance(obj, np.ndarray):
        a = np.ascontiguousarray(obj)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        if a.dtype == object:
            for v in a.reshape(-1):
                _update(h, v, depth + 1, seen)
        else:
            h.update(a.tobytes())
        return
    if isinstance(obj, np.generic):
        h.update(repr(obj.item()).encode())
        return
    if id(obj) in seen:  # cycles
        return
    seen = seen | {id(obj)}
    if isinstance(obj, dict) or (not isinstance(obj, torch.nn.Module) and _has(obj, "keys") and _has(obj, "__getitem__")):
        try:
            keys = sorted(obj.keys(), key=repr)
        except TypeError:
            keys = list(obj.keys())
        for k in keys:
            _update(h, k, depth + 1, seen)
            _update(h, obj[k], depth + 1, seen)
        return
    if isinstance(obj, (list, tuple, set, frozenset)):
        items = sorted(obj, key=repr) if isinstance(obj, (set, frozenset)) else obj
        for v in items:
            _update(h, v, depth + 1, seen)
        return
    if isinstance(obj, torch.nn.Module):
        h.update(type(obj).__qualname__.encode())
        for name, value in obj.state_dict().items():
            h.update(name.encode())
            _update(h, value, depth + 1, seen)
        h.update(b"train" if obj.training else b"eval")
        return
    if isinstance(obj, (types.FunctionType, types.MethodType)):
        # a plain function is fingerprinted by the weights it reads (modules, tensors and arrays in its closure, its
        # globals and a bound object), not by its code or other state: the run's probe values catch a changed
        # function, and an equivalent re-definition (e.g. a wrapper that counts calls) resumes a checkpoint
        for weight in _weights_of(obj, depth):
            _update(h, weight, depth + 1, seen)
        return
    if _has(obj, "get_params") and callable(obj.get_params):  # scikit-learn estimators
        h.update(type(obj).__qualname__.encode())
        _update(h, obj.get_params(deep=True), depth + 1, seen)
        return
    if inspect.isclass(obj) or isinstance(obj, (types.BuiltinFunctionType, types.ModuleType)):
        h.update(f"{getattr(obj, '__module__', '')}.{getattr(obj, '__qualname__', repr(obj))}".encode())
        return
    if callable(obj) and _has(obj, "__dict__"):
        h.update(type(obj).__qualname__.encode())
        _update(h, vars(obj), depth + 1, seen)
        return
    if _has(obj, "__dict__"):
        h.update(type(obj).__qualname__.encode())
        _update(h, {k: v for k, v in vars(obj).items() if not k.startswith("__")}, depth + 1, seen)
        return
    h.update(repr(obj).encode())


_WEIGHTS = (torch.nn.Module, torch.Tensor, np.ndarray)


def _weights_of(func: Any, depth: int) -> list[Any]:
    """Modules, tensors and arrays a function reads: its closure cells, the globals it names, its bound object."""
    if depth > _MAX_DEPTH:
        return []
    out: list[Any] = []
    if isinstance(func, types.MethodType):
        if isinstance(func.__self__, _WEIGHTS):
            out.append(func.__self__)
        func = func.__func__
    cells = []
    for cell in func.__closure__ or ():
        try:
            cells.append(cell.cell_contents)
        except ValueError:  # empty cell
            continue
    cells += [func.__globals__.get(name) for name in func.__code__.co_names]
    for value in cells:
        if isinstance(value, _WEIGHTS):
            out.append(value)
        elif isinstance(value, (types.FunctionType, types.MethodType)):
            out += _weights_of(value, depth + 1)
    return out


def content_digest(obj: Any) -> str:
    """SHA-256 (hex) of ``obj``'s content: equal values give equal digests, whatever their identity."""
    h = hashlib.sha256()
    _update(h, obj, 0, set())
    return h.hexdigest()


def fingerprint(adapter: Any) -> dict[str, Any]:
    """The adapter's fingerprint: its class, players and a digest of each of its :meth:`fingerprint_parts`.

    A dict (not one hash) so that a mismatch can say *what* differs (``inputs``, ``model``, ``answer`` ...).
    """
    parts = adapter.fingerprint_parts()
    return {
        "adapter": type(adapter).__name__,
        "players": list(adapter.players),
        **{f"{name}": content_digest(value) for name, value in parts.items()},
    }


def stable_json(obj: Any) -> str:
    """Canonical JSON (sorted keys, repr for the unserialisable) used to compare and hash fingerprints."""
    return json.dumps(obj, sort_keys=True, default=repr)


__all__ = ["content_digest", "fingerprint", "stable_json"]
