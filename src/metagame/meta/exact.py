"""Exact meta-attributions: every non-empty coalition's attribution vector computed once."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from ..errors import MetagameError
from ..games.masked import AttributionGame, MaskedModelGame
from ..methods.base import AttributionMethod
from ..models.base import ModelAdapter
from ..players.coalitions import EXACT_MAX_PLAYERS, chunks_of_all, check_exact_size
from ..solvers.exact import restricted_attributions, shapley_values
from .tables import Value, Variant, meta_shapley_from_values, metagame_from_table, serial_from_table

Route = Literal["attributions", "value_table", "moebius"]


@dataclass
class ExactOutcome:
    """What the exact engine computed (the API wraps it into a result object)."""

    matrix: np.ndarray
    first_order: np.ndarray
    n_attribution_calls: int
    route: Route
    value_full: float | None = None
    value_empty: float | None = None
    extras: dict = field(default_factory=dict)


def progress_bar(total: int, desc: str, progress: bool | None, unit: str = "coalition"):
    """A tqdm bar: always with ``progress=True``, never with False; with None only on a terminal and only
    once the work has run for more than 2 seconds."""
    from tqdm.auto import tqdm

    show = progress if progress is not None else sys.stderr.isatty()
    return tqdm(total=total, desc=desc, unit=unit, disable=not show, delay=0 if progress else 2.0, leave=False)


def value_table(model: ModelAdapter, progress: bool | None = None, chunk: int = 4096) -> np.ndarray:
    """f(x_S) for all ``2**d`` coalitions in bitmask order, evaluated in batches."""
    d = model.n_players
    game = MaskedModelGame(model)
    out = np.empty(2**d)
    with progress_bar(2**d, "model values", progress) as bar:
        for start, rows in chunks_of_all(d, chunk):
            out[start : start + len(rows)] = game(rows)[:, 0]
            bar.update(len(rows))
    return out


def attribution_table(
    model: ModelAdapter, method: AttributionMethod, include_empty: bool, progress: bool | None = None, chunk: int | None = None
) -> tuple[np.ndarray, int]:
    """φ(f, x_S) for every coalition (the empty one only if asked) as ``[2**d, d]``; returns calls made.

    ``chunk`` coalitions go to the method per call (default: ``max(1024, model.batch_size)``).
    """
    d = model.n_players
    chunk = chunk or max(1024, model.batch_size)
    game = AttributionGame(model, method, batch_size=chunk)
    table = np.zeros((2**d, d))
    with progress_bar(2**d, f"attributions ({method.name})", progress) as bar:
        for start, rows in chunks_of_all(d, chunk):
            lo = 0
            if start == 0 and not include_empty:
                lo = 1
            if lo < len(rows):
                table[start + lo : start + len(rows)] = game(rows[lo:])
            bar.update(len(rows))
    return table, game.n_calls


def exact_meta_attributions(
    model: ModelAdapter,
    method: AttributionMethod,
    variant: Variant = "metagame",
    value: Value = "shapley",
    progress: bool | None = None,
    max_players: int = EXACT_MAX_PLAYERS,
) -> ExactOutcome:
    """Exact meta-attribution matrix of ``method`` on ``model`` (see SPEC.md).

    Routes: exact perturbation methods read everything off the 2**d model values (``value_table``;
    inner and outer Shapley with the metagame variant use the Möbius identity, ``moebius``); every
    other method computes each coalition's attribution vector once (``attributions``).
    """
    if variant not in ("metagame", "serial"):
        raise MetagameError(f"unknown variant {variant!r}; use 'metagame' (default) or 'serial'")
    if value not in ("shapley", "banzhaf"):
        raise MetagameError(f"unknown value {value!r}; use 'shapley' (default) or 'banzhaf'")
    d = model.n_players
    check_exact_size(d, max_players)
    full = 2**d - 1
    rule = method.table_rule
    if rule is not None:
        v = value_table(model, progress)
        if rule == "shapley" and variant == "metagame" and value == "shapley":
            matrix = meta_shapley_from_values(v)
            first = shapley_values(v)
            return ExactOutcome(matrix, first, 2**d, "moebius", float(v[full]), float(v[0]))
        phi = restricted_attributions(v, rule)
        calls = 2**d
        route: Route = "value_table"
        vf, ve = float(v[full]), float(v[0])
    else:
        phi, calls = attribution_table(model, method, include_empty=(variant == "serial"), progress=progress)
        route = "attributions"
        vf = ve = None
    if variant == "metagame":
        matrix = metagame_from_table(phi, value)
    else:
        matrix = serial_from_table(phi, value)
    return ExactOutcome(matrix, phi[full].copy(), calls, route, vf, ve, extras={"attribution_at_baseline": phi[0].copy()} if variant == "serial" else {})
