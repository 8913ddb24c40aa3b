"""Solvers: exact Shapley / Banzhaf / Möbius / Shapley-Taylor on k outputs at once, and estimators."""

from .exact import (
    banzhaf_values,
    moebius,
    restricted_attributions,
    shapley_taylor,
    shapley_taylor_from_moebius,
    shapley_values,
    shapley_weights,
    zeta,
)

__all__ = [
    "banzhaf_values",
    "moebius",
    "restricted_attributions",
    "shapley_taylor",
    "shapley_taylor_from_moebius",
    "shapley_values",
    "shapley_weights",
    "zeta",
]
