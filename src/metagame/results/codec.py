"""The one JSON codec of metagame: result files, report data and checkpoint fingerprints use these functions.

Non-finite floats are written as strings (``"nan"``, ``"inf"``), context/metadata values round-trip exactly
through tagged objects (``{"__float__": ...}``, ``{"__tuple__": [...]}``, ``{"__ndarray__": {...}}``), and JSON
embedded in HTML escapes ``<``, ``>``, ``&`` and the line separators.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np


def encode_float(x: float) -> float | str:
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return float(x)


def decode_float(x) -> float:
    if isinstance(x, str):
        return float(x)
    return float(x) if x is not None else math.nan


def array_to_json(a: np.ndarray):
    flat = [encode_float(v) for v in np.asarray(a, dtype=np.float64).reshape(-1).tolist()]
    return {"shape": list(a.shape), "data": flat}


def array_from_json(obj) -> np.ndarray:
    return np.array([decode_float(v) for v in obj["data"]], dtype=np.float64).reshape(obj["shape"])


def exact_json(obj: Any):
    """Context/metadata values as JSON that :func:`from_exact_json` turns back into equal objects.

    Plain JSON stays plain; non-finite floats, tuples and numpy arrays are tagged (``{"__float__": "nan"}``,
    ``{"__tuple__": [...]}``, ``{"__ndarray__": {...}}``); numpy scalars become Python numbers; dict keys become
    strings; anything else is stored by ``repr`` (lossy).
    """
    if isinstance(obj, dict):
        return {str(k): exact_json(v) for k, v in obj.items()}
    if isinstance(obj, tuple):
        return {"__tuple__": [exact_json(v) for v in obj]}
    if isinstance(obj, list):
        return [exact_json(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return {"__ndarray__": {"dtype": obj.dtype.str, "shape": list(obj.shape),
                                "data": [exact_json(v) for v in obj.reshape(-1).tolist()]}}
    if isinstance(obj, np.generic):
        return exact_json(obj.item())
    if isinstance(obj, float) and not math.isfinite(obj):
        return {"__float__": encode_float(obj)}
    if obj is None or isinstance(obj, (str, int, bool, float)):
        return obj
    return repr(obj)


def from_exact_json(obj: Any):
    """Inverse of :func:`exact_json`."""
    if isinstance(obj, list):
        return [from_exact_json(v) for v in obj]
    if isinstance(obj, dict):
        if len(obj) == 1:
            (key, val), = obj.items()
            if key == "__float__" and isinstance(val, str):
                return float(val)
            if key == "__tuple__" and isinstance(val, list):
                return tuple(from_exact_json(v) for v in val)
            if key == "__ndarray__" and isinstance(val, dict) and {"dtype", "shape", "data"} <= val.keys():
                flat = [from_exact_json(v) for v in val["data"]]
                return np.array(flat, dtype=np.dtype(val["dtype"])).reshape(val["shape"])
        return {k: from_exact_json(v) for k, v in obj.items()}
    return obj


def plain_json(obj: Any):
    """Metadata values as plain JSON (numpy scalars and arrays converted, others by repr)."""
    if isinstance(obj, dict):
        return {str(k): plain_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain_json(v) for v in obj]
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, (np.floating, float)):
        return encode_float(float(obj))
    if isinstance(obj, np.ndarray):
        return plain_json(obj.tolist())
    if obj is None or isinstance(obj, (str, int, bool)):
        return obj
    return repr(obj)




def json_for_script(data: Any) -> str:
    """JSON safe inside ``<script type="application/json">``: ``<``, ``>``, ``&`` and line separators escaped."""
    s = json.dumps(data, allow_nan=False, ensure_ascii=False, separators=(",", ":"))
    return (s.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


__all__ = [
    "array_from_json",
    "array_to_json",
    "decode_float",
    "encode_float",
    "exact_json",
    "from_exact_json",
    "json_for_script",
    "plain_json",
]
