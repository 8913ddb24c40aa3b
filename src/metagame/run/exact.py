"""Exact meta-attributions: every non-empty coalition's attribution vector computed once.

Routes (``metadata["parameters"]["route"]``):

* ``attributions`` — the inner method attributes each of the 2^d − 1 non-empty coalitions once (2^d for the
  serial variant or with side targets), in batches; one call serves every target it contains.
* ``value_table`` — exact perturbation methods (occlusion, Shapley, Banzhaf) read every φ(x_S) off the 2^d model
  values. When the method is exact only up to a coalition size (``exact_limit``), larger coalitions are attributed
  by the method itself on the same values, so the engine computes what the method with its options computes.
* ``moebius`` — Meta-SV (inner and outer Shapley, metagame variant) from the Möbius coefficients of the values.

Cost in memory: the table holds 2^d × d float64 (d = 16: 8 MiB; d = 20: 160 MiB).
"""

from __future__ import annotations

import time
from typing import Callable, Literal

import numpy as np
import torch

from ..methods.base import AttributionMethod
from ..models.base import ModelAdapter
from ..players.coalitions import chunks_of_all, coalition_index, coalitions_from_index, sizes_of_all
from ..results.extras import (
    ATTRIBUTION_AT_BASELINE,
    FIRST_ORDER_MAPS,
    MAPS,
    SIDE_AT_EMPTY,
    SIDE_FIRST_ORDER,
    SIDE_MATRIX,
)
from ..solvers.exact import restricted_attributions, shapley_values
from .backend import make_attribution_game, make_value_game
from .checkpoint import Checkpoint
from .options import RunOptions
from .outcome import Outcome
from .progress import progress_bar
from .tables import meta_shapley_from_values, metagame_from_table, serial_from_table, side_from_table
from .third_order import check_order, third_order_from_table

Route = Literal["attributions", "value_table", "moebius"]
#: builds the checkpoint of one piece of work (``"values"`` / ``"attributions"``), or None without checkpointing
CheckpointFactory = Callable[[str], "Checkpoint | None"]


def fill_table(
    d: int,
    width: int,
    evaluate: Callable[[np.ndarray], np.ndarray],
    desc: str,
    progress: bool | None,
    chunk: int,
    skip_empty: bool,
    checkpoint: Checkpoint | None,
) -> np.ndarray:
    """Rows of a ``[2**d, width]`` table in bitmask order, chunk by chunk; with a checkpoint the finished prefix is
    saved every ``checkpoint.every`` seconds, at the end and on interruption, and a rerun resumes after it.

    A game with ``map_unordered`` (every :class:`~metagame.games.Game`) gets the chunks as a stream and may evaluate
    several at once (the Ray backend): finished chunks are written as they arrive and the saved prefix grows as the
    chunks before it complete."""
    table = np.zeros((2**d, width))
    done = 0
    stored = checkpoint.load() if checkpoint is not None else None
    if stored is not None:
        done = int(stored["done"])
        table[:done] = stored["table"].reshape(done, width)
    resumed = done
    last = time.monotonic()
    spans: list[tuple[int, int, int]] = []  # per chunk handed out: (first row it covers, first row computed, end)
    finished: dict[int, int] = {}

    def save() -> None:
        if checkpoint is not None:
            checkpoint.save(done=np.asarray(done), table=table[:done])

    def chunks():
        for start, rows in chunks_of_all(d, chunk):
            stop = start + len(rows)
            if stop <= resumed:
                continue
            lo = max(resumed - start, 1 if start == 0 and skip_empty else 0)
            spans.append((max(start, resumed), start + lo, stop))
            yield rows[lo:]

    mapped = getattr(evaluate, "map_unordered", None)
    results = mapped(chunks()) if mapped is not None else ((k, evaluate(rows)) for k, rows in enumerate(chunks()))
    with progress_bar(2**d, desc, progress) as bar:
        bar.update(done)
        try:
            for k, vals in results:
                begin, first, stop = spans[k]
                if stop > first:
                    table[first:stop] = vals
                bar.update(stop - begin)
                finished[begin] = stop
                while done in finished:
                    done = finished.pop(done)
                if checkpoint is not None and time.monotonic() - last >= checkpoint.every:
                    save()
                    last = time.monotonic()
        except BaseException:
            save()
            raise
    save()
    return table


def value_table(
    model: ModelAdapter,
    progress: bool | None = None,
    chunk: int = 4096,
    checkpoint: Checkpoint | None = None,
    options: RunOptions | None = None,
) -> np.ndarray:
    """f(x_S) for all ``2**d`` coalitions in bitmask order, evaluated in batches (on ``options.backend``)."""
    game = make_value_game(model, options)
    return fill_table(model.n_players, 1, game, "model values", progress, chunk, False, checkpoint)[:, 0]


def attribution_table(
    model: ModelAdapter,
    method: AttributionMethod,
    include_empty: bool,
    progress: bool | None = None,
    chunk: int | None = None,
    checkpoint: Checkpoint | None = None,
    options: RunOptions | None = None,
) -> tuple[np.ndarray, int]:
    """φ(f, x_S) for every coalition (the empty one only if asked) as ``[2**d, width]``; returns calls made.

    ``width`` = d × prod(``model.attribution_shape``) + len(``model.side_targets``). ``chunk`` coalitions go to the
    method per call (default: ``max(1024, model.batch_size)``), on ``options.backend``.
    """
    d = model.n_players
    chunk = chunk or max(1024, model.batch_size)
    game = make_attribution_game(model, method, options, batch_size=chunk)
    table = fill_table(
        d, game.n_outputs, game, f"attributions ({method.name})", progress, chunk, not include_empty, checkpoint
    )
    return table, 2**d - (0 if include_empty else 1)


