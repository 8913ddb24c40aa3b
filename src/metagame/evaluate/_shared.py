"""Helpers shared by the evaluation metrics: the inner method of a result, the games a metric evaluates,
result roles and labels."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from ..errors import MetagameError
from ..games.base import Game
from ..games.masked import AttributionGame, MaskedModelGame
from ..methods.base import AttributionMethod
from ..methods.registry import get_method
from ..models.base import ModelAdapter
from ..models.contract import Adapter, provides
from ..results.result import MetaAttribution

Role = Literal["metagame", "serial", "stii", "first_order"]

#: key in ``result.metadata`` under which the evaluation module marks the results it builds
ROLE_KEY = "evaluate_role"

#: short names of the inner methods in table labels
SHORT_NAMES = {
    "gradient_x_input": "G×I",
    "integrated_gradients": "IG",
    "shapley": "SV",
    "banzhaf": "BV",
    "occlusion": "Occ",
    "saliency": "Sal",
    "smoothgrad": "SG",
    "kernel_shap": "KSHAP",
    "lime": "LIME",
    "knn_shapley": "KNN-SV",
    "gradient_influence": "TracIn",
}


def role(result: MetaAttribution) -> Role:
    """What a result is for the metrics: a metagame matrix, the serial variant, a STII matrix or a first-order baseline."""
    marked = result.metadata.get(ROLE_KEY)
    if marked in ("stii", "first_order"):
        return marked
    return "serial" if result.variant == "serial" else "metagame"


def label(result: MetaAttribution) -> str:
    """A table label: ``Meta-IG``, ``serial Meta-SV``, ``STII``, ``first-order IG`` (``(Banzhaf)`` for the Banzhaf outer value)."""
    short = SHORT_NAMES.get(result.method, result.method)
    r = role(result)
    if r == "stii":
        return "STII"
    if r == "first_order":
        return f"first-order {short}"
    name = f"Meta-{short}"
    if r == "serial":
        name = f"serial {name}"
    if result.value == "banzhaf":
        name += " (Banzhaf)"
    if not result.exact:
        name += " (sampled)"
    return name


def inner_method(result: MetaAttribution, method: AttributionMethod | str | None = None,
                 method_kwargs: dict | None = None) -> AttributionMethod:
    """The inner method φ of ``result``: ``method`` when given, else rebuilt from the result's name and
    recorded parameters (``metadata["parameters"]["method_params"]``)."""
    if method is not None:
        return get_method(method, method_kwargs)
    params = dict((result.metadata.get("parameters") or {}).get("method_params") or {})
    try:
        return get_method(result.method, params)
    except MetagameError as e:
        raise MetagameError(
            f"cannot rebuild the inner method {result.method!r} of the result from its stored parameters ({e}); "
            f"pass method=... (an AttributionMethod object) to the evaluation function"
        ) from None


def attribution_game(model: ModelAdapter | Game, method: AttributionMethod, d: int) -> Game:
    """The game S ↦ φ(f, x_S): an :class:`AttributionGame` with a coalition cache, or ``model`` itself when it is
    a game. Its first d outputs are the player attributions (adapters may append side targets after them)."""
    if isinstance(model, Game):
        if model.n_players != d or model.n_outputs < d:
            raise MetagameError(
                f"an attribution game must map coalitions of {d} players to {d} attributions; got a game with "
                f"{model.n_players} players and {model.n_outputs} outputs"
            )
        return model
    _check_adapter(model, d)
    return AttributionGame(model, method, cache=True)


def value_game(model: ModelAdapter | Game, d: int) -> Game:
    """The game S ↦ f(x_S): a :class:`MaskedModelGame`, or ``model`` itself when it is a one-output game."""
    if isinstance(model, Game):
        if model.n_players != d or model.n_outputs != 1:
            raise MetagameError(
                f"a value game must map coalitions of {d} players to one number; got a game with "
                f"{model.n_players} players and {model.n_outputs} outputs"
            )
        return model
    _check_adapter(model, d)
    return MaskedModelGame(model, cache=True)


def _check_adapter(model: Any, d: int) -> None:
    if not provides(model, Adapter):
        raise MetagameError(
            f"model must be the adapter the result was computed with (a ModelAdapter) or a Game; got "
            f"{type(model).__name__}. For a tensor model build it with metagame.domains.tensors.adapter.TensorModel(model, x, baseline)"
        )
    if model.n_players != d:
        raise MetagameError(
            f"the adapter has {model.n_players} players but the result has {d}; pass the adapter the result was computed with"
        )


def off_diagonal(matrix: np.ndarray) -> np.ndarray:
    """Boolean mask of the d(d−1) off-diagonal entries."""
    return ~np.eye(matrix.shape[0], dtype=bool)


def player_index(result_players: list[str], ref: int | str, what: str = "annotation") -> int:
    """Index of a player given by index or by (unique) label."""
    d = len(result_players)
    if isinstance(ref, (bool, np.bool_)):
        raise MetagameError(f"{what}: player {ref!r} must be an index or a label")
    if isinstance(ref, (int, np.integer)):
        if not 0 <= int(ref) < d:
            raise MetagameError(f"{what}: player index {ref} is out of range for {d} players")
        return int(ref)
    hits = [k for k, p in enumerate(result_players) if p == ref]
    if len(hits) == 1:
        return hits[0]
    if not hits:
        raise MetagameError(f"{what}: no player labelled {ref!r}; the players are {result_players}")
    raise MetagameError(f"{what}: the label {ref!r} is not unique ({hits}); refer to the player by its index")
