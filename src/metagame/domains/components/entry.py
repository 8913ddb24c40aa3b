"""Meta-attributions over model components: how head (neuron, layer) j changes the attribution of
head i, M[i, j] = Shapley value of j in u_i(T) = φ_i(f, x_{T ∪ {i}}), where x_S ablates every
component outside S.

    >>> from metagame.domains.components.entry import explain_components
    >>> res = explain_components(gpt2, tok("The cat", return_tensors="pt"), output=token_id,
    ...                          components="heads", ablation="mean", reference=batch)
"""

from __future__ import annotations

from typing import Any, Literal, Mapping

import torch

from ...applications.common import build_adapter, explain_application
from ...applications.sets import SetItem, explain_inputs, is_input_list, item_error
from ...methods.base import AttributionMethod
from ...methods.registry import get_method
from ...results.result import MetaAttribution
from ...results.result_set import ResultSet
from ...run.options import RunOptions
from .adapter import ComponentModel

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


def component_adapter(model: torch.nn.Module, inputs: Any, **options: Any) -> ComponentModel:
    """The component adapter (:class:`~metagame.domains.components.adapter.ComponentModel`; its keywords are the options)."""
    return build_adapter(ComponentModel, "component_adapter", model, inputs, **options)


def explain_components(
    model: torch.nn.Module,
    inputs: Any,
    *,
    method: ComponentMethodName | AttributionMethod | Any = "shapley",
    method_kwargs: dict | None = None,
    options: RunOptions | Mapping[str, Any] | None = None,
    **kwargs: Any,
) -> MetaAttribution | ResultSet:
    """Component meta-attributions M[i, j] (row = target component, column = source); rows sum to the
    first-order component attribution (ablation effect, Shapley, attribution patching, ...).

    ``kwargs``: :class:`~metagame.domains.components.adapter.ComponentModel`'s options (output, components, ablation,
    reference, corrupted, layers, neuron_groups, architecture, batch_size) and the run options.

    A list of inputs (each a dict of tensors or a tensor, batch size 1) returns a :class:`~metagame.ResultSet`, one
    result per input equal to the separate call; ``checkpoint=`` is then a folder.
    """
    inner = component_method(method, method_kwargs)
    if is_input_list(inputs):
        items = []
        for k, x in enumerate(inputs):
            if x is None or (isinstance(x, dict) and not x) or (isinstance(x, torch.Tensor) and x.numel() == 0):
                raise item_error("explain_components", k, "is empty; give the model inputs (a dict of tensors or a tensor)")
            items.append(SetItem((x,), describe={"input": k}))
        return explain_inputs(ComponentModel, "explain_components", model, items, inner, None, options, kwargs)
    return explain_application(ComponentModel, "explain_components", (model, inputs), inner, None, options, kwargs)


__all__ = ["COMPONENT_ALIASES", "ComponentMethodName", "component_adapter", "component_method", "explain_components"]
