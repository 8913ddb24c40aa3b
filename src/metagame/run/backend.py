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
import inspect
import math
import os
import pickle
import sys
import time
import warnings
import weakref
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator

import numpy as np

from ..errors import MetagameError
from ..games.masked import AttributionGame, MaskedModelGame
from ..methods.base import AttributionMethod
from ..models.base import ModelAdapter
from .options import RunOptions

#: the install hint of every "Ray is missing" error
RAY_EXTRA = "pip install 'metagame[ray]'"
#: adapter counters of model work: workers report their increments, which the driver's adapter adds to its own
COUNTERS = ("n_model_rows", "n_forward_passes", "n_tower_rows")
#: pieces in flight per worker: one running and one waiting behind it, so no worker idles while the driver collects
DEPTH = 2
#: pieces per worker a cuttable call is cut into (more balance the load, fewer cost less overhead)
PIECES_PER_WORKER = 2
#: seconds between checks for Ctrl-C while waiting for workers
_POLL = 0.2


def require_ray() -> Any:
    """The ``ray`` module, or a :class:`MetagameError` naming the extra to install."""
    try:
        import ray
    except ImportError:
        raise MetagameError(f"backend='ray' needs Ray, which is not installed; {RAY_EXTRA} (or use backend='local')") from None
    return ray


# ------------------------------------------------------------------------------------------------ recipes
@dataclass(frozen=True)
class AdapterRecipe:
    """How to build an adapter again in another process: ``factory(*args, **kwargs)`` (picklable: a model name/path
    and keyword options are a cheap recipe; a loaded model travels inside it)."""

    factory: Callable[..., ModelAdapter]
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)
    #: steps applied to the built adapter in order, ``(fn, options)`` with ``fn(adapter, options) -> adapter`` (an
    #: entry point's extension, e.g. ``components=``)
    then: tuple = ()

    def build(self, gpu: bool = False) -> ModelAdapter:
        """The adapter. On a GPU worker (``gpu=True``) a factory whose ``device`` option was left unset builds on the
        worker's GPU."""
        kwargs = dict(self.kwargs)
        if gpu and kwargs.get("device") is None and _takes(self.factory, "device"):
            kwargs["device"] = "cuda"
        adapter = self.factory(*self.args, **kwargs)
        for fn, options in self.then:
            adapter = fn(adapter, options)
        return adapter

    def extended(self, fn: Callable[[ModelAdapter, dict], ModelAdapter], options: dict) -> "AdapterRecipe":
        """This recipe followed by ``fn(adapter, options)``."""
        return AdapterRecipe(self.factory, self.args, self.kwargs, self.then + ((fn, dict(options)),))


def _takes(factory: Callable, name: str) -> bool:
    try:
        return name in inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return False


def set_recipe(adapter: ModelAdapter, factory: Callable[..., ModelAdapter], *args: Any, **kwargs: Any) -> ModelAdapter:
    """Record how ``adapter`` was built (``factory(*args, **kwargs)``) so Ray workers can build their own; returns it."""
    adapter.recipe = AdapterRecipe(factory, tuple(args), dict(kwargs))
    return adapter


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
_LIVE: weakref.WeakSet[WorkerPool] = weakref.WeakSet()


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


