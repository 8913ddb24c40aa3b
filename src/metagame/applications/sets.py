"""One call over many inputs: the list path of every entry point.

``explain_inputs`` checks every item before any work, computes each distinct input once (a duplicated input shares
the result), loads the model once (:func:`~metagame.models.loaded.shared_loads`), shows progress over the inputs
(each input's own bar below it) and returns a :class:`~metagame.results.ResultSet` whose k-th result equals the
separate call on item k bit for bit: each input is built and explained exactly as the single call builds it.

**Set checkpoints** (``checkpoint="DIR"``, a folder): a finished input is saved atomically as
``DIR/done/<key>/result.json``; the input in progress checkpoints to ``DIR/pieces/<key>.npz`` as a single run does.
``<key>`` is a digest of everything that determines the input's numbers (the adapter's fingerprint — inputs, model
weights, probe outputs —, the method and its parameters, the run options that shape the work), so a resumed call
skips finished inputs, resumes the current one, and recomputes an input that changed (it has another key).

**Ray** (``backend="ray"``): whole inputs are spread over Ray workers (:func:`~metagame.run.backend.inputs.map_inputs`),
each input explained on one worker exactly as locally; a dead worker's input is run again. A set of one distinct input
runs as a single call does (its attribution calls cut into pieces over the workers). With a set checkpoint the
workers write the finished inputs themselves, so its folder must be one every node can reach (a shared disk).
"""

from __future__ import annotations

import copy
import hashlib
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from ..errors import MetagameError
from ..methods.registry import get_method
from ..models.fingerprint import content_digest, stable_json
from ..models.loaded import shared_loads
from ..results.result import MetaAttribution
from ..results.result_set import ResultSet
from ..run.checkpoint import run_fingerprint
from ..run.explain import explain
from ..run.options import RunOptions, split_run_options
from ..run.progress import progress_bar
from .common import Extension, build_extended

#: run options that do not change an input's numbers (left out of a finished input's key)
_NOT_IN_KEY = ("checkpoint", "checkpoint_mode", "checkpoint_every", "progress", "backend", "ray_address",
               "num_workers", "num_gpus_per_worker")


@dataclass
class SetItem:
    """One input of a set: the entry point's positional arguments after the model, per-item keyword options, and a
    JSON description (shown in reports and saved with the set)."""

    args: tuple
    kwargs: dict = field(default_factory=dict)
    describe: dict = field(default_factory=dict)


def is_input_list(value: Any) -> bool:
    """True for a list or tuple (the explicit form of "many inputs"; never guessed from a tensor's shape)."""
    return isinstance(value, (list, tuple))


def item_error(entry: str, k: int, what: str) -> MetagameError:
    """The error of a bad item, naming its index."""
    return MetagameError(f"{entry}: input {k} of the list {what}")


def check_text(entry: str, k: int, value: Any, name: str) -> str:
    """A non-empty string, else an error naming the item."""
    if not isinstance(value, str):
        raise item_error(entry, k, f"has a {name} of type {type(value).__name__}; pass a string")
    if not value.strip():
        raise item_error(entry, k, f"has an empty {name}; remove it or give the text")
    return value


def check_pair(entry: str, k: int, value: Any, names: tuple[str, str]) -> tuple[Any, Any]:
    """An item that must be a pair (tuple/list of two), else an error naming the item."""
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        n = len(value) if isinstance(value, (list, tuple)) else None
        got = f"{n} elements" if n is not None else f"a {type(value).__name__}"
        raise item_error(entry, k, f"is {got}; each input is a ({names[0]}, {names[1]}) pair")
    return value[0], value[1]


def _dedup_key(item: SetItem) -> str:
    try:
        return content_digest((item.args, sorted(item.kwargs.items())))
    except Exception:  # noqa: BLE001 - an object without a content digest is never merged with another
        return f"id-{id(item)}"


