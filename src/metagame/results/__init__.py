"""Result objects and their JSON save/load (one codec: :mod:`metagame.results.codec`)."""

from .aggregate import Aggregate, aggregate, normalise_label
from .interaction import InteractionResult
from .result import MetaAttribution, load
from .result_set import ResultSet, load_set

__all__ = ["Aggregate", "InteractionResult", "MetaAttribution", "ResultSet", "aggregate", "load", "load_set",
           "normalise_label"]
