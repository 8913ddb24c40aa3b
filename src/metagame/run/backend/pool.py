"""The pool of workers: pieces in flight, retries on lost workers, replacements, per-worker counts."""


from __future__ import annotations

import contextlib
import os
import time
import warnings
from collections import deque
from dataclasses import dataclass
from typing import Any, Iterable, Iterator

import numpy as np

from ...errors import MetagameError
from ...models.base import ModelAdapter
from ..options import RunOptions
from .common import _LIVE, _POLL, DEPTH, require_ray
from .worker import _remote_worker


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
        import torch

        # the workers compute with the driver's intra-op thread count: float32 reductions then round the same way,
        # so a Ray run equals the local run bit for bit by construction (not only when both happen to use one thread)
        actor = _remote_worker(self.ray).options(num_cpus=1, num_gpus=gpus, max_restarts=0).remote(
            self._payload, int(self.model.batch_size), torch.get_num_threads()
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
