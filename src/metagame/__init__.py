"""metagame: second-order explanations. For any attribution method φ, the meta-attribution
φ_{j→i} says how much player j moves the attribution of player i (SPEC.md).

    >>> import metagame
    >>> res = metagame.meta_attributions(model, x, method="integrated_gradients")
    >>> res.matrix[i, j]          # φ_{j→i}: row = target, column = source
"""

from ._version import __version__
from .api import attribute, explain, meta_attributions, shapley_taylor
from .errors import MetagameError, ModelOutputError, NotDifferentiableError
from .methods.registry import METHODS, MethodName
from .results.result import MetaAttribution, load

__all__ = [
    "METHODS",
    "MetaAttribution",
    "MetagameError",
    "MethodName",
    "ModelOutputError",
    "NotDifferentiableError",
    "__version__",
    "attribute",
    "explain",
    "load",
    "meta_attributions",
    "shapley_taylor",
]
