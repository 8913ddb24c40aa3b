"""Checkpoint files (``.npz``, never pickle) so that long runs never lose finished work.

A checkpoint carries a key, the SHA-256 of the run's parameters; a file written for other
parameters is refused with a clear error instead of being mixed into the run.
"""

from __future__ import annotations

import hashlib
import json
import os

import numpy as np

from ..errors import MetagameError


def checkpoint_key(params: dict) -> str:
    """Stable key of a run's parameters (JSON, sorted keys)."""
    return hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()


def read_checkpoint(path: str, key: str) -> dict[str, np.ndarray] | None:
    """The arrays stored at ``path`` (None when there is no file); errors if it was written for other parameters."""
    if not os.path.exists(path):
        return None
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {name: f[name] for name in f.files}
    except Exception as exc:  # noqa: BLE001 - any unreadable file gets the same advice
        raise MetagameError(f"cannot read checkpoint {path!r} ({exc}); delete it or pass another checkpoint path") from None
    if str(arrays.get("key")) != key:
        raise MetagameError(
            f"checkpoint {path!r} was written for different parameters (model, method, variant, value, budget, "
            f"seed or estimator); delete it or pass another checkpoint path"
        )
    return arrays


def write_checkpoint(path: str, key: str, **arrays: np.ndarray) -> None:
    """Write atomically (temporary file, then rename), so an interrupted save never corrupts the last one."""
    tmp = path + ".tmp.npz"
    np.savez_compressed(tmp, key=np.asarray(key), **arrays)
    os.replace(tmp, path)
