"""The adapter contract: what every adapter provides (:class:`Adapter`) and the optional capabilities that some
methods need, each a small :class:`typing.Protocol`.

:class:`~metagame.models.base.ModelAdapter` implements the required members with defaults; an adapter adds a
capability by providing its members (and, for the capabilities marked so, by declaring it). Methods ask for a
capability with :func:`require_capability`, never for a concrete adapter class, so any adapter that provides the
members works. docs/adapters.md lists which method needs which capability.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, Protocol, runtime_checkable

import numpy as np
import torch

from ..errors import MissingCapabilityError
from ..players.coalitions import CoalitionCache


@runtime_checkable
class Adapter(Protocol):
    """What the engine (``explain``, the exact routes, the estimators, checkpoints, Ray workers, results) reads from
    every adapter."""

    #: player labels, their number and kinds ("word", "patch", "head", ...; None: features)
    players: list[str]
    n_players: int
    player_kinds: list[str] | None
    #: rows per forward pass, and the dtype of f
    batch_size: int
    dtype: torch.dtype
    #: the most players explained exactly unless the caller passes ``budget``
    exact_max_players: int
    #: declarations the engine reads: a gradient path (:class:`Differentiable`), always-present targets
    #: (:class:`SideTargets`) and vector-valued attributions (:class:`VectorValued`); False / () when absent
    differentiable: bool
    side_targets: tuple[str, ...]
    attribution_shape: tuple[int, ...]
    #: how to build the adapter again (:class:`~metagame.run.backend.AdapterRecipe`) or None
    recipe: Any
    #: f(x_S) cached by coalition content, and the model rows and forward passes computed
    value_cache: CoalitionCache
    n_model_rows: int
    n_forward_passes: int

    def values(self, coalitions: Any) -> torch.Tensor:
        """f(x_S) ``[m]`` for coalitions ``bool[m, d]``, no gradients."""

    def attribute(self, method: Any, coalitions: np.ndarray) -> torch.Tensor:
        """φ(f, x_S) of ``method`` for each coalition row (the engine attributes only through this)."""

    def endpoint_values(self, full: Any = None, empty: Any = None) -> dict[str, float]:
        """``{"value_full": f(x), "value_empty": f(x_∅)}``."""

    def probe_values(self, coalitions: np.ndarray) -> np.ndarray:
        """Numbers at fixed coalitions that change when the model does (checkpoint fingerprints)."""

    def exact_hint(self) -> str:
        """Advice added to the error for too many players in an exact run."""

    def describe(self) -> dict:
        """The model's description (``metadata["model"]``)."""

    def explained(self) -> dict[str, str]:
        """f, the masking and the empty coalition in words (``metadata["explained"]``)."""

    def display_context(self) -> dict:
        """What a report shows about the input (``context``)."""

    def fingerprint_parts(self) -> dict[str, Any]:
        """Everything that determines f(x_S) besides the coalition (checkpoint keys)."""

    def finalize(self, result: Any) -> None:
        """Add adapter-specific extras to a finished result."""


# ------------------------------------------------------------------------------------------------ capabilities
@runtime_checkable
class Differentiable(Protocol):
    """A gradient path: z = x_S in a continuous space, f at z, and per-coordinate scores summed per player. Declared by
    ``differentiable = True``."""

    def embed(self, coalitions: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, Any]:
        """Continuous inputs ``z`` ``[m, *shape]``, baselines ``zb`` (same shape), per-row extra arguments."""

    def forward(self, z: torch.Tensor, extra: Any = None, row_coalitions: np.ndarray | None = None) -> torch.Tensor:
        """f at ``z`` -> ``[n]`` (differentiable)."""

    def reduce(self, coordinate_scores: torch.Tensor) -> torch.Tensor:
        """Per-coordinate scores ``[m, *shape]`` -> per-player scores ``[m, d]``."""


