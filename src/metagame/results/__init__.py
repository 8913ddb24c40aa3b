"""Result objects and their JSON save/load."""

from .result import MetaAttribution, load

__all__ = ["MetaAttribution", "load"]
