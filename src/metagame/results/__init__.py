"""Result objects and their JSON save/load (one codec: :mod:`metagame.results.codec`)."""

from .interaction import InteractionResult
from .result import MetaAttribution, load

__all__ = ["InteractionResult", "MetaAttribution", "load"]
