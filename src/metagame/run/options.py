"""Run options, defined once: every entry point and command takes exactly these keywords.

    >>> from metagame.run import RunOptions
    >>> opts = RunOptions(budget=2000, seed=0)
    >>> metagame.explain(adapter, "integrated_gradients", options=opts)          # whole
    >>> metagame.explain(adapter, "integrated_gradients", budget=2000, seed=0)   # or as keywords

    >>> metagame.explain(adapter, "integrated_gradients", backend="ray", num_workers=4, num_gpus_per_worker=1)

The literals below are the only copies of the variant, value, estimator, checkpoint-mode, backend and budget-word
names (the commands read their choices from here), and of the ``budget="auto"`` constants (the estimators' driver
and the command-line help read them from here).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
from dataclasses import dataclass, fields
from typing import Any, Literal, Mapping, TypedDict, get_args

import numpy as np

from ..errors import MetagameError

Variant = Literal["metagame", "serial"]
Value = Literal["shapley", "banzhaf"]
EstimatorName = Literal["auto", "stratified", "regression", "montecarlo", "sparse"]
CheckpointMode = Literal["resume", "overwrite"]
Order = Literal[2, 3]
Backend = Literal["local", "ray"]
#: the budget that is not a number: ``"auto"`` samples until every estimated entry's standard error is at most ``tol``
BudgetWord = Literal["auto"]
#: ``budget="auto"``: at most this many calls per player (and never more than there are coalitions); defined here, not
#: in the estimators' driver, so that the command-line help reads it without loading the estimators
AUTO_MAX_CALLS_PER_PLAYER = 100
#: ``budget="auto"`` without ``tol``: the target standard error is this share of the largest |row total| (φ_i(x))
AUTO_RELATIVE_TOL = 0.01


def _is_int(x: Any) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, (bool, np.bool_))


def _choice(name: str, value: Any, literal: Any, default: Any) -> None:
    allowed = get_args(literal)
    if value not in allowed:
        listed = ", ".join(repr(a) + (" (default)" if a == default else "") for a in allowed)
        raise MetagameError(f"unknown {name} {value!r}; use {listed}")


@dataclass(frozen=True)
class RunOptions:
    """How a meta-attribution run is carried out (what it explains is the adapter's and the method's business).

    Attributes:
        variant: ``"metagame"`` (target always present; the default) or ``"serial"`` (comparison only).
        value: outer value, ``"shapley"`` or ``"banzhaf"`` (Banzhaf rows need not sum to φ_i).
        budget: None for exact enumeration of the 2^d − 1 coalitions; else the number of attribution calls for a
            shared-sample estimator (never exceeded; ``stderr`` then holds a standard error per entry), or
            ``"auto"``: sample in batches until the worst standard error of the estimated entries is at most ``tol``
            (default: 1% of the largest |φ_i(x)|), within a cap of 100·d calls (docs/estimators.md, "Budgets").
        seed: seed of the coalition sampler (an integer; None draws one and records it).
        estimator: ``"auto"``, ``"stratified"``, ``"regression"``, ``"montecarlo"`` or ``"sparse"`` (sampled runs).
        tol: stop a sampled run early once every estimated entry's standard error is at most ``tol`` (an entry with
            stderr = inf never is). ``tol`` without a budget means ``budget="auto"``.
        checkpoint: ``.npz`` path where finished work is saved (every ``checkpoint_every`` seconds, at the end and
            on interruption) and resumed from; keyed by a fingerprint of everything that determines the numbers.
        checkpoint_mode: ``"resume"`` (default; a checkpoint of another run is refused) or ``"overwrite"``.
        checkpoint_every: seconds between checkpoint saves (0: after every batch).
        progress: progress bar (None: on a terminal, once work has run for 2 s).
        order: 2 (the matrix M) or 3 (also the tensor T[i, j, k] of meta-meta-attributions; docs/mathematics.md).
        backend: where the attribution calls run: ``"local"`` (this process) or ``"ray"`` (Ray actors on this machine
            or a cluster, each holding a copy of the adapter; the same numbers, see :mod:`metagame.run.backend`).
        ray_address: the Ray cluster to use (``"auto"``: the running one, ``"ray://host:10001"``: a remote one);
            None: the Ray already initialised in this process, else a local one started on demand.
        num_workers: Ray workers (actors); None: as many as the cluster's GPUs (``num_gpus_per_worker`` > 0) or CPUs
            allow.
        num_gpus_per_worker: GPUs each Ray worker reserves (fractions share a GPU; 0: CPU workers).
    """

    variant: Variant = "metagame"
    value: Value = "shapley"
    budget: int | BudgetWord | None = None
    seed: int | None = None
    estimator: EstimatorName = "auto"
    tol: float | None = None
    checkpoint: str | None = None
    checkpoint_mode: CheckpointMode = "resume"
    checkpoint_every: float = 30.0
    progress: bool | None = None
    order: Order = 2
    backend: Backend = "local"
    ray_address: str | None = None
    num_workers: int | None = None
    num_gpus_per_worker: float = 0.0

    def __post_init__(self) -> None:
        _choice("variant", self.variant, Variant, "metagame")
        _choice("value", self.value, Value, "shapley")
        _choice("estimator", self.estimator, EstimatorName, "auto")
        _choice("checkpoint_mode", self.checkpoint_mode, CheckpointMode, "resume")
        if isinstance(self.budget, str) and self.budget in get_args(BudgetWord):
            pass
        elif self.budget is not None:
            if not _is_int(self.budget):
                words = " or ".join(repr(w) for w in get_args(BudgetWord))
                raise MetagameError(
                    f"budget must be a positive integer number of attribution calls, or {words} (calls chosen to reach "
                    f"tol), or None (exact); got {self.budget!r}"
                )
            if self.budget <= 0:
                raise MetagameError(f"budget must be a positive number of attribution calls; got {self.budget}")
            object.__setattr__(self, "budget", int(self.budget))
        if self.seed is not None:
            if not _is_int(self.seed):
                raise MetagameError(f"seed must be an integer (or None); got {self.seed!r}")
            object.__setattr__(self, "seed", int(self.seed))
        if self.tol is not None:
            try:
                ok = float(self.tol) > 0
            except (TypeError, ValueError):
                ok = False
            if not ok:
                raise MetagameError(f"tol must be a positive number (a standard-error threshold); got {self.tol!r}")
            object.__setattr__(self, "tol", float(self.tol))
            if self.budget is None:  # tol alone: as many calls as reaching it takes
                object.__setattr__(self, "budget", "auto")
        if self.progress is not None and not isinstance(self.progress, (bool, np.bool_)):
            raise MetagameError(f"progress must be True, False or None; got {self.progress!r}")
        if not isinstance(self.checkpoint_every, (int, float)) or self.checkpoint_every < 0:
            raise MetagameError(f"checkpoint_every must be a number of seconds >= 0; got {self.checkpoint_every!r}")
        if self.order not in (2, 3) or isinstance(self.order, bool):
            raise MetagameError(f"order must be 2 (meta-attributions) or 3 (also meta-meta-attributions); got {self.order!r}")
        if self.checkpoint is not None:
            path = os.fspath(self.checkpoint)
            object.__setattr__(self, "checkpoint", path)
            folder = os.path.dirname(os.path.abspath(path))
            if not os.path.isdir(folder):
                raise MetagameError(
                    f"the checkpoint folder {folder!r} does not exist; create it or pass another checkpoint path"
                )
            if os.path.isdir(path):
                raise MetagameError(f"checkpoint {path!r} is a folder; pass a file path such as {os.path.join(path, 'run.npz')!r}")
            self.check_resumable()
        self._check_backend()

    def check_resumable(self) -> None:
        """Refuse a checkpoint of a sampled run without a fixed seed (it could not resume reproducibly): the one check
        for a checkpoint file (here, on construction) and a set's checkpoint folder (:mod:`metagame.applications.sets`,
        which takes the folder out of the options before building them).

        Raises:
            MetagameError: naming ``seed=<int>`` as the fix.
        """
        if not self.exact and self.seed is None:
            raise MetagameError("checkpoint needs a fixed seed to resume reproducibly; pass seed=<int>")

    def _check_backend(self) -> None:
        _choice("backend", self.backend, Backend, "local")
        if self.num_workers is not None:
            if not _is_int(self.num_workers) or self.num_workers < 1:
                raise MetagameError(f"num_workers must be a positive integer (or None: as many as the cluster allows); got {self.num_workers!r}")
            object.__setattr__(self, "num_workers", int(self.num_workers))
        gpus = self.num_gpus_per_worker
        if isinstance(gpus, (bool, np.bool_)) or not isinstance(gpus, (int, float, np.integer, np.floating)) or not gpus >= 0:
            raise MetagameError(f"num_gpus_per_worker must be a number of GPUs >= 0 (e.g. 1, or 0.5 to share one); got {gpus!r}")
        object.__setattr__(self, "num_gpus_per_worker", float(gpus))
        if self.ray_address is not None and (not isinstance(self.ray_address, str) or not self.ray_address.strip()):
            raise MetagameError(f"ray_address must be a Ray address such as 'auto' or 'ray://host:10001'; got {self.ray_address!r}")
        if self.backend == "local":
            given = [name for name, default in (("ray_address", None), ("num_workers", None), ("num_gpus_per_worker", 0.0))
                     if getattr(self, name) != default]
            if given:
                raise MetagameError(f"{', '.join(given)} apply to the Ray backend only; pass backend='ray' (or drop them)")
        elif importlib.util.find_spec("ray") is None:
            raise MetagameError("backend='ray' needs Ray, which is not installed; pip install 'metagame[ray]' (or use backend='local')")

    # ------------------------------------------------------------------ building
    @classmethod
    def names(cls) -> tuple[str, ...]:
        """The option names, in declaration order."""
        return tuple(f.name for f in fields(cls))

    @classmethod
    def build(cls, options: "RunOptions | Mapping[str, Any] | None" = None, /, **overrides: Any) -> "RunOptions":
        """Options from a whole ``RunOptions`` (or a dict of them) and keyword overrides, validated once.

        Raises:
            MetagameError: for an unknown keyword (listing the valid ones) or an invalid value.
        """
        unknown = sorted(set(overrides) - set(cls.names()))
        if unknown:
            raise MetagameError(f"unknown run option(s) {unknown}; run options are: {', '.join(cls.names())}")
        if options is None:
            base: dict[str, Any] = {}
        elif isinstance(options, RunOptions):
            base = dataclasses.asdict(options)
        elif isinstance(options, Mapping):
            return cls.build(None, **{**dict(options), **overrides})
        else:
            raise MetagameError(f"options must be a RunOptions (or a dict of run options); got {type(options).__name__}")
        return cls(**{**base, **overrides})

    def replace(self, **changes: Any) -> "RunOptions":
        """A copy with some options changed (validated again)."""
        return RunOptions.build(self, **changes)

    @property
    def exact(self) -> bool:
        """True when the run enumerates every coalition (no budget, no tol)."""
        return self.budget is None

    @property
    def auto_budget(self) -> bool:
        """True when the run picks its number of calls to reach ``tol`` (``budget="auto"``, or ``tol`` alone)."""
        return isinstance(self.budget, str)

    def as_params(self) -> dict[str, Any]:
        """The options recorded in a result's ``metadata["parameters"]``."""
        return dataclasses.asdict(self)


