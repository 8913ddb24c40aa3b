"""Method names and lookup."""

from __future__ import annotations

import inspect
from typing import Any, Literal, get_args

from ..domains import domain_methods, resolve
from ..errors import MetagameError
from .base import AttributionMethod
from .captum_adapter import CaptumMethod, is_captum_method
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
}
#: the domains' own methods (AttnLRP, Grad-ECLIP, ConceptAttention, the data methods), registered in their table
METHODS.update({name: resolve(ref) for name, ref in domain_methods().items()})
assert set(METHODS) == set(get_args(MethodName))
METHODS = {name: METHODS[name] for name in get_args(MethodName)}  # listed (in errors, --help) in MethodName's order

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
        raise MetagameError(f"unknown method {method!r}{did_you_mean(method, list(METHODS))}; valid methods: "
                            f"{', '.join(METHODS)} (or a Captum attribution object)")
    return build_method(METHODS[key], kwargs, key)


def did_you_mean(name: str, choices: list[str]) -> str:
    """`` (did you mean 'shapley'?)`` for the closest of ``choices`` and their aliases, or ``""``."""
    import difflib

    pool = {c: c for c in choices} | {a: m for a, m in ALIASES.items() if m in choices}
    close = difflib.get_close_matches(name.lower(), list(pool), n=1, cutoff=0.6)
    return f" (did you mean {pool[close[0]]!r}?)" if close else ""


#: how errors name the applications of :attr:`AttributionMethod.applications`
APPLICATION_NAMES = {
    "tensor": "tensor models", "set_function": "set functions", "lm": "language models", "text_pair": "text pairs",
    "vision": "CLIP/SigLIP", "diffusion": "diffusion transformers", "data": "training points",
    "components": "model components", "joint": "joint games", "feature_data": "features and training points",
}


def fitting_methods(application: str | None, differentiable: bool = True) -> list[str]:
    """The method names that apply to an application (``"lm"``, ``"vision"``, ``"tensor"``, ...): those made for
    it or for any model, without the gradient methods when the model is not differentiable."""
    return [name for name, cls in METHODS.items()
            if (cls.applications is None or application in cls.applications)
            and (differentiable or not cls.needs_gradients)]


def check_method_for(method: Any, method_kwargs: dict | None, application: str | None,
                     differentiable: bool = True) -> None:
    """Refuse, before any model loads, a method name that does not exist or does not fit the application (the error
    names the fitting methods and the closest one), and options the method does not take."""
    if not isinstance(method, str):
        get_method(method, method_kwargs)
        return
    fit = fitting_methods(application, differentiable)
    key = ALIASES.get(method.lower(), method.lower())
    where = f"for {APPLICATION_NAMES.get(application, application)}; " if application else ""
    if key not in METHODS:
        raise MetagameError(f"unknown method {method!r}{did_you_mean(method, fit)}; valid methods: "
                            f"{', '.join(fit)} ({where}or a Captum attribution object)")
    if key not in fit:
        cls = METHODS[key]
        why = (f"it is made for {', '.join(APPLICATION_NAMES.get(a, a) for a in cls.applications)}"
               if cls.applications and application not in cls.applications
               else "it needs gradients and this model has none")
        raise MetagameError(f"method {method!r} does not apply here ({why}); valid methods: {', '.join(fit)}"
                            + (f" ({where.rstrip('; ')})" if where else ""))
    get_method(method, method_kwargs)


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
