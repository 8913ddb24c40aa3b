"""Checkpoint files (``.npz``, never pickle) so that long runs never lose finished work.

A checkpoint is keyed by the run's **fingerprint**: a digest of everything that determines its numbers —
the adapter's inputs, baselines, texts, image bytes or training data and its model (state dict, or code and
closure of a function), the model's outputs at a few probe coalitions, the method and its parameters, and the
run options that shape the work (variant, value, budget, seed, estimator). A file written for a different
fingerprint is refused with an error that names the file and what differs; ``checkpoint_mode="overwrite"``
starts afresh instead.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

import numpy as np

from ..errors import MetagameError
from ..models.fingerprint import content_digest, fingerprint, stable_json
from .options import RunOptions

#: probe coalitions per run fingerprint (full, empty and seeded random ones): they catch a changed model function
N_PROBES = 4


def probe_coalitions(d: int) -> np.ndarray:
    """Fixed probe coalitions ``bool[N_PROBES, d]``: the full and empty coalitions and two seeded random ones."""
    rng = np.random.default_rng(0x70726F6265)
    rows = [np.ones(d, dtype=bool), np.zeros(d, dtype=bool)]
    rows += [rng.random(d) < 0.5 for _ in range(N_PROBES - 2)]
    return np.stack(rows)


def run_fingerprint(adapter: Any, method: Any, options: RunOptions, what: str, **extra: Any) -> dict[str, Any]:
    """Everything that determines the numbers of one checkpointed piece of work (``what``: the table or estimate)."""
    probe_rows = probe_coalitions(adapter.n_players)
    probes = adapter.probe_values(probe_rows)
    fp = {
        "what": what,
        **fingerprint(adapter),
        "probe_values": [float.hex(float(v)) for v in probes],
        "variant": options.variant,
        "value": options.value,
        "budget": options.budget,
        "seed": options.seed,
        "estimator": options.estimator,
        **{k: v for k, v in extra.items()},
    }
    if method is not None:
        fp["method"] = method.name
        fp["method_params"] = content_digest(stable_json(method.params()))
        fp["method_state"] = content_digest(method.fingerprint_parts(adapter, probe_rows))
    return fp


def _key(fp: dict[str, Any]) -> str:
    return hashlib.sha256(stable_json(fp).encode()).hexdigest()


class Checkpoint:
    """One checkpoint file of one piece of work: :meth:`load` what a compatible earlier run saved, :meth:`save`
    atomically (temporary file, then rename, so an interrupted save never corrupts the last one)."""

    def __init__(self, path: str, fp: dict[str, Any], mode: str = "resume", every: float = 30.0):
        self.path = os.fspath(path)
        self.fingerprint = fp
        self.key = _key(fp)
        self.mode = mode
        self.every = float(every)

    def load(self) -> dict[str, np.ndarray] | None:
        """The arrays stored at the path (None when there is none, or when overwriting)."""
        if self.mode == "overwrite" or not os.path.exists(self.path):
            return None
        try:
            with np.load(self.path, allow_pickle=False) as f:
                arrays = {name: f[name] for name in f.files}
        except Exception as exc:  # noqa: BLE001 - any unreadable file gets the same advice
            raise MetagameError(
                f"cannot read checkpoint {self.path!r} ({exc}); delete it, pass another checkpoint path, or "
                f"checkpoint_mode='overwrite'"
            ) from None
        if str(arrays.get("key")) != self.key:
            raise MetagameError(
                f"checkpoint {self.path!r} was written for different parameters ({self._difference(arrays)} differ); "
                f"pass another checkpoint path, delete the file, or pass checkpoint_mode='overwrite' to start afresh"
            )
        return arrays

    def _difference(self, arrays: dict[str, np.ndarray]) -> str:
        try:
            stored = json.loads(str(arrays["fingerprint"]))
        except Exception:  # noqa: BLE001 - an old or foreign file
            return "the format (written by another version?)"
        keys = sorted(set(stored) | set(self.fingerprint))
        diff = [k for k in keys if stable_json(stored.get(k)) != stable_json(self.fingerprint.get(k))]
        names = {"probe_values": "model outputs", "model": "model", "inputs": "inputs", "baselines": "baselines",
                 "method_state": "method (its object, settings or forward function)"}
        return ", ".join(names.get(k, k) for k in diff) or "the fingerprint"

    def save(self, **arrays: np.ndarray) -> None:
        tmp = self.path + ".tmp.npz"
        np.savez_compressed(tmp, key=np.asarray(self.key), fingerprint=np.asarray(stable_json(self.fingerprint)), **arrays)
        os.replace(tmp, self.path)


__all__ = ["Checkpoint", "N_PROBES", "probe_coalitions", "run_fingerprint"]