def budget_from_text(text: str) -> int | str:
    """A budget as written on a command line: a positive integer or a word of :data:`BudgetWord` (``auto``).

    Raises:
        ValueError: with the accepted spellings (argparse shows it as the flag's error).
    """
    word = text.strip().lower()
    if word in get_args(BudgetWord):
        return word
    try:
        value = int(word)
    except ValueError:
        value = 0
    if value <= 0:
        words = ", ".join(get_args(BudgetWord))
        raise ValueError(f"expected a positive number of attribution calls or {words}; got {text!r}")
    return value


def split_run_options(kwargs: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(run options, the rest)`` of a keyword dict: application entry points forward the first to
    :func:`metagame.explain` and the rest to their adapter."""
    names = set(RunOptions.names())
    return {k: v for k, v in kwargs.items() if k in names}, {k: v for k, v in kwargs.items() if k not in names}


#: the run options as a TypedDict, for ``**options: Unpack[RunKeywords]`` annotations
RunKeywords = TypedDict("RunKeywords", {f.name: f.type for f in fields(RunOptions)}, total=False)  # type: ignore[misc]

__all__ = [
    "AUTO_MAX_CALLS_PER_PLAYER",
    "AUTO_RELATIVE_TOL",
    "Backend",
    "BudgetWord",
    "CheckpointMode",
    "EstimatorName",
    "Order",
    "RunKeywords",
    "RunOptions",
    "Value",
    "Variant",
    "budget_from_text",
    "split_run_options",
]
