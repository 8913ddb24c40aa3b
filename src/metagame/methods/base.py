"""The first-order attribution protocol.

Every method maps a model adapter (which holds ``inputs`` and ``baselines``) and a batch of
coalitions ``bool[m, d]`` to the attribution vectors φ(f, x_S), shape ``[m, d]``: row r is the
attribution of the masked input x_{S_r} (same baseline), with φ_i = 0 wherever the method says
so for absent players.

Methods are deterministic functions of the coalition (sampled methods draw their randomness
from a generator seeded by ``seed`` and the coalition itself), so the metagame built on them is
a well-defined game.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
import torch

from ..models.base import ModelAdapter

Family = Literal["gradient", "perturbation", "surrogate", "captum", "propagation", "attention"]


@dataclass(frozen=True)
class PathRule:
    """How a linear gradient method reads gradients: φ_i = Σ_k w_k ⟨t_i, ∇f(b + α_k (z − b))⟩ with the tangent
    t_i = (z − b) on player i's coordinates (``"displacement"``: gradient×input, IG) or the indicator of them
    (``"indicator"``: saliency). Adapters that can evaluate ∇f faster (two-tower models: one tower pass per distinct
    half-coalition) use it instead of calling the method."""

    alphas: tuple[float, ...]
    weights: tuple[float, ...]
    tangent: Literal["displacement", "indicator"]


class AttributionMethod:
    """Base class: subclasses set ``name``/``family`` and implement :meth:`attribute`."""

    name: ClassVar[str] = "method"
    family: ClassVar[Family] = "perturbation"
    needs_gradients: ClassVar[bool] = False
    #: the applications the method is made for (``"lm"``, ``"vision"``, ``"diffusion"``, ``"data"``, ...); None: any
    #: model it can run on (gradient methods need a differentiable one)
    applications: ClassVar[tuple[str, ...] | None] = None

    def attribute(self, model: ModelAdapter, coalitions: np.ndarray) -> torch.Tensor:  # pragma: no cover
        """φ(f, x_S) for each coalition row: ``[m, d]``."""
        raise NotImplementedError

    def params(self) -> dict[str, Any]:
        """Parameters recorded in result metadata."""
        return {}

    def fingerprint_parts(self, model: ModelAdapter, probes: np.ndarray) -> dict[str, Any]:
        """What determines the method's numbers beyond :meth:`params` (hashed into checkpoint fingerprints), e.g. a
        Captum object's class, settings and forward function; ``model`` is the adapter it will run on and ``probes``
        the checkpoint's probe coalitions ``bool[k, d]`` (to catch a changed function by its outputs)."""
        return {}

    def reference_value(self, model: ModelAdapter) -> tuple[float, str] | None:
        """``(f(r), what r is)`` for the point r that the first-order scores are complete against, Σ_i φ_i(f, x) =
        f(x) − f(r), when r is not the empty coalition (a path method's baseline in the differentiable space, e.g.
        zero embeddings); None for methods complete against f(∅) (Shapley, occlusion ...) or complete against none."""
        return None

    @property
    def table_rule(self) -> str | None:
        """Name of a closed-form rule over the full value table (exact perturbation methods), else None."""
        return None

    @property
    def path_rule(self) -> PathRule | None:
        """The method as a :class:`PathRule` when it is one (linear in the gradient along a straight path), else None."""
        return None

    @property
    def table_rule_limit(self) -> int | None:
        """The largest coalition size for which the method computes its ``table_rule`` exactly (None: every size).

        Larger coalitions are attributed by the method itself (e.g. a sampled Shapley value), so the exact engine
        computes what the method with its options computes.
        """
        return None

    def coalitions_per_pass(self, model: ModelAdapter) -> int | None:
        """Coalitions attributed together in one model pass when the method cuts a call into consecutive passes of
        this many rows (from the call's first row), each pass's numbers depending on its own rows only; a call cut at
        multiples of it then gives the same numbers bit for bit (the Ray backend spreads such pieces over workers).
        None: unknown (calls are never cut)."""
        return None

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params().items())
        return f"{type(self).__name__}({args})"


def coalition_rng(seed: int | None, coalition: np.ndarray) -> np.random.Generator:
    """A generator that depends only on ``seed`` and the coalition (common random numbers)."""
    packed = np.packbits(np.asarray(coalition, dtype=bool)).astype(np.uint32).tolist()
    return np.random.default_rng(np.random.SeedSequence([0 if seed is None else int(seed), len(coalition), *packed]))
