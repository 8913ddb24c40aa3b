"""Games: vector-valued cooperative games with call counting and caching."""

from .base import FunctionGame, Game, MoebiusGame
from .masked import AttributionGame, MaskedModelGame

__all__ = ["AttributionGame", "FunctionGame", "Game", "MaskedModelGame", "MoebiusGame"]
