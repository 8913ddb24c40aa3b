"""metagame: second-order explanations. For any attribution method φ, the meta-attribution
φ_{j→i} says how much player j moves the attribution of player i (docs/mathematics.md).

    >>> import metagame
    >>> res = metagame.meta_attributions(model, x, method="integrated_gradients")
    >>> res.matrix[i, j]          # φ_{j→i}: row = target, column = source
"""

import logging as _logging

from ._version import __version__
from .domains import entry_points as _entry_points
from .domains.tensors import SetFunctionModel, TensorModel, attribute, meta_attributions, shapley_taylor
from .errors import MetagameError, ModelOutputError, NotDifferentiableError
from .methods.registry import METHODS, MethodName
from .models.joint import JointModel, joint
from .results.interaction import InteractionResult
from .results.result import MetaAttribution, load
from .results.result_set import ResultSet, load_set
from .run.explain import explain
from .run.options import RunOptions

#: entry points of the domains (registered in metagame.domains.DOMAINS) and of mixed games, imported on first use
#: (they pull in transformers / scikit-learn)
_APPLICATIONS = {
    **{name: module for name, module in _entry_points().items() if name not in globals()},
    "explain_joint": "metagame.applications.joint",
}


#: subpackages reachable as attributes of ``metagame`` without an explicit import
_SUBMODULES = {"evaluate": "metagame.evaluate"}


# what a run decided (route, estimator, budget, cache hits) is logged at INFO under "metagame"; silent unless the
# application configures logging, e.g. logging.basicConfig(level=logging.INFO)
_logging.getLogger("metagame").addHandler(_logging.NullHandler())


def __dir__() -> list[str]:
    """The module's names including the lazily imported ``explain_*`` entry points (for tab completion)."""
    return sorted(set(globals()) | set(_APPLICATIONS) | set(_SUBMODULES))


def __getattr__(name: str):
    if name in _APPLICATIONS:
        import importlib

        return getattr(importlib.import_module(_APPLICATIONS[name]), name)
    if name in _SUBMODULES:
        import importlib

        return importlib.import_module(_SUBMODULES[name])
    raise AttributeError(f"module 'metagame' has no attribute {name!r}")


__all__ = [
    "explain_components",
    "explain_data",
    "explain_diffusion",
    "explain_feature_data",
    "explain_joint",
    "explain_lm",
    "explain_text_pair",
    "explain_vision",
    "METHODS",
    "InteractionResult",
    "JointModel",
    "MetaAttribution",
    "MetagameError",
    "MethodName",
    "ModelOutputError",
    "NotDifferentiableError",
    "ResultSet",
    "RunOptions",
    "SetFunctionModel",
    "TensorModel",
    "__version__",
    "attribute",
    "evaluate",
    "explain",
    "joint",
    "load",
    "load_set",
    "meta_attributions",
    "shapley_taylor",
]