class _TableView(ModelAdapter):
    """The adapter's players with f(x_S) read from a finished value table (no model calls): lets a method attribute
    the coalitions its table rule does not cover (e.g. a sampled Shapley value above ``exact_limit``)."""

    def __init__(self, model: ModelAdapter, values: np.ndarray):
        super().__init__(batch_size=max(model.batch_size, 4096), cache_values=False)
        self.n_players = model.n_players
        self.players = list(model.players)
        self._dtype = model.dtype
        self._table = torch.as_tensor(np.asarray(values, dtype=np.float64))

    @property
    def dtype(self) -> torch.dtype:
        return self._dtype

    def _values(self, coalitions: np.ndarray) -> torch.Tensor:
        return self._table[torch.as_tensor(coalition_index(coalitions))].to(self._dtype)


def _restricted_with_method(v: np.ndarray, model: ModelAdapter, method: AttributionMethod, rule: str) -> np.ndarray:
    """φ(x_S) for every S from the value table: the closed-form rule where the method is exact, the method itself
    (reading the same table) on coalitions above its ``table_rule_limit``."""
    d = model.n_players
    phi = restricted_attributions(v, rule)
    limit = method.table_rule_limit
    if limit is not None and limit < d:
        big = np.flatnonzero(sizes_of_all(d) > limit)
        view = _TableView(model, v)
        rows = coalitions_from_index(big, d)
        for start in range(0, len(big), 256):
            sel = slice(start, start + 256)
            phi[big[sel]] = method.attribute(view, rows[sel]).detach().cpu().double().numpy()
    return phi


def exact_meta_attributions(
    model: ModelAdapter,
    method: AttributionMethod,
    options: RunOptions | None = None,
    checkpoint_for: CheckpointFactory | None = None,
) -> Outcome:
    """Exact meta-attribution matrix of ``method`` on ``model`` (docs/mathematics.md), by the cheapest route that computes what
    the method computes (module docstring; ``params["route"]``). Vector-valued adapters (``attribution_shape``) get
    ``extras["maps"]`` ``[d, d, *shape]`` with ``matrix`` = its sum over the shape; adapters with ``side_targets``
    get ``extras["side_matrix"]`` ``[k, d]`` (value of each player for each always-present side target). With
    ``options.order == 3`` the outcome's ``tensor`` holds T[i, j, k] from the same table (no more calls)."""
    options = options or RunOptions()
    check_order(options)
    variant, value, progress = options.variant, options.value, options.progress
    checkpoint_for = checkpoint_for or (lambda what: None)
    d = model.n_players
    full = 2**d - 1
    shape = tuple(model.attribution_shape)
    n_side = len(model.side_targets)
    rule = method.table_rule if not shape and not n_side else None
    if rule is not None:
        v = value_table(model, progress, checkpoint=checkpoint_for("values"), options=options)
        exact_everywhere = method.table_rule_limit is None or method.table_rule_limit >= d
        if rule == "shapley" and exact_everywhere and variant == "metagame" and value == "shapley":
            out = Outcome(meta_shapley_from_values(v), shapley_values(v), 2**d, params={"route": "moebius"})
            phi = None  # the Möbius route builds no table; order 3 gets it from the values by the table rule
        else:
            phi = _restricted_with_method(v, model, method, rule)
            out = _from_table(phi, variant, value, 2**d, "value_table")
        out.value_full, out.value_empty = float(v[full]), float(v[0])
        if options.order == 3:
            out.tensor = third_order_from_table(restricted_attributions(v, "shapley") if phi is None else phi)
        return out
    include_empty = variant == "serial" or n_side > 0
    table, calls = attribution_table(
        model, method, include_empty=include_empty, progress=progress, checkpoint=checkpoint_for("attributions"),
        options=options,
    )
    per = int(np.prod(shape)) if shape else 1
    phi = table[:, : d * per].reshape((2**d, d) + shape)
    out = _from_table(phi, variant, value, calls, "attributions", model.summary_weights())
    if n_side:
        side = table[:, d * per :]
        out.extras.update({SIDE_MATRIX: side_from_table(side, value), SIDE_FIRST_ORDER: side[full].copy(),
                           SIDE_AT_EMPTY: side[0].copy()})
    if options.order == 3:
        out.tensor = third_order_from_table(phi)
    return out


def _from_table(
    phi: np.ndarray, variant: str, value: str, calls: int, route: Route, weights: np.ndarray | None = None
) -> Outcome:
    """Matrix (and maps, for vector-valued attributions) from a finished table ``phi[2**d, d, *k]``; the matrix of
    vector-valued attributions is Σ_p w_p M[i, j, p] (``weights`` w over the flattened trailing coordinates; None:
    the plain sum), and first_order the same summary of φ(x)."""
    n, d = phi.shape[:2]
    full = n - 1
    maps = metagame_from_table(phi, value) if variant == "metagame" else serial_from_table(phi, value)
    extras: dict[str, np.ndarray] = {}
    if phi.ndim > 2:
        w = np.ones(int(np.prod(phi.shape[2:]))) if weights is None else np.asarray(weights, dtype=np.float64)
        extras[MAPS] = maps
        extras[FIRST_ORDER_MAPS] = phi[full].copy()
        matrix = maps.reshape(d, d, -1) @ w
        first = phi[full].reshape(d, -1) @ w
        if variant == "serial":
            extras[ATTRIBUTION_AT_BASELINE] = phi[0].reshape(d, -1) @ w
    else:
        matrix, first = maps, phi[full].copy()
        if variant == "serial":
            extras[ATTRIBUTION_AT_BASELINE] = phi[0].copy()
    return Outcome(matrix, first, calls, params={"route": route}, extras=extras)


__all__ = ["attribution_table", "exact_meta_attributions", "fill_table", "value_table"]
