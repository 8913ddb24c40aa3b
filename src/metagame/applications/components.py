"""Meta-attributions over model components: how head (neuron, layer) j changes the attribution of
head i, M[i, j] = Shapley value of j in u_i(T) = φ_i(f, x_{T ∪ {i}}), where x_S ablates every
component outside S.

    >>> from metagame.applications.components import explain_components
    >>> res = explain_components(gpt2, tok("The cat", return_tensors="pt"), output=token_id,
    ...                          components="heads", ablation="mean", reference=batch)
"""

from __future__ import annotations

from typing import Any, Callable, Literal, Sequence

import torch

from ..api import Estimator, explain
from ..meta.tables import Value, Variant
from ..methods.base import AttributionMethod
from ..methods.registry import get_method
from ..models.components import Ablation, ComponentKind, ComponentModel
from ..results.result import MetaAttribution

ComponentMethodName = Literal[
    "ablation", "occlusion", "shapley", "banzhaf", "attribution_patching", "gradient_x_input", "integrated_gradients",
    "attnlrp",
]

#: component-attribution names -> generic methods (attribution patching = gradient×input on the gates)
COMPONENT_ALIASES = {"ablation": "occlusion", "ablation_effect": "occlusion", "attribution_patching": "gradient_x_input"}


def component_method(method: ComponentMethodName | AttributionMethod | Any, method_kwargs: dict | None = None) -> AttributionMethod:
    """Method object from a component-attribution name (``ablation``, ``attribution_patching``) or any method."""
    if isinstance(method, str):
        method = COMPONENT_ALIASES.get(method.lower(), method)
    return get_method(method, method_kwargs)


def component_game(
    model: torch.nn.Module,
    inputs: Any,
    *,
    output: int | Callable,
    components: ComponentKind | Sequence[str] = "heads",
    layers: Sequence[int] | None = None,
    neuron_groups: int | None = None,
    ablation: Ablation = "zero",
    reference: Any = None,
    corrupted: Any = None,
    architecture: str | None = None,
    batch_size: int = 256,
) -> ComponentModel:
    """The component adapter (see :class:`~metagame.models.components.ComponentModel`)."""
    return ComponentModel(
        model, inputs, output=output, components=components, layers=layers, neuron_groups=neuron_groups,
        ablation=ablation, reference=reference, corrupted=corrupted, architecture=architecture, batch_size=batch_size,
    )


def explain_components(
    model: torch.nn.Module,
    inputs: Any,
    *,
    output: int | Callable,
    components: ComponentKind | Sequence[str] = "heads",
    method: ComponentMethodName | AttributionMethod | Any = "shapley",
    method_kwargs: dict | None = None,
    ablation: Ablation = "zero",
    reference: Any = None,
    corrupted: Any = None,
    layers: Sequence[int] | None = None,
    neuron_groups: int | None = None,
    architecture: str | None = None,
    variant: Variant = "metagame",
    value: Value = "shapley",
    budget: int | None = None,
    seed: int | None = None,
    estimator: Estimator = "auto",
    batch_size: int = 256,
    progress: bool | None = None,
) -> MetaAttribution:
    """Component meta-attributions M[i, j] (row = target component, column = source); rows sum to the
    first-order component attribution (ablation effect, Shapley, attribution patching, ...)."""
    adapter = component_game(
        model, inputs, output=output, components=components, layers=layers, neuron_groups=neuron_groups,
        ablation=ablation, reference=reference, corrupted=corrupted, architecture=architecture, batch_size=batch_size,
    )
    inner = component_method(method, method_kwargs)
    return explain(adapter, inner, variant=variant, value=value, budget=budget, seed=seed, estimator=estimator, progress=progress)
