"""The model-adapter base class: a model seen through its players (the contract: :mod:`metagame.models.contract`).

An adapter gives two views of one scalar model output f:

* ``values(coalitions)`` -> ``f(x_S)`` for a batch of coalitions (forward only), used by the
  perturbation and surrogate methods;
* a differentiable view used by the gradient methods and Captum: ``embed(coalitions)`` returns
  continuous inputs ``z`` (= x_S in the space gradients are taken in: raw features, token or
  patch embeddings, component gates), matching baselines ``zb`` and per-row extra arguments;
  ``forward(z, extra)`` maps them to f; ``reduce`` sums coordinate scores into player scores.

Adapters count model rows and forward passes, and cache values by coalition content.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..errors import ModelOutputError
from ..players.coalitions import EXACT_MAX_PLAYERS, CoalitionCache, as_coalitions, format_coalition


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
    """Base class of model adapters: the required members of the adapter contract
    (:class:`~metagame.models.contract.Adapter`) with defaults. Subclasses implement ``embed``, ``forward`` and
    ``reduce`` (the :class:`~metagame.models.contract.Differentiable` view; ``values`` uses it unless ``_values`` is
    overridden with a cheaper forward-only path) and override what applies to them:

    * ``exact_max_players`` — the most players explained exactly unless the caller passes ``budget``;
    * :meth:`display_context` — what a report shows about the input (texts, prompt, model name);
    * :meth:`finalize` — add adapter-specific extras (images, cross blocks, maps) to a finished result;
    * :meth:`fingerprint_parts` — everything that determines the numbers (inputs, texts, model state), hashed
      by :func:`metagame.models.fingerprint.fingerprint` to key checkpoints.

    Optional capabilities (:mod:`metagame.models.contract`) are added by providing their members: a torch ``model``,
    ``native_input = True``, ``knn_tables``, ``training_runs``, ``side_targets``, ``attribution_shape``.
    """

    #: players
    n_players: int
    players: list[str]
    #: what kind of players these are ("feature", "token", "word_a", "patch", "data", "head", ...)
    player_kinds: list[str] | None = None
    #: rows per forward pass
    batch_size: int = 256
    #: False for adapters without a gradient path (e.g. trained-on-subset data games)
    differentiable: bool = True
    #: the most players explained exactly by default (2^d coalitions); beyond it ``budget`` is required
    exact_max_players: int = EXACT_MAX_PLAYERS
    #: True when ``embed``'s z is the user's own model input (Captum instances bound to the user's forward apply)
    native_input: bool = False
    #: labels of always-present targets whose attributions ``reduce`` returns after the d player columns
    side_targets: tuple[str, ...] = ()
    #: per-player shape of vector-valued attributions (a method then returns ``[m, d, *attribution_shape]``,
    #: e.g. one concept map over the image patches per player); () for scalar attributions
    attribution_shape: tuple[int, ...] = ()
    #: how to build this adapter again in another process (:class:`~metagame.run.backend.AdapterRecipe`; set by the
    #: entry points and commands), used by Ray workers; None: workers get a copy of the adapter object
    recipe: Any = None

    def __init__(self, batch_size: int = 256, cache_values: bool = True):
        self.batch_size = int(batch_size)
        self.cache_values = cache_values
        self.value_cache = CoalitionCache()
        self.n_model_rows = 0
        self.n_forward_passes = 0

    # ---------------------------------------------------------------- forward-only values
    def values(self, coalitions) -> torch.Tensor:
        """f(x_S) for each row of ``coalitions`` (``bool[m, d]``) as a tensor ``[m]``, no grad."""
        coalitions = as_coalitions(coalitions, self.n_players)
        if not self.cache_values:
            return self._values_batched(coalitions)
        dtypes: list[torch.dtype] = []

        def compute(rows: np.ndarray) -> np.ndarray:
            fresh = self._values_batched(rows)
            dtypes.append(fresh.dtype)
            return fresh.detach().cpu().double().numpy()

        out = self.value_cache.fill(coalitions, compute)
        return torch.as_tensor(out.reshape(len(coalitions))).to(dtypes[0] if dtypes else self.dtype)

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
                f"model=lambda x: net(x)[:, class_index]{self.shape_hint()}"
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

    def shape_hint(self) -> str:
        """Extra advice appended to output-shape errors (adapters with a raw input shape override it)."""
        return ""

    # ---------------------------------------------------------------- protocol hooks
    def attribute(self, method: Any, coalitions: np.ndarray) -> torch.Tensor:
        """φ(f, x_S) of ``method`` for each coalition row (``[m, d, *attribution_shape]``, plus side-target columns).

        The engine always attributes through this hook; views of another adapter (e.g. patch maps) override it to
        run the method on the adapter they view.
        """
        return method.attribute(self, coalitions)

    def display_context(self) -> dict:
        """What a report shows about the input (texts, prompt, answer, model name ...); adapters override it."""
        return {}

    def finalize(self, result: Any) -> None:
        """Add adapter-specific extras to a finished result (called once by :func:`metagame.explain`)."""

    def exact_hint(self) -> str:
        """Advice added to the error for too many players in an exact run (e.g. 'use a coarser grid')."""
        return ""

    def explained(self) -> dict[str, str]:
        """What was explained, in words: ``f`` (the scored output, with the exact tokens or classes it reads),
        ``masking`` (what an absent player becomes) and ``empty`` (the coalition with every player absent). Stored in
        ``result.metadata["explained"]`` and shown by :meth:`MetaAttribution.describe`, the terminal and the report."""
        return {"f": f"the scalar output of {type(self).__name__}", "masking": "absent players as this adapter masks them",
                "empty": "every player absent"}

    def describe(self) -> dict:
        """Metadata about the model for result files."""
        return {"adapter": type(self).__name__}

    def fingerprint_parts(self) -> dict[str, Any]:
        """Everything that determines f(x_S) besides the coalition: inputs, baselines, texts, image bytes, training
        data, the model (a module or function). Hashed by :func:`metagame.models.fingerprint.fingerprint`."""
        return {"describe": self.describe()}

    def summary_weights(self) -> np.ndarray | None:
        """For vector-valued attributions: weights ``[prod(attribution_shape)]`` of the scalar summary that becomes
        the result's ``matrix`` and ``first_order`` (None: the plain sum, e.g. a map's mass)."""
        return None

    def probe_values(self, coalitions: np.ndarray) -> np.ndarray:
        """Numbers at a few fixed coalitions that change when the model does (checkpoint fingerprints): f(x_S)."""
        return self.values(coalitions).double().cpu().numpy()

    def endpoint_values(self, full=None, empty=None) -> dict[str, float]:
        """``{"value_full": f(x_full), "value_empty": f(x_empty)}`` in one batched :meth:`values` call.

        ``full`` / ``empty`` are coalitions ``bool[d]`` (default: all players present / none present).
        """
        d = self.n_players
        full = np.ones(d, dtype=bool) if full is None else np.asarray(full, dtype=bool)
        empty = np.zeros(d, dtype=bool) if empty is None else np.asarray(empty, dtype=bool)
        v = self.values(np.stack([full, empty])).double().cpu().numpy()
        return {"value_full": float(v[0]), "value_empty": float(v[1])}
