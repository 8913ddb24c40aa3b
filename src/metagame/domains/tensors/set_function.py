"""Adapter for set functions: any ``v(coalitions: bool[m, d]) -> [m]`` with ``n_players``, such as a shapiq
``Game`` (its values as it returns them, i.e. after its own normalisation)."""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
import torch

from ...errors import MetagameError, NotDifferentiableError
from ...models.base import ModelAdapter
from ...players.coalitions import player_labels


def is_set_function(model: Any) -> bool:
    """True for objects that say how many players they have and are called on coalition matrices (shapiq games)."""
    n = getattr(model, "n_players", None)
    return callable(model) and isinstance(n, (int, np.integer)) and not isinstance(model, torch.nn.Module)


class SetFunctionModel(ModelAdapter):
    """A cooperative game v(S) given by its values: ``game(bool[m, d]) -> [m]``.

    Only methods that read values apply (``shapley``, ``banzhaf``, ``occlusion``, ``kernel_shap``, ``lime``); the
    metagame of the inner Shapley value is then u_i(T) = SV_i(v restricted to T ∪ {i}).

    Args:
        game: the set function; a shapiq ``Game`` or any callable with an integer ``n_players``.
        n_players: number of players when ``game`` has no ``n_players`` attribute.
        players: labels (default: the game's ``player_names`` if it has them, else ``x0 .. x{d-1}``).
        batch_size: coalitions per call of ``game``.
    """

    differentiable = False

    def __init__(self, game: Callable, *, n_players: int | None = None, players: Sequence[str] | None = None,
                 batch_size: int = 4096):
        if not callable(game):
            raise MetagameError(f"a set function must be callable on coalition matrices; got {type(game).__name__}")
        d = n_players if n_players is not None else getattr(game, "n_players", None)
        if not isinstance(d, (int, np.integer)) or d < 1:
            raise MetagameError("a set function needs its number of players: give n_players=... (a positive int)")
        super().__init__(batch_size=batch_size, cache_values=True)
        self.game = game
        self.n_players = int(d)
        names = players if players is not None else _game_player_names(game)
        self.players = player_labels(names, self.n_players)
        self.player_kinds = ["player"] * self.n_players

    @property
    def dtype(self) -> torch.dtype:
        return torch.float64

    def _values(self, coalitions: np.ndarray) -> torch.Tensor:
        out = self.game(np.asarray(coalitions, dtype=bool))
        self.count(len(coalitions))
        return self.check_output(torch.as_tensor(np.asarray(out, dtype=np.float64)), len(coalitions), coalitions)

    def embed(self, coalitions: np.ndarray):
        raise NotDifferentiableError(self._no_gradient())

    def forward(self, z, extra=None, row_coalitions=None):
        raise NotDifferentiableError(self._no_gradient())

    def reduce(self, coordinate_scores: torch.Tensor) -> torch.Tensor:
        return coordinate_scores

    def _no_gradient(self) -> str:
        return ("a set function has values only, no gradient; use shapley, banzhaf, occlusion, kernel_shap or lime")

    def describe(self) -> dict:
        return {"adapter": "SetFunctionModel", "game": type(self.game).__name__, "n_players": self.n_players}

    def display_context(self) -> dict:
        return {"game": type(self.game).__name__}

    def fingerprint_parts(self) -> dict[str, Any]:
        # the game's values at every coalition are the whole game; up to 2^12 of them are cheap to include
        parts: dict[str, Any] = {"describe": self.describe(), "players": list(self.players)}
        if self.n_players <= 12:
            grid = ((np.arange(1 << self.n_players)[:, None] >> np.arange(self.n_players)) & 1).astype(bool)
            parts["values"] = self.values(grid).double().numpy()
        return parts


def _game_player_names(game: Any) -> list[str] | None:
    names = getattr(game, "player_name_lookup", None)
    if isinstance(names, dict) and names:
        return [str(k) for k, _ in sorted(names.items(), key=lambda kv: kv[1])]
    return None


__all__ = ["SetFunctionModel", "is_set_function"]
