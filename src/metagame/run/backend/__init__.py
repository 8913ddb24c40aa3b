"""Where a run's attribution calls happen: ``backend="local"`` (this process) or ``backend="ray"`` (Ray actors).

The engines never see the difference: they ask :func:`make_attribution_game` / :func:`make_value_game` for the game
S ↦ φ(f, x_S) (or S ↦ f(x_S)) and get the local :class:`~metagame.games.AttributionGame` or a Ray-backed game with
the same interface. The driver (this process) keeps everything that defines the run — the coalition order, the
tables, the estimators' state, the checkpoint, the progress bar; one evaluated coalition still serves every target.

**Workers** are Ray actors, each building the adapter once: from its recipe (``adapter.recipe``, an
:class:`AdapterRecipe`: the factory and arguments an entry point or command built it from, e.g. a model name/path;
a GPU worker builds it on its GPU when the recipe leaves ``device`` unset) when it has one, else from a copy of the
adapter object. They then attribute *pieces* of the engine's calls.

**The same numbers.** A piece is one of the calls the local game makes (``batch_size`` coalitions), or — for methods
that attribute a call in independent model passes (:meth:`~metagame.methods.base.AttributionMethod.coalitions_per_pass`:
the gradient methods and Captum classes) on adapters with the default ``attribute`` hook — a run of whole passes of
it, cut where the method cuts. Every model pass therefore sees the same rows as in the local run, and the results are
bitwise identical for deterministic methods on the same hardware. Adapters that cache intermediate results by content
across calls (two-tower halves; model values) compute a cached item once per worker, maybe in another batch: there the
numbers agree to rounding.

**Faults.** A worker that dies (crash, ``ray.kill``, lost node, out of memory) has its pieces re-run on the other
workers and is replaced by a fresh one; finished pieces are never recomputed. An exception raised by the model or the
method comes back as itself, with the worker's message (not a Ray traceback): a :class:`~metagame.errors.MetagameError`
at once, anything else after one retry on another worker. Ctrl-C (or any error) stops the workers; the engines save
their checkpoint as they always do.
"""


from __future__ import annotations

import contextlib
import contextvars
import weakref
from typing import Any, Iterator

from ...games.masked import AttributionGame, MaskedModelGame
from ...methods.base import AttributionMethod
from ...models.base import ModelAdapter
from ..options import RunOptions
from .common import _LIVE, COUNTERS, DEPTH, PIECES_PER_WORKER, RAY_EXTRA, require_ray  # noqa: F401
from .games import RayAttributionGame, RayValueGame
from .pool import WorkerPool
from .recipes import AdapterRecipe, set_recipe  # noqa: F401


# ------------------------------------------------------------------------------------------------ factories
def make_attribution_game(
    model: ModelAdapter, method: AttributionMethod, options: RunOptions | None = None, **game_kwargs: Any
) -> AttributionGame:
    """The game S ↦ φ(f, x_S) of ``method`` on ``model`` for the run's backend (module docstring).

    Args:
        model: the adapter.
        method: the inner attribution method.
        options: the run options (None or ``backend="local"``: the local game).
        **game_kwargs: :class:`~metagame.games.AttributionGame`'s options (``cache``, ``batch_size``).

    Returns:
        An :class:`~metagame.games.AttributionGame` (a :class:`RayAttributionGame` for ``backend="ray"``).
    """
    if options is None or options.backend == "local":
        return AttributionGame(model, method, **game_kwargs)
    pool, owned = _pool_for(model, options)
    game = RayAttributionGame(pool, model, method, **game_kwargs)
    if owned:
        weakref.finalize(game, pool.close)
    return game


def make_value_game(model: ModelAdapter, options: RunOptions | None = None, **game_kwargs: Any) -> MaskedModelGame:
    """The game S ↦ f(x_S) on ``model`` for the run's backend (a :class:`RayValueGame` for ``backend="ray"``)."""
    if options is None or options.backend == "local":
        return MaskedModelGame(model, **game_kwargs)
    pool, owned = _pool_for(model, options)
    game = RayValueGame(pool, model, **game_kwargs)
    if owned:
        weakref.finalize(game, pool.close)
    return game


_SESSION: contextvars.ContextVar[WorkerPool | None] = contextvars.ContextVar("metagame_worker_pool", default=None)


def live_pools() -> list[WorkerPool]:
    """The worker pools of this process that are running now (for monitoring and tests)."""
    return [p for p in list(_LIVE) if p.started and not p.closed]


@contextlib.contextmanager
def backend_session(model: ModelAdapter, options: RunOptions) -> Iterator[WorkerPool | None]:
    """The run's workers for the length of a ``with`` block (None for the local backend): started on first use, shared
    by every game made for ``model`` inside the block, stopped at its end (also on errors and Ctrl-C)."""
    if options.backend == "local":
        yield None
        return
    pool = WorkerPool(model, options)
    token = _SESSION.set(pool)
    try:
        yield pool
    finally:
        _SESSION.reset(token)
        pool.close()


def backend_metadata(pool: WorkerPool | None) -> dict[str, Any]:
    """What a result records about where it ran (``metadata["backend"]``)."""
    return {"name": "local", "workers": 1} if pool is None else pool.describe()


def _pool_for(model: ModelAdapter, options: RunOptions) -> tuple[WorkerPool, bool]:
    """The session's pool when it serves ``model`` with these options, else a new one owned by the caller."""
    pool = _SESSION.get()
    if pool is not None and pool.model is model and not pool.closed and pool.same_backend(options):
        return pool, False
    return WorkerPool(model, options), True


__all__ = [
    "AdapterRecipe",
    "RayAttributionGame",
    "RayValueGame",
    "WorkerPool",
    "backend_metadata",
    "backend_session",
    "live_pools",
    "make_attribution_game",
    "make_value_game",
    "require_ray",
    "set_recipe",
]
