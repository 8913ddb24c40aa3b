"""Method names and lookup."""

from __future__ import annotations

import inspect
from typing import Any, Literal, get_args

from ..errors import MetagameError
from .attnlrp import AttnLRP
from .base import AttributionMethod
from .captum_adapter import CaptumMethod, is_captum_method
from .concept_attention import ConceptAttention
from .data import GradientInfluence, KNNShapley
from .grad_eclip import GradECLIP
from .gradient import GradientXInput, IntegratedGradients, Saliency, SmoothGrad
from .perturbation import Banzhaf, Occlusion, Shapley
from .surrogate import KernelShap, Lime

MethodName = Literal[
    "saliency",
    "gradient_x_input",
    "integrated_gradients",
    "smoothgrad",
    "occlusion",
    "shapley",
    "banzhaf",
    "kernel_shap",
    "lime",
    "knn_shapley",
    "gradient_influence",
    "attnlrp",
    "grad_eclip",
    "concept_attention",
]

METHODS: dict[str, type[AttributionMethod]] = {
    "saliency": Saliency,
    "gradient_x_input": GradientXInput,
    "integrated_gradients": IntegratedGradients,
    "smoothgrad": SmoothGrad,
    "occlusion": Occlusion,
    "shapley": Shapley,
    "banzhaf": Banzhaf,
    "kernel_shap": KernelShap,
    "lime": Lime,
    "knn_shapley": KNNShapley,
    "gradient_influence": GradientInfluence,
    "attnlrp": AttnLRP,
    "grad_eclip": GradECLIP,
    "concept_attention": ConceptAttention,
}
assert set(METHODS) == set(get_args(MethodName))

#: accepted aliases (common spellings in other libraries)
ALIASES = {
    "ig": "integrated_gradients",
    "gxi": "gradient_x_input",
    "input_x_gradient": "gradient_x_input",
    "grad_x_input": "gradient_x_input",
    "leave_one_out": "occlusion",
    "loo": "occlusion",
    "kernelshap": "kernel_shap",
    "shap": "kernel_shap",
    "tracin": "gradient_influence",
    "data_shapley": "shapley",
    "data_banzhaf": "banzhaf",
    "attribution_patching": "gradient_x_input",
    "attn_lrp": "attnlrp",
    "gradeclip": "grad_eclip",
}


def get_method(method: Any, method_kwargs: dict | None = None) -> AttributionMethod:
    """A method object from a name, an :class:`AttributionMethod`, or a Captum instance/class."""
    kwargs = dict(method_kwargs or {})
    if isinstance(method, AttributionMethod):
        if kwargs:
            raise MetagameError("method_kwargs apply to method names; configure the method object directly instead")
        return method
    if is_captum_method(method):
        return CaptumMethod(method, **kwargs)
    if not isinstance(method, str):
        raise MetagameError(
            f"method must be a name ({', '.join(METHODS)}), an AttributionMethod or a Captum attribution "
            f"object; got {type(method).__name__}"
        )
    key = ALIASES.get(method.lower(), method.lower())
    if key not in METHODS:
        raise MetagameError(f"unknown method {method!r}; valid methods: {', '.join(METHODS)} (or a Captum attribution object)")
    return build_method(METHODS[key], kwargs, key)


def method_options(cls: type) -> list[str]:
    """The keyword options a method class takes, read from its real constructor signature."""
    params = inspect.signature(cls).parameters.values()
    return [p.name for p in params if p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)]


def build_method(cls: type, kwargs: dict, name: str) -> AttributionMethod:
    """``cls(**kwargs)`` with an error that lists the options the method really takes."""
    accepted = method_options(cls)
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        raise MetagameError(
            f"method {name!r} does not take {unknown} (unexpected options); its options are: {', '.join(accepted) or 'none'}"
        )
    return cls(**kwargs)
