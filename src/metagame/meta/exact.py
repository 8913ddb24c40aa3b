"""Exact meta-attributions: every non-empty coalition's attribution vector computed once."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import Callable, Literal

import numpy as np

from ..errors import MetagameError
from ..games.masked import AttributionGame, MaskedModelGame
from ..methods.base import AttributionMethod
from ..models.base import ModelAdapter
from ..players.coalitions import EXACT_MAX_PLAYERS, chunks_of_all, check_exact_size
from ..solvers.exact import restricted_attributions, shapley_values
from .checkpoint import checkpoint_key, read_checkpoint, write_checkpoint
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


#: seconds between checkpoint saves of an exact run
CHECKPOINT_EVERY = 30.0


def _fill_table(
    d: int,
    k: int,
    evaluate: Callable[[np.ndarray], np.ndarray],
    desc: str,
    progress: bool | None,
    chunk: int,
    skip_empty: bool,
    checkpoint: str | None,
    key: str,
) -> np.ndarray:
    """Rows of a ``[2**d, k]`` table in bitmask order, chunk by chunk; with a checkpoint the finished prefix is
    saved every :data:`CHECKPOINT_EVERY` seconds and on interruption, and a rerun resumes after it."""
    table = np.zeros((2**d, k))
    done = 0
    stored = read_checkpoint(checkpoint, key) if checkpoint else None
    if stored is not None:
        done = int(stored["done"])
        table[:done] = stored["table"].reshape(done, k)
    last = time.monotonic()

    def save():
        if checkpoint:
            write_checkpoint(checkpoint, key, done=np.asarray(done), table=table[:done])

    with progress_bar(2**d, desc, progress) as bar:
        bar.update(done)
        try:
            for start, rows in chunks_of_all(d, chunk):
                if start + len(rows) <= done:
                    continue
                lo = max(done - start, 1 if start == 0 and skip_empty else 0)
                if lo < len(rows):
                    table[start + lo : start + len(rows)] = evaluate(rows[lo:])
                bar.update(start + len(rows) - done)
                done = start + len(rows)
                if checkpoint and time.monotonic() - last > CHECKPOINT_EVERY:
                    save()
                    last = time.monotonic()
        except BaseException:
            save()
            raise
    return table


def _table_key(model: ModelAdapter, what: str, method: AttributionMethod | None = None) -> str:
    params = {"what": what, "d": model.n_players, "players": list(model.players), "model": model.describe()}
    if method is not None:
        params.update(method=method.name, method_params=method.params())
    return checkpoint_key(params)


def value_table(
    model: ModelAdapter, progress: bool | None = None, chunk: int = 4096, checkpoint: str | None = None
) -> np.ndarray:
    """f(x_S) for all ``2**d`` coalitions in bitmask order, evaluated in batches."""
    game = MaskedModelGame(model)
    return _fill_table(
        model.n_players, 1, lambda rows: game(rows), "model values", progress, chunk, False, checkpoint,
        _table_key(model, "values"),
    )[:, 0]


def attribution_table(
    model: ModelAdapter,
    method: AttributionMethod,
    include_empty: bool,
    progress: bool | None = None,
    chunk: int | None = None,
    checkpoint: str | None = None,
) -> tuple[np.ndarray, int]:
    """φ(f, x_S) for every coalition (the empty one only if asked) as ``[2**d, d]``; returns calls made.

    ``chunk`` coalitions go to the method per call (default: ``max(1024, model.batch_size)``).
    """
    d = model.n_players
    chunk = chunk or max(1024, model.batch_size)
    game = AttributionGame(model, method, batch_size=chunk)
    table = _fill_table(
        d, d, game, f"attributions ({method.name})", progress, chunk, not include_empty, checkpoint,
        _table_key(model, "attributions", method),
    )
    return table, 2**d - (0 if include_empty else 1)


def exact_meta_attributions(
    model: ModelAdapter,
    method: AttributionMethod,
    variant: Variant = "metagame",
    value: Value = "shapley",
    progress: bool | None = None,
    max_players: int = EXACT_MAX_PLAYERS,
    checkpoint: str | None = None,
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
        v = value_table(model, progress, checkpoint=checkpoint)
        if rule == "shapley" and variant == "metagame" and value == "shapley":
            matrix = meta_shapley_from_values(v)
            first = shapley_values(v)
            return ExactOutcome(matrix, first, 2**d, "moebius", float(v[full]), float(v[0]))
        phi = restricted_attributions(v, rule)
        calls = 2**d
        route: Route = "value_table"
        vf, ve = float(v[full]), float(v[0])
    else:
        phi, calls = attribution_table(
            model, method, include_empty=(variant == "serial"), progress=progress, checkpoint=checkpoint
        )
        route = "attributions"
        vf = ve = None
    if variant == "metagame":
        matrix = metagame_from_table(phi, value)
    else:
        matrix = serial_from_table(phi, value)
    return ExactOutcome(matrix, phi[full].copy(), calls, route, vf, ve, extras={"attribution_at_baseline": phi[0].copy()} if variant == "serial" else {})