# ------------------------------------------------------------------------------------------------ the worker
class _Worker:
    """A Ray actor holding one copy of the adapter (built in the constructor; a build error is kept and raised by
    every call, so the driver sees the user's own exception)."""

    def __init__(self, payload: bytes, batch_size: int):
        import ray

        self.adapter: ModelAdapter | None = None
        self.error: BaseException | None = None
        kind = "adapter"
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # one progress bar per run, the driver's
        try:
            kind, obj = pickle.loads(payload)
            if "transformers" in sys.modules:
                with contextlib.suppress(Exception):
                    sys.modules["transformers"].utils.logging.disable_progress_bar()
            adapter = obj.build(gpu=bool(ray.get_gpu_ids())) if kind == "recipe" else obj
            adapter.batch_size = batch_size
            self.adapter = adapter
        except Exception as exc:  # noqa: BLE001 - raised to the driver by the first call
            if isinstance(exc, ImportError):
                exc.add_note("(on a Ray worker: install that module on every node, or define the model in the script "
                             "you run)")
            elif kind == "recipe":
                exc.add_note("(while a Ray worker built the adapter from its recipe: the model name/path must be "
                             "reachable from every node)")
            self.error = exc

    def _adapter(self) -> ModelAdapter:
        if self.error is not None:
            raise self.error
        assert self.adapter is not None
        return self.adapter

    def info(self) -> dict[str, Any]:
        import ray
        import torch

        adapter = self._adapter()
        return {"pid": os.getpid(), "node": ray.get_runtime_context().get_node_id(),
                "gpus": [str(g) for g in ray.get_gpu_ids()], "players": list(adapter.players),
                "torch_threads": torch.get_num_threads()}

    def _counted(self, fn: Callable[[ModelAdapter], Any]) -> tuple[np.ndarray, dict[str, int]]:
        adapter = self._adapter()
        before = {k: int(getattr(adapter, k)) for k in COUNTERS if hasattr(adapter, k)}
        out = fn(adapter).detach().cpu().double().numpy()
        return out, {k: int(getattr(adapter, k)) - v for k, v in before.items()}

    def attribute(self, method: AttributionMethod, coalitions: np.ndarray) -> tuple[np.ndarray, dict[str, int]]:
        """φ(f, x_S) of each row, exactly as the local game computes it."""
        rows = np.array(coalitions, dtype=bool)  # a writable copy (Ray hands arrays over read-only)
        return self._counted(lambda adapter: adapter.attribute(method, rows))

    def values(self, coalitions: np.ndarray) -> tuple[np.ndarray, dict[str, int]]:
        """f(x_S) of each row."""
        rows = np.array(coalitions, dtype=bool)
        return self._counted(lambda adapter: adapter.values(rows))


_REMOTE_WORKER: Any = None


def _remote_worker(ray: Any) -> Any:
    global _REMOTE_WORKER
    if _REMOTE_WORKER is None:
        _REMOTE_WORKER = ray.remote(_Worker)
    return _REMOTE_WORKER


# ------------------------------------------------------------------------------------------------ the pool
@dataclass
class _Slot:
    """One worker position: the current actor, and the record of every actor that held it."""

    actor: Any
    record: dict[str, Any]
    load: int = 0