def explain_inputs(
    factory: Callable[..., Any],
    entry: str,
    model: Any,
    items: Sequence[SetItem],
    method: Any,
    method_kwargs: dict | None,
    options: RunOptions | Mapping[str, Any] | None,
    kwargs: dict[str, Any],
    extension: Extension | None = None,
) -> ResultSet:
    """Explain every item (``factory(model, *item.args, **kwargs, **item.kwargs)``) and return the set (module
    docstring). ``kwargs`` hold the adapter options and run options shared by every item."""
    if not items:
        raise MetagameError(f"{entry}: the list of inputs is empty; pass at least one input")
    run, rest = split_run_options(kwargs)
    folder = run.pop("checkpoint", None)
    if isinstance(options, RunOptions) and options.checkpoint is not None:
        folder, options = options.checkpoint, options.replace(checkpoint=None)
    elif isinstance(options, Mapping) and options.get("checkpoint") is not None:
        options = dict(options)
        folder = options.pop("checkpoint")
    opts = RunOptions.build(options, **run)
    if folder is not None:
        opts.check_resumable()  # the folder is not in opts (RunOptions takes a file), so its seed rule is asked here
    inner = get_method(method, method_kwargs)
    store = SetCheckpoint(folder, opts.checkpoint_mode) if folder is not None else None
    keys = [_dedup_key(it) for it in items]
    first: dict[str, int] = {}
    for k, key in enumerate(keys):
        first.setdefault(key, k)
    distinct = sorted(set(first.values()))
    began = time.perf_counter()
    # Ray: whole inputs over the workers; a set of one input is cut into pieces over them as a single run is
    job = _Job(factory, entry, model, rest, extension, inner, opts, pieces=opts.backend == "ray" and len(distinct) == 1)
    if opts.backend == "ray" and not job.pieces:
        from ..run.backend.inputs import map_inputs

        computed, seconds = {}, {}
        for k, res, secs in map_inputs(job.run_one, [(k, items[k], store) for k in distinct], opts):
            computed[k], seconds[k] = res, secs
    else:
        computed, seconds = {}, {}
        bar = progress_bar(len(distinct), "inputs", opts.progress, unit="input")
        try:
            with shared_loads():
                for k in distinct:
                    _, computed[k], seconds[k] = job.run_one((k, items[k], store))
                    bar.update(1)
        finally:
            bar.close()
    results = []
    for k, key in enumerate(keys):
        src = first[key]
        results.append(computed[src] if src == k else copy.deepcopy(computed[src]))
    meta = {"entry": entry, "n_inputs": len(items), "distinct_inputs": len(distinct),
            "duplicate_of": {str(k): str(first[key]) for k, key in enumerate(keys) if first[key] != k},
            "seconds": {str(k): seconds[k] for k in distinct}, "wall_seconds": time.perf_counter() - began,
            "checkpoint": None if store is None else str(store.root), "backend": opts.backend}
    return ResultSet(results, [it.describe for it in items], None, meta)


@dataclass
class _Job:
    """How one input is explained (picklable: Ray workers run :meth:`run_one` with backend='local')."""

    factory: Any
    entry: str
    model: Any
    rest: dict
    extension: Any
    inner: Any
    opts: RunOptions
    #: True: keep the run's backend for the input (its calls cut into pieces over Ray workers)
    pieces: bool = False

    def run_one(self, payload: tuple[int, SetItem, "SetCheckpoint | None"]) -> tuple[int, MetaAttribution, float]:
        k, item, store = payload
        began = time.perf_counter()
        adapter = build_extended(self.factory, self.entry, (self.model, *item.args), {**self.rest, **item.kwargs},
                                 self.extension)
        opts = self.opts if self.pieces else self.opts.replace(backend="local", ray_address=None, num_workers=None,
                                                                   num_gpus_per_worker=0.0)
        if store is None:
            return k, explain(adapter, self.inner, options=opts), time.perf_counter() - began
        key = store.key(adapter, self.inner, self.opts)
        done = store.finished(key)
        if done is not None:
            return k, done, time.perf_counter() - began
        result = explain(adapter, self.inner, options=opts.replace(checkpoint=str(store.piece(key))))
        result.metadata.setdefault("parameters", {})["checkpoint"] = str(store.root)
        store.save(key, result)
        return k, result, time.perf_counter() - began


class SetCheckpoint:
    """The checkpoint folder of a set (module docstring): ``done/<key>/`` per finished input, ``pieces/<key>.npz``
    for the one in progress."""

    def __init__(self, folder: str | os.PathLike, mode: str = "resume"):
        self.root = Path(folder)
        if self.root.suffix == ".npz" or self.root.is_file():
            raise MetagameError(f"the checkpoint of a set is a folder; {str(self.root)!r} is a file name (pass a folder "
                                f"such as {str(self.root.with_suffix(''))!r})")
        if not self.root.parent.resolve().is_dir():
            raise MetagameError(f"the folder {str(self.root.parent)!r} holding the set checkpoint does not exist; create it")
        if mode == "overwrite" and self.root.exists():
            shutil.rmtree(self.root / "done", ignore_errors=True)
            shutil.rmtree(self.root / "pieces", ignore_errors=True)
        (self.root / "done").mkdir(parents=True, exist_ok=True)
        (self.root / "pieces").mkdir(parents=True, exist_ok=True)

    @staticmethod
    def key(adapter: Any, inner: Any, opts: RunOptions) -> str:
        """Digest of what determines one input's numbers."""
        fp = run_fingerprint(adapter, inner, opts, "set-input",
                             run_options={k: v for k, v in opts.as_params().items() if k not in _NOT_IN_KEY})
        return hashlib.sha256(stable_json(fp).encode()).hexdigest()[:32]

    def piece(self, key: str) -> Path:
        return self.root / "pieces" / f"{key}.npz"

    def finished(self, key: str) -> MetaAttribution | None:
        path = self.root / "done" / key / "result.json"
        return MetaAttribution.load(path) if path.is_file() else None

    def save(self, key: str, result: MetaAttribution) -> None:
        """Save atomically (a temporary folder renamed into place), then drop the input's piece checkpoint."""
        final = self.root / "done" / key
        tmp = self.root / "done" / f".{key}.{os.getpid()}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        result.save(tmp / "result.json")
        if final.exists():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            os.replace(tmp, final)
        self.piece(key).unlink(missing_ok=True)


__all__ = ["SetCheckpoint", "SetItem", "check_pair", "check_text", "explain_inputs", "is_input_list", "item_error"]
