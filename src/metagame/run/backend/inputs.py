"""Whole inputs of a set over Ray workers: each input is one Ray task that explains it with the local backend, so
its numbers are the local run's; a worker that dies has its task run again (Ray's ``max_retries``), and a worker
process keeps the models it loaded for the next input it gets (:func:`~metagame.models.loaded.keep_loads`)."""

from __future__ import annotations

import os
from typing import Any, Callable, Iterator, Sequence

from ...errors import MetagameError
from ..options import RunOptions
from ..progress import progress_bar
from .common import _POLL, require_ray

#: times a task is run again after its worker died
MAX_RETRIES = 3


def _run_task(fn: Callable[[Any], Any], payload: Any) -> Any:
    from ...models.loaded import keep_loads

    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    keep_loads()
    return fn(payload)


def connect(options: RunOptions) -> Any:
    """The ``ray`` module, connected to ``options.ray_address`` (or a local Ray started on first use)."""
    ray = require_ray()
    if not ray.is_initialized():
        kwargs: dict[str, Any] = {"ignore_reinit_error": True}
        if options.ray_address is None and not os.environ.get("RAY_ADDRESS"):
            kwargs["include_dashboard"] = False
        try:
            ray.init(address=options.ray_address, **kwargs)
        except ConnectionError as exc:
            raise MetagameError(f"could not connect to the Ray cluster at ray_address={options.ray_address!r} ({exc}); "
                                f"start one with `ray start --head`, or drop ray_address to start a local Ray") from None
    return ray


def map_inputs(fn: Callable[[Any], Any], payloads: Sequence[Any], options: RunOptions) -> Iterator[Any]:
    """``fn(payload)`` for every payload on Ray workers, at most ``num_workers`` at a time (default: the cluster's
    CPUs, or GPUs ÷ ``num_gpus_per_worker``); yields the results as they finish (in any order)."""
    ray = connect(options)
    res = ray.cluster_resources()
    gpus = options.num_gpus_per_worker
    fit = int(float(res.get("GPU", 0.0)) // gpus) if gpus > 0 else int(res.get("CPU", 1))
    n = max(1, options.num_workers or fit)
    task = ray.remote(_run_task).options(num_cpus=1, num_gpus=gpus, max_retries=MAX_RETRIES)
    fn_ref = ray.put(fn)
    pending = list(payloads)[::-1]
    running: list[Any] = []
    bar = progress_bar(len(payloads), "inputs", options.progress, unit="input")
    try:
        while pending or running:
            while pending and len(running) < n:
                running.append(task.remote(fn_ref, pending.pop()))
            ready, running = ray.wait(running, num_returns=1, timeout=_POLL)
            for ref in ready:
                yield ray.get(ref)
                bar.update(1)
    finally:
        bar.close()
        for ref in running:
            ray.cancel(ref, force=True)


__all__ = ["MAX_RETRIES", "connect", "map_inputs"]