class WorkerPool:
    """Ray actors holding copies of one adapter, started on first use; :meth:`run` spreads pieces over them.

    ``workers`` records every actor started (coalitions and model rows it delivered, its node, whether it was lost),
    ``retried`` the pieces run again after a failure and ``replaced`` the workers started in place of lost ones.
    """

    def __init__(self, model: ModelAdapter, options: RunOptions):
        self.ray = require_ray()
        self.model = model
        self.options = options
        self.slots: list[_Slot] = []
        self.workers: list[dict[str, Any]] = []
        self.started = False
        self.closed = False
        self.retried = 0
        self.replaced = 0
        self.pieces = 0
        self.source = ""
        self.source_note = ""
        self.address = ""
        self.n_workers = 0
        self.startup_seconds = 0.0
        self._payload: Any = None
        _LIVE.add(self)

    def same_backend(self, options: RunOptions) -> bool:
        """True when ``options`` ask for the workers this pool runs."""
        names = ("backend", "ray_address", "num_workers", "num_gpus_per_worker")
        return all(getattr(options, n) == getattr(self.options, n) for n in names)

    @property
    def actors(self) -> list[Any]:
        """The live actor handles, one per worker position."""
        return [s.actor for s in self.slots]

    # ---------------------------------------------------------------- start / stop
    def start(self) -> None:
        """Connect to (or start) Ray, start the workers, wait until each has built its adapter."""
        if self.closed:
            raise MetagameError("the Ray workers of this run were stopped; run explain again")
        if self.started:
            return
        ray = self.ray
        began = time.perf_counter()
        self._connect()
        n = self.n_workers = self._n_workers()
        for source in ("recipe", "adapter"):
            blob = self._blob(source)
            if blob is None:
                continue
            self.source = source
            self._payload = ray.put(blob)
            self.slots = [self._new_slot() for _ in range(n)]
            try:
                infos = self._gather([s.actor.info.remote() for s in self.slots])
            except Exception as exc:  # any build failure: try the adapter itself
                if source == "adapter":
                    raise
                # the recipe fails on the workers (e.g. a path only this machine has): ship the adapter instead
                self.source_note = f"the recipe failed on a worker: {_first_line(exc)}"
                warnings.warn(f"Ray workers could not build the adapter from its recipe ({_first_line(exc)}); they "
                              f"use a copy of this process's adapter instead", RuntimeWarning, stacklevel=2)
                self.workers.clear()
                continue
            for slot, info in zip(self.slots, infos):
                slot.record.update(node=info["node"], pid=info["pid"], gpus=info["gpus"], torch_threads=info["torch_threads"])
            if all(info["players"] == list(self.model.players) for info in infos):
                break
            self.source_note = "the recipe built other players than the driver's adapter has"
            self._kill_all()
            self.workers.clear()
        self.started = True
        self.startup_seconds = time.perf_counter() - began

    def _connect(self) -> None:
        ray, address = self.ray, self.options.ray_address
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"ignore_reinit_error": True}
            if address is None and not os.environ.get("RAY_ADDRESS"):
                kwargs["include_dashboard"] = False
            try:
                ray.init(address=address, **kwargs)
            except ConnectionError as exc:
                raise MetagameError(
                    f"could not connect to the Ray cluster at ray_address={address!r} ({_first_line(exc)}); start one "
                    f"with `ray start --head`, or drop ray_address to start a local Ray"
                ) from None
        try:
            self.address = str(ray.get_runtime_context().gcs_address)
        except Exception:  # noqa: BLE001 - only recorded in metadata
            self.address = str(address or "local")

    def _n_workers(self) -> int:
        res = self.ray.cluster_resources()
        gpus = self.options.num_gpus_per_worker
        n_gpu, n_cpu = float(res.get("GPU", 0.0)), float(res.get("CPU", 0.0))
        fit = int(n_gpu // gpus + 1e-9) if gpus > 0 else int(n_cpu)
        n = self.options.num_workers or max(fit, 1)
        if gpus > 0 and n_gpu == 0:
            raise MetagameError(
                f"num_gpus_per_worker={gpus:g} asks for GPU workers, but the Ray cluster has no GPUs; drop "
                f"num_gpus_per_worker (CPU workers) or pass the ray_address of a cluster with GPUs"
            )
        if gpus > 0 and n * gpus > n_gpu + 1e-9:
            raise MetagameError(
                f"{n} Ray worker(s) with num_gpus_per_worker={gpus:g} need {n * gpus:g} GPUs, but the Ray cluster has "
                f"{n_gpu:g}; pass num_workers <= {fit} or a smaller num_gpus_per_worker"
            )
        if n > n_cpu:
            raise MetagameError(
                f"{n} Ray workers need {n} CPUs (one each), but the Ray cluster has {n_cpu:g}; pass num_workers <= "
                f"{int(n_cpu)}"
            )
        return n

    def _blob(self, source: str) -> bytes | None:
        from ray import cloudpickle

        if source == "recipe":
            recipe = getattr(self.model, "recipe", None)
            if recipe is None:
                return None
            try:
                return cloudpickle.dumps(("recipe", recipe))
            except Exception:  # noqa: BLE001 - not picklable: ship the adapter instead
                return None
        try:
            return cloudpickle.dumps(("adapter", self.model))
        except Exception as exc:  # noqa: BLE001
            raise MetagameError(
                f"the adapter cannot be sent to Ray workers ({_first_line(exc)}); build it through an entry point "
                f"(explain_lm, explain_text_pair, ...) so the workers build it from the model name/path, or make its "
                f"model picklable"
            ) from None

    def _new_slot(self) -> _Slot:
        gpus = self.options.num_gpus_per_worker
        actor = _remote_worker(self.ray).options(num_cpus=1, num_gpus=gpus, max_restarts=0).remote(
            self._payload, int(self.model.batch_size)
        )
        record = {"worker": len(self.workers), "coalitions": 0, "model_rows": 0, "pieces": 0, "lost": None}
        self.workers.append(record)
        return _Slot(actor, record)

    def _gather(self, refs: list[Any]) -> list[Any]:
        """``ray.get`` that turns a worker's exception into the exception itself."""
        try:
            return self.ray.get(refs)
        except self.ray.exceptions.RayTaskError as err:
            self._kill_all()
            raise _user_error(err) from None
        except BaseException:
            self._kill_all()
            raise

    def _kill_all(self) -> None:
        for slot in self.slots:
            with contextlib.suppress(Exception):
                self.ray.kill(slot.actor)
        self.slots = []

    def close(self) -> None:
        """Stop the workers (idempotent)."""
        if not self.closed:
            self.closed = True
            self._kill_all()

    # ---------------------------------------------------------------- work
    def run(self, call: str, arg: Any, jobs: Iterable[tuple[Any, list[np.ndarray]]]) -> Iterator[tuple[Any, list[np.ndarray]]]:
        """Evaluate every job's pieces on the workers; yields ``(key, [result of each piece])`` as jobs finish.

        ``call`` is ``"attribute"`` (``arg``: the method, as a Ray object) or ``"values"``. Jobs are pulled from the
        iterator only while fewer than ``DEPTH`` pieces per worker are in flight, so a long stream costs little memory.
        """
        self.start()
        ray = self.ray
        queue: deque[tuple[int, int, np.ndarray, int]] = deque()  # (job, piece, rows, tries)
        inflight: dict[Any, tuple[int, int, np.ndarray, int, _Slot, Any, dict]] = {}  # + slot, actor, its record
        parts: dict[int, list[Any]] = {}
        left: dict[int, int] = {}
        keys: dict[int, Any] = {}
        source = iter(jobs)
        exhausted = False
        n_jobs = 0
        try:
            while True:
                while not exhausted and len(queue) + len(inflight) < DEPTH * len(self.slots):
                    try:
                        key, pieces = next(source)
                    except StopIteration:
                        exhausted = True
                        break
                    if not pieces:
                        yield key, []
                        continue
                    keys[n_jobs], parts[n_jobs], left[n_jobs] = key, [None] * len(pieces), len(pieces)
                    queue.extend((n_jobs, p, rows, 0) for p, rows in enumerate(pieces))
                    n_jobs += 1
                if not queue and not inflight:
                    if exhausted:
                        return
                    continue
                for slot in sorted(self.slots, key=lambda s: s.load):
                    while queue and slot.load < DEPTH:
                        self._submit(slot, call, arg, queue.popleft(), inflight)
                ready, _ = ray.wait(list(inflight), num_returns=1, timeout=_POLL)
                for ref in ready:
                    job, piece, rows, tries, slot, actor, record = inflight.pop(ref)
                    if slot.actor is actor:
                        slot.load -= 1
                    try:
                        out, counts = ray.get(ref)
                    except ray.exceptions.RayTaskError as err:
                        cause = err.cause if isinstance(err.cause, BaseException) else None
                        others = [s for s in self.slots if s is not slot]
                        if isinstance(cause, MetagameError) or tries >= 1 or not others:
                            raise _user_error(err) from None
                        self.retried += 1  # maybe a fault of that worker: once more on another one
                        target = min(others, key=lambda s: s.load)
                        self._submit(target, call, arg, (job, piece, rows, tries + 1), inflight)
                        continue
                    except ray.exceptions.RayError as err:
                        if not _worker_lost(ray, err):
                            raise MetagameError(f"Ray could not run the workers: {_first_line(err)}") from None
                        if slot.actor is actor:
                            self._lose(slot, err)
                        self.retried += 1
                        queue.appendleft((job, piece, rows, tries))
                        continue
                    self._record(record, len(rows), counts)
                    parts[job][piece] = out
                    left[job] -= 1
                    if left[job] == 0:
                        del left[job]
                        yield keys.pop(job), parts.pop(job)
        except BaseException:
            self.close()  # an error or Ctrl-C: stop every worker (the engine saves its checkpoint)
            raise

    def _submit(self, slot: _Slot, call: str, arg: Any, item: tuple, inflight: dict) -> None:
        job, piece, rows, tries = item
        method = getattr(slot.actor, call)
        ref = method.remote(arg, rows) if call == "attribute" else method.remote(rows)
        inflight[ref] = (job, piece, rows, tries, slot, slot.actor, slot.record)
        slot.load += 1

    def _record(self, record: dict[str, Any], n_rows: int, counts: dict[str, int]) -> None:
        """Credit a finished piece to the worker that computed it, and its model work to the driver's adapter."""
        self.pieces += 1
        record["pieces"] += 1
        record["coalitions"] += n_rows
        record["model_rows"] += int(counts.get("n_model_rows", 0))
        for name, delta in counts.items():
            if hasattr(self.model, name):
                setattr(self.model, name, getattr(self.model, name) + delta)

    def _lose(self, slot: _Slot, err: BaseException) -> None:
        """The slot's actor is gone: record it and start a replacement in its place (its pieces are re-queued by the
        caller as their results fail)."""
        slot.record["lost"] = type(err).__name__
        with contextlib.suppress(Exception):
            self.ray.kill(slot.actor)
        if self.replaced >= 2 * len(self.slots) + 2:
            raise MetagameError(
                f"Ray workers keep dying ({self.replaced} replaced; last: {_first_line(err)}); check the workers' "
                f"memory (is the model too large for one worker?) and the Ray logs"
            )
        self.replaced += 1
        fresh = self._new_slot()
        slot.actor, slot.record = fresh.actor, fresh.record
        # pieces still in flight on the lost actor fail on their own and are re-queued then (not counted on this slot)
        slot.load = 0

    def describe(self) -> dict[str, Any]:
        """``metadata["backend"]``: the backend, its workers and what each delivered."""
        return {
            "name": "ray",
            "address": self.address,
            "workers": self.n_workers,
            "num_gpus_per_worker": self.options.num_gpus_per_worker,
            "adapter_from": self.source + (f" ({self.source_note})" if self.source_note else ""),
            "startup_seconds": round(self.startup_seconds, 3),
            "pieces": self.pieces,
            "retried_pieces": self.retried,
            "replaced_workers": self.replaced,
            "coalitions_per_worker": [w["coalitions"] for w in self.workers],
            "model_rows_per_worker": [w["model_rows"] for w in self.workers],
            "nodes": len({w.get("node") for w in self.workers if w.get("node")}),
            "torch_threads": [w["torch_threads"] for w in self.workers if "torch_threads" in w],
        }


def _worker_lost(ray: Any, err: BaseException) -> bool:
    """True for failures that a fresh worker may not repeat: a dead actor or node, a crashed process, lost objects,
    memory pressure."""
    ex = ray.exceptions
    lost = (ex.RayActorError, ex.WorkerCrashedError, ex.ObjectLostError, ex.NodeDiedError, ex.OutOfMemoryError)
    return isinstance(err, lost)


def _user_error(err: Any) -> BaseException:
    """The exception a worker raised, as itself (its own type and message), when it survived the trip."""
    cause = getattr(err, "cause", None)
    if isinstance(cause, BaseException):
        return cause
    return MetagameError(f"a Ray worker failed: {_first_line(err)}")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


# ------------------------------------------------------------------------------------------------ Ray games
class _RayGame:
    """The Ray half of a game: the local game's calls (``batch_size`` coalitions each), cut into pieces at multiples
    of ``cut`` (None: never cut), evaluated on the pool."""

    pool: WorkerPool
    cut: int | None
    call: str
    batch_size: int
    n_outputs: int
    n_evaluations: int
    cache: Any

    def _arg(self) -> Any:
        return None

    def _pieces(self, unit: np.ndarray) -> list[np.ndarray]:
        if self.cut is None or len(unit) <= self.cut:
            return [unit]
        workers = max(1, len(self.pool.slots))
        size = self.cut * max(1, math.ceil(len(unit) / (PIECES_PER_WORKER * workers * self.cut)))
        return [unit[s : s + size] for s in range(0, len(unit), size)]

    def _units(self, coalitions: np.ndarray) -> list[np.ndarray]:
        return [coalitions[s : s + self.batch_size] for s in range(0, len(coalitions), self.batch_size)]

    def _join(self, parts: list[np.ndarray], n: int) -> np.ndarray:
        if not parts:
            return np.zeros((n, self.n_outputs))
        return np.concatenate([np.asarray(p, dtype=np.float64).reshape(len(p), self.n_outputs) for p in parts])

    def _batched(self, coalitions: np.ndarray) -> np.ndarray:
        self.pool.start()
        units = self._units(coalitions)
        out: list[np.ndarray | None] = [None] * len(units)
        jobs = ((k, self._pieces(u)) for k, u in enumerate(units))
        for k, parts in self.pool.run(self.call, self._arg(), jobs):
            out[k] = self._join(parts, len(units[k]))
        self.n_evaluations += len(coalitions)
        return np.concatenate(out) if out else np.zeros((0, self.n_outputs))  # type: ignore[arg-type]

    def map_unordered(self, batches: Iterable[np.ndarray]) -> Iterator[tuple[int, np.ndarray]]:
        """``(k, values of batches[k])`` as batches finish, many in flight at once over the workers."""
        if self.cache is not None:
            for k, rows in enumerate(batches):
                yield k, self(rows)  # type: ignore[operator]
            return
        self.pool.start()
        sizes: dict[int, int] = {}
        units_left: dict[int, int] = {}
        done: dict[int, list[np.ndarray | None]] = {}

        def jobs() -> Iterator[tuple[tuple[int, int], list[np.ndarray]]]:
            for k, rows in enumerate(batches):
                units = self._units(np.asarray(rows, dtype=bool))
                sizes[k], units_left[k], done[k] = len(rows), len(units), [None] * len(units)
                if not units:
                    yield (k, -1), []
                for u, unit in enumerate(units):
                    yield (k, u), self._pieces(unit)

        for (k, u), parts in self.pool.run(self.call, self._arg(), jobs()):
            if u >= 0:
                done[k][u] = self._join(parts, sum(len(p) for p in parts))
                units_left[k] -= 1
            if units_left[k] == 0:
                vals = np.concatenate(done.pop(k)) if sizes[k] else np.zeros((0, self.n_outputs))  # type: ignore[arg-type]
                del units_left[k]
                self.n_evaluations += sizes.pop(k)
                yield k, vals


class RayAttributionGame(_RayGame, AttributionGame):
    """:class:`~metagame.games.AttributionGame` whose calls run on Ray workers (same interface, same numbers)."""

    call = "attribute"

    def __init__(self, pool: WorkerPool, model: ModelAdapter, method: AttributionMethod, **kwargs: Any):
        super().__init__(model, method, **kwargs)
        self.pool = pool
        default_hook = type(model).attribute is ModelAdapter.attribute
        self.cut = method.coalitions_per_pass(model) if default_hook else None
        self._method_ref: Any = None

    def _arg(self) -> Any:
        if self._method_ref is None:
            self._method_ref = self.pool.ray.put(self.method)
        return self._method_ref

    def _evaluate(self, coalitions: np.ndarray) -> np.ndarray:
        return self._batched(coalitions)


class RayValueGame(_RayGame, MaskedModelGame):
    """:class:`~metagame.games.MaskedModelGame` whose calls run on Ray workers (cut at multiples of the adapter's
    ``batch_size``, where :meth:`~metagame.models.base.ModelAdapter.values` cuts)."""

    call = "values"

    def __init__(self, pool: WorkerPool, model: ModelAdapter, **kwargs: Any):
        super().__init__(model, **kwargs)
        self.pool = pool
        self.cut = max(1, int(model.batch_size))

    def _evaluate(self, coalitions: np.ndarray) -> np.ndarray:
        return self._batched(coalitions)


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
