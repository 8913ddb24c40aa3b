"""The run pipeline: options → exact engine or estimators → one builder of results.

``options.py`` (RunOptions, the only copies of the option literals) · ``outcome.py`` (:class:`Outcome`, what every
engine returns) · ``explain.py`` (the only code that builds a :class:`~metagame.MetaAttribution`) · ``exact.py`` and
``tables.py`` (exact engine, table → matrix transforms) ·
``estimators/`` (one estimator per file) · ``third_order.py`` · ``checkpoint.py`` · ``progress.py`` · ``backend.py``
(where attribution calls run: this process or Ray workers, behind one game factory).
"""

from .exact import attribution_table, exact_meta_attributions, value_table
from .explain import explain
from .options import CheckpointMode, EstimatorName, RunKeywords, RunOptions, Value, Variant, split_run_options
from .outcome import Outcome
from .tables import meta_shapley_from_values, metagame_from_table, serial_from_table, side_from_table

__all__ = [
    "CheckpointMode",
    "EstimatorName",
    "Outcome",
    "RunKeywords",
    "RunOptions",
    "Value",
    "Variant",
    "attribution_table",
    "exact_meta_attributions",
    "explain",
    "meta_shapley_from_values",
    "metagame_from_table",
    "serial_from_table",
    "side_from_table",
    "split_run_options",
    "value_table",
]