@runtime_checkable
class TorchModule(Protocol):
    """``model``: the torch module f runs through, which methods may hook or modify (AttnLRP's rules, the layers
    Captum's hook-based methods see, the gates of component players)."""

    model: torch.nn.Module


@runtime_checkable
class NativeInput(Protocol):
    """``z`` is the user's own model input, so a Captum *instance* bound to the user's forward applies. Declared by
    ``native_input = True`` (with the :class:`Differentiable` view)."""

    native_input: bool


@runtime_checkable
class KNNTables(Protocol):
    """The players are training points of a K-nearest-neighbour classifier (KNN-Shapley)."""

    def knn_tables(self, k: int | None = None) -> tuple[np.ndarray, np.ndarray, int]:
        """``(order[t, n], match[t, n], k)``: neighbours by distance and their label matches per test point."""


@runtime_checkable
class TrainingRuns(Protocol):
    """The players are training points of a torch model trained on each coalition (gradient influence)."""

    def training_runs(self, coalition: np.ndarray) -> Any:
        """The model trained on S (its checkpoints), the examples of S and the differentiable utility."""


@runtime_checkable
class SideTargets(Protocol):
    """Always-present targets whose attributions follow the d player columns (e.g. the patches of CLIP patch maps).
    Declared by a non-empty ``side_targets``."""

    side_targets: tuple[str, ...]


@runtime_checkable
class VectorValued(Protocol):
    """Each player's attribution is an array of ``attribution_shape`` (e.g. a concept map over image patches).
    Declared by a non-empty ``attribution_shape``."""

    attribution_shape: tuple[int, ...]

    def summary_weights(self) -> np.ndarray | None:
        """Weights of the scalar summary that becomes ``matrix`` (None: the plain sum)."""


#: what declares a capability besides having its members
_DECLARED: dict[type, Callable[[Any], bool]] = {
    Differentiable: lambda a: bool(getattr(a, "differentiable", True)),
    TorchModule: lambda a: isinstance(a.model, torch.nn.Module),
    NativeInput: lambda a: bool(a.native_input) and provides(a, Differentiable),
    SideTargets: lambda a: bool(a.side_targets),
    VectorValued: lambda a: bool(a.attribution_shape),
}


def _members(protocol: type) -> list[str]:
    """The members a protocol class names: its annotated attributes and its methods."""
    names = [n for klass in protocol.__mro__ if klass is not object for n in getattr(klass, "__annotations__", {})]
    names += [n for klass in protocol.__mro__ if klass is not object for n, v in vars(klass).items()
              if not n.startswith("_") and inspect.isfunction(v)]
    return list(dict.fromkeys(names))


def provides(adapter: Any, capability: type) -> bool:
    """Whether ``adapter`` provides ``capability`` (:class:`Adapter` or an optional capability, also one derived from
    these): every member is there (looked up without running properties) and the capability is declared where it
    has to be."""
    missing = object()
    if any(inspect.getattr_static(adapter, name, missing) is missing for name in _members(capability)):
        return False
    return all(_DECLARED[klass](adapter) for klass in capability.__mro__ if klass in _DECLARED)


def require_capability(adapter: Any, capability: type, who: str, fix: str = "") -> Any:
    """``adapter`` when it provides ``capability``; else a :class:`~metagame.errors.MissingCapabilityError` naming
    the capability, its members, ``who`` needs it (e.g. ``"method 'attnlrp'"``) and ``fix``."""
    if provides(adapter, capability):
        return adapter
    members = ", ".join(_members(capability))
    raise MissingCapabilityError(
        f"{who} needs the {capability.__name__} capability ({members}), which {type(adapter).__name__} does not "
        f"provide" + (f"; {fix}" if fix else "")
    )


__all__ = ["Adapter", "Differentiable", "KNNTables", "NativeInput", "SideTargets", "TorchModule", "TrainingRuns",
           "VectorValued", "provides", "require_capability"]
