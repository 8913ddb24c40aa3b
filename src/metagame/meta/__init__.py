"""The metagame: meta-attribution matrices (exact engine; estimators in :mod:`metagame.meta.sampling`)."""

from .exact import ExactOutcome, attribution_table, exact_meta_attributions, value_table
from .tables import Value, Variant, meta_shapley_from_values, metagame_from_table, serial_from_table

__all__ = [
    "ExactOutcome",
    "Value",
    "Variant",
    "attribution_table",
    "exact_meta_attributions",
    "meta_shapley_from_values",
    "metagame_from_table",
    "serial_from_table",
    "value_table",
]
