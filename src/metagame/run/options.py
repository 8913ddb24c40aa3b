"""Run options, defined once: every entry point and command takes exactly these keywords.

    >>> from metagame.run import RunOptions
    >>> opts = RunOptions(budget=2000, seed=0)
    >>> metagame.explain(adapter, "integrated_gradients", options=opts)          # whole
    >>> metagame.explain(adapter, "integrated_gradients", budget=2000, seed=0)   # or as keywords

The literals below are the only copies of the variant, value, estimator and checkpoint-mode names.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, fields
from typing import Any, Literal, Mapping, TypedDict, get_args

import numpy as np

from ..errors import MetagameError

Variant = Literal["metagame", "serial"]
Value = Literal["shapley", "banzhaf"]
EstimatorName = Literal["auto", "stratified", "regression", "montecarlo"]
CheckpointMode = Literal["resume", "overwrite"]
Order = Literal[2, 3]


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
        variant: ``"metagame"`` (target always present; SPEC default) or ``"serial"`` (comparison only).
        value: outer value, ``"shapley"`` or ``"banzhaf"`` (Banzhaf rows need not sum to φ_i).
        budget: None for exact enumeration of the 2^d − 1 coalitions; else the number of attribution calls for a
            shared-sample estimator (never exceeded; ``stderr`` then holds a standard error per entry).
        seed: seed of the coalition sampler (an integer; None draws one and records it).
        estimator: ``"auto"``, ``"stratified"``, ``"regression"`` or ``"montecarlo"`` (sampled runs).
        tol: stop a sampled run early once every standard error is below ``tol``.
        checkpoint: ``.npz`` path where finished work is saved (every ``checkpoint_every`` seconds, at the end and
            on interruption) and resumed from; keyed by a fingerprint of everything that determines the numbers.
        checkpoint_mode: ``"resume"`` (default; a checkpoint of another run is refused) or ``"overwrite"``.
        checkpoint_every: seconds between checkpoint saves (0: after every batch).
        progress: progress bar (None: on a terminal, once work has run for 2 s).
        order: 2 (the matrix M) or 3 (also the tensor T[i, j, k] of meta-meta-attributions; SPEC "Third order").
    """

    variant: Variant = "metagame"
    value: Value = "shapley"
    budget: int | None = None
    seed: int | None = None
    estimator: EstimatorName = "auto"
    tol: float | None = None
    checkpoint: str | None = None
    checkpoint_mode: CheckpointMode = "resume"
    checkpoint_every: float = 30.0
    progress: bool | None = None
    order: Order = 2

    def __post_init__(self) -> None:
        _choice("variant", self.variant, Variant, "metagame")
        _choice("value", self.value, Value, "shapley")
        _choice("estimator", self.estimator, EstimatorName, "auto")
        _choice("checkpoint_mode", self.checkpoint_mode, CheckpointMode, "resume")
        if self.budget is not None:
            if not _is_int(self.budget):
                raise MetagameError(f"budget must be a positive integer number of attribution calls; got {self.budget!r}")
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
            if self.budget is not None and self.seed is None:
                raise MetagameError("checkpoint needs a fixed seed to resume reproducibly; pass seed=<int>")

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
        """True when the run enumerates every coalition (no budget)."""
        return self.budget is None

    def as_params(self) -> dict[str, Any]:
        """The options recorded in a result's ``metadata["parameters"]``."""
        return dataclasses.asdict(self)


def split_run_options(kwargs: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(run options, the rest)`` of a keyword dict: application entry points forward the first to
    :func:`metagame.explain` and the rest to their adapter."""
    names = set(RunOptions.names())
    return {k: v for k, v in kwargs.items() if k in names}, {k: v for k, v in kwargs.items() if k not in names}


#: the run options as a TypedDict, for ``**options: Unpack[RunKeywords]`` annotations
RunKeywords = TypedDict("RunKeywords", {f.name: f.type for f in fields(RunOptions)}, total=False)  # type: ignore[misc]

__all__ = [
    "CheckpointMode",
    "EstimatorName",
    "Order",
    "RunKeywords",
    "RunOptions",
    "Value",
    "Variant",
    "split_run_options",
]
