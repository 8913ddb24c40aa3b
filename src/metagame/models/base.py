"""The model-adapter protocol: a model seen through its players.

An adapter gives two views of one scalar model output f:

* ``values(coalitions)`` -> ``f(x_S)`` for a batch of coalitions (forward only), used by the
  perturbation and surrogate methods;
* a differentiable view used by the gradient methods and Captum: ``embed(coalitions)`` returns
  continuous inputs ``z`` (= x_S in the space gradients are taken in: raw features, token or
  patch embeddings, component gates), matching baselines ``zb`` and per-row extra arguments;
  ``forward(z, extra)`` maps them to f; ``reduce`` sums coordinate scores into player scores.

Adapters count model rows and forward passes, and may cache values by coalition.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from ..errors import ModelOutputError
from ..players.coalitions import as_coalitions, coalition_keys, format_coalition


def repeat_rows(extra: Any, repeats: int) -> Any:
    """Repeat every row of ``extra`` (None, tensor, tuple/list or dict of tensors) ``repeats`` times."""
    if extra is None:
        return None
    if isinstance(extra, torch.Tensor):
        return extra.repeat_interleave(repeats, dim=0)
    if isinstance(extra, (tuple, list)):
        return type(extra)(repeat_rows(e, repeats) for e in extra)
    if isinstance(extra, dict):
        return {k: repeat_rows(v, repeats) for k, v in extra.items()}
    return extra


def take_rows(extra: Any, rows: slice | np.ndarray | torch.Tensor) -> Any:
    """Select rows of ``extra`` (same containers as :func:`repeat_rows`)."""
    if extra is None:
        return None
    if isinstance(extra, torch.Tensor):
        return extra[rows]
    if isinstance(extra, (tuple, list)):
        return type(extra)(take_rows(e, rows) for e in extra)
    if isinstance(extra, dict):
        return {k: take_rows(v, rows) for k, v in extra.items()}
    return extra


class ModelAdapter:
    """Base class of model adapters. Subclasses implement ``embed``, ``forward`` and ``reduce``
    (and may override ``_values`` when a cheaper forward-only path exists)."""

    #: players
    n_players: int
    players: list[str]
    #: what kind of players these are ("feature", "token", "word_a", "patch", "data", "head", ...)
    player_kinds: list[str] | None = None
    #: rows per forward pass
    batch_size: int = 256
    #: False for adapters without a gradient path (e.g. trained-on-subset data games)
    differentiable: bool = True

    def __init__(self, batch_size: int = 256, cache_values: bool = True):
        self.batch_size = int(batch_size)
        self.cache_values = cache_values
        self._value_cache: dict[bytes, float] = {}
        self.n_model_rows = 0
        self.n_forward_passes = 0

    # ---------------------------------------------------------------- forward-only values
    def values(self, coalitions) -> torch.Tensor:
        """f(x_S) for each row of ``coalitions`` (``bool[m, d]``) as a tensor ``[m]``, no grad."""
        coalitions = as_coalitions(coalitions, self.n_players)
        m = coalitions.shape[0]
        if not self.cache_values:
            return self._values_batched(coalitions)
        keys = coalition_keys(coalitions)
        out = np.empty(m, dtype=np.float64)
        missing: dict[bytes, int] = {}
        miss_rows: list[int] = []
        for r, key in enumerate(keys):
            hit = self._value_cache.get(key)
            if hit is None:
                if key not in missing:
                    missing[key] = len(miss_rows)
                    miss_rows.append(r)
            else:
                out[r] = hit
        dtype = self.dtype
        if miss_rows:
            fresh = self._values_batched(coalitions[miss_rows])
            dtype = fresh.dtype
            fresh_np = fresh.detach().cpu().double().numpy()
            for key, pos in missing.items():
                self._value_cache[key] = float(fresh_np[pos])
            for r, key in enumerate(keys):
                if key in missing:
                    out[r] = fresh_np[missing[key]]
        return torch.as_tensor(out).to(dtype)

    def _values_batched(self, coalitions: np.ndarray) -> torch.Tensor:
        parts = []
        with torch.no_grad():
            for start in range(0, coalitions.shape[0], self.batch_size):
                chunk = coalitions[start : start + self.batch_size]
                parts.append(self._values(chunk).detach())
        return torch.cat(parts) if parts else torch.zeros(0, dtype=self.dtype)

    def _values(self, coalitions: np.ndarray) -> torch.Tensor:
        z, _, extra = self.embed(coalitions)
        return self.forward(z, extra, row_coalitions=coalitions)

    # ---------------------------------------------------------------- differentiable view
    @property
    def dtype(self) -> torch.dtype:  # pragma: no cover - interface
        raise NotImplementedError

    def embed(self, coalitions: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, Any]:  # pragma: no cover
        """Continuous inputs ``z = x_S`` ``[m, *shape]``, baselines ``zb`` (same shape), extra args."""
        raise NotImplementedError

    def forward(self, z: torch.Tensor, extra: Any = None, row_coalitions: np.ndarray | None = None) -> torch.Tensor:  # pragma: no cover
        """f at continuous inputs ``z`` ``[n, *shape]`` -> ``[n]`` (differentiable)."""
        raise NotImplementedError

    def reduce(self, coordinate_scores: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        """Per-coordinate scores ``[m, *shape]`` -> per-player scores ``[m, d]``."""
        raise NotImplementedError

    # ---------------------------------------------------------------- helpers for subclasses
    def count(self, rows: int) -> None:
        """Record one forward pass of ``rows`` rows."""
        self.n_model_rows += int(rows)
        self.n_forward_passes += 1

    def check_output(self, out, n_rows: int, row_coalitions: np.ndarray | None = None) -> torch.Tensor:
        """Validate a raw model output for ``n_rows`` rows and return it as a ``[n_rows]`` tensor."""
        if not isinstance(out, torch.Tensor):
            out = torch.as_tensor(np.asarray(out))
        if out.ndim == 2 and out.shape[1] == 1:
            out = out[:, 0]
        if out.ndim == 0 and n_rows == 1:
            out = out.reshape(1)
        if out.ndim != 1 or out.shape[0] != n_rows:
            raise ModelOutputError(
                f"the model returned shape {tuple(out.shape)} for a batch of {n_rows} rows; it must return "
                f"one scalar per row, shape ({n_rows},). Select the explained output, e.g. "
                f"model=lambda x: net(x)[:, class_index]"
            )
        if not out.is_floating_point():
            out = out.to(self.dtype)
        bad = ~torch.isfinite(out.detach())
        if bool(bad.any()):
            r = int(torch.nonzero(bad)[0])
            where = ""
            if row_coalitions is not None and len(row_coalitions) == n_rows:
                where = f" at coalition S = {format_coalition(row_coalitions[r], self.players)}"
            raise ModelOutputError(
                f"the model returned a non-finite value ({float(out[r].detach())}){where} (row {r} of the batch); "
                f"check the model for overflow or division by zero on masked inputs, or choose other baselines"
            )
        return out

    def display_context(self) -> dict:
        """What a report shows about the input (texts, prompt, answer, model name ...); adapters override it."""
        return {}

    def describe(self) -> dict:
        """Metadata about the model for result files."""
        return {"adapter": type(self).__name__}

    def endpoint_values(self, full=None, empty=None) -> dict[str, float]:
        """``{"value_full": f(x_full), "value_empty": f(x_empty)}`` in one batched :meth:`values` call.

        ``full`` / ``empty`` are coalitions ``bool[d]`` (default: all players present / none present).
        """
        d = self.n_players
        full = np.ones(d, dtype=bool) if full is None else np.asarray(full, dtype=bool)
        empty = np.zeros(d, dtype=bool) if empty is None else np.asarray(empty, dtype=bool)
        v = self.values(np.stack([full, empty])).double().cpu().numpy()
        return {"value_full": float(v[0]), "value_empty": float(v[1])}


def player_labels(players: Sequence[str] | None, d: int, prefix: str = "x") -> list[str]:
    """Default player labels ``x0 .. x{d-1}``."""
    if players is None:
        return [f"{prefix}{i}" for i in range(d)]
    return [str(p) for p in players]
