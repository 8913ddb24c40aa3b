"""First-order attribution methods behind one protocol (gradient, perturbation, surrogate, Captum);
the methods made for one domain (AttnLRP, Grad-ECLIP, ConceptAttention, data) live in that domain."""

from .base import AttributionMethod, coalition_rng
from .captum_adapter import AdapterModule, CaptumMethod, is_captum_method
from .gradient import GradientXInput, IntegratedGradients, Saliency, SmoothGrad, input_gradients, quadrature
from .perturbation import Banzhaf, Occlusion, Shapley, evaluate_expansions, subset_table_rows
from .registry import ALIASES, METHODS, MethodName, get_method
from .surrogate import KernelShap, Lime

__all__ = [
    "ALIASES",
    "METHODS",
    "AdapterModule",
    "AttributionMethod",
    "Banzhaf",
    "CaptumMethod",
    "GradientXInput",
    "IntegratedGradients",
    "KernelShap",
    "Lime",
    "MethodName",
    "Occlusion",
    "Saliency",
    "Shapley",
    "SmoothGrad",
    "coalition_rng",
    "evaluate_expansions",
    "get_method",
    "input_gradients",
    "is_captum_method",
    "quadrature",
    "subset_table_rows",
]
