"""First-order attribution methods behind one protocol (gradient, perturbation, surrogate, Captum)."""

from .attnlrp import AttnLRP, attnlrp_rules
from .base import AttributionMethod, coalition_rng
from .captum_adapter import AdapterModule, CaptumMethod, is_captum_method
from .grad_eclip import GradECLIP
from .gradient import GradientXInput, IntegratedGradients, Saliency, SmoothGrad, input_gradients, quadrature
from .perturbation import Banzhaf, Occlusion, Shapley, evaluate_expansions, subset_table_rows
from .registry import ALIASES, METHODS, MethodName, get_method
from .surrogate import KernelShap, Lime

__all__ = [
    "ALIASES",
    "METHODS",
    "AdapterModule",
    "AttnLRP",
    "AttributionMethod",
    "Banzhaf",
    "CaptumMethod",
    "GradECLIP",
    "GradientXInput",
    "IntegratedGradients",
    "KernelShap",
    "Lime",
    "MethodName",
    "Occlusion",
    "Saliency",
    "Shapley",
    "SmoothGrad",
    "attnlrp_rules",
    "coalition_rng",
    "evaluate_expansions",
    "get_method",
    "input_gradients",
    "is_captum_method",
    "quadrature",
    "subset_table_rows",
]
