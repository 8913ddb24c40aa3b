"""Shared-sample estimators of meta-attribution matrices (one per file; the design is in docs/estimators.md)."""

from .base import Estimator
from .driver import ESTIMATORS, estimate_meta_attributions, resolve_estimator

__all__ = ["ESTIMATORS", "Estimator", "estimate_meta_attributions", "resolve_estimator"]
