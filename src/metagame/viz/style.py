"""What every picture shares: matplotlib (optional), colours, label shortening and fitting, saving."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import MetagameError
from ..results.result import MetaAttribution

try:  # matplotlib is the optional ``viz`` extra
    from matplotlib.figure import Figure

    HAVE_MPL = True
except ImportError:  # pragma: no cover - exercised only without matplotlib
    HAVE_MPL = False

CMAP = "RdBu_r"
POS_COLOR = "#c0392b"
NEG_COLOR = "#2866b0"
#: one colour per player kind (pictures group and colour players by kind)
KIND_COLORS = {
    "feature": "#555555", "word": "#1b7837", "token": "#1b7837", "word_a": "#1b7837", "word_b": "#762a83",
    "patch": "#b35806", "data": "#01665e", "head": "#8c510a", "neuron": "#8c510a", "layer": "#8c510a",
    "component": "#8c510a", "concept": "#c51b7d",
}
#: plural nouns of the player kinds (titles of the cross-block panels, report sentences)
KIND_NOUNS = {
    "feature": "features", "word": "words", "token": "tokens", "word_a": "words of A", "word_b": "words of B",
    "patch": "patches", "data": "training points", "head": "heads", "neuron": "neurons", "layer": "layers",
    "component": "components", "concept": "concepts",
}
#: kinds of the inputs of one model (text and image players): results holding only these keep their usual pictures
INPUT_KINDS = ("token", "word", "word_a", "word_b", "patch")
#: the longest label printed in full next to a matrix; longer ones make the picture use indices and a legend
MAX_LABEL = 22


def require_mpl() -> None:
    if not HAVE_MPL:
        raise MetagameError("plots need matplotlib; install it with `pip install metagame[viz]`")


def kinds_of(result: MetaAttribution) -> list[str]:
    return list(result.player_kinds) if result.player_kinds is not None else ["feature"] * result.n_players


def kind_noun(kind: str) -> str:
    """The plural noun of a player kind ("head" -> "heads")."""
    return KIND_NOUNS.get(kind, kind + "s")


def has_cross_kinds(kinds: Sequence[str]) -> bool:
    """True when players of different aspects share the game (e.g. words and heads, features and training points):
    the pictures and the report then show the cross blocks on their own."""
    present = set(kinds)
    return len(present) > 1 and not present <= set(INPUT_KINDS)


def absmax(*arrays: np.ndarray | None) -> float:
    """The largest finite |value| of the arrays (1.0 when there is none or it is 0)."""
    vals = [np.nanmax(np.abs(a[np.isfinite(a)])) for a in arrays if a is not None and np.size(a) and np.isfinite(a).any()]
    m = float(max(vals)) if vals else 0.0
    return m if m > 0 else 1.0


def short(label: str, width: int = 14) -> str:
    label = str(label).replace("\n", " ")
    return label if len(label) <= width else label[: width - 1] + "…"


def new_figure(w: float, h: float) -> "Figure":
    require_mpl()
    return Figure(figsize=(w, h), layout="constrained")


def save_figure(fig: "Figure", path: str | Path, dpi: int = 110) -> Path:
    """Write ``fig`` to ``path``; the format follows the suffix (``.png``, ``.svg``, ``.pdf``)."""
    path = Path(path)
    if path.suffix.lower() not in (".png", ".svg", ".pdf"):
        raise MetagameError(f"cannot save a figure as '{path.suffix}'; use a .png, .svg or .pdf path")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, bbox_inches="tight", facecolor="white")
    return path


def finish(fig: "Figure", save: str | Path | None) -> "Figure":
    if save is not None:
        save_figure(fig, save)
    return fig


def player_index(result: MetaAttribution, player: int | str) -> int:
    if isinstance(player, (int, np.integer)):
        if not -result.n_players <= int(player) < result.n_players:
            raise MetagameError(f"player index {player} out of range for {result.n_players} players")
        return int(player) % result.n_players
    if player in result.players:
        return result.players.index(player)
    raise MetagameError(f"no player labelled {player!r}; pass an index 0..{result.n_players - 1} or one of the labels")


def tick_labels(players: Sequence[str]) -> tuple[list[str], bool]:
    """Labels for the rows/columns of a matrix picture: the names when they all fit (≤ ``MAX_LABEL`` characters),
    else the indices ``0 .. d−1`` (the picture then adds a legend). Returns ``(labels, indexed)``."""
    names = [str(p).replace("\n", " ") for p in players]
    if all(len(n) <= MAX_LABEL for n in names):
        return names, False
    return [str(k) for k in range(len(names))], True


def fitted_fontsize(cells: int, inches: float, largest: float = 9.0, smallest: float = 4.0) -> float:
    """A font size (points) at which ``cells`` labels along ``inches`` of axis do not overlap (80% of a cell)."""
    per_cell = 72.0 * inches / max(cells, 1)
    return float(np.clip(0.8 * per_cell, smallest, largest))


def fit_tick_labels(fig: "Figure", axes: Sequence[Any]) -> None:
    """After layout, shrink the tick labels of matrix ``axes`` (one label per row/column) so that neighbouring labels
    never overlap: font ≤ 80% of the drawn cell size."""
    fig.draw_without_rendering()
    w, h = fig.get_size_inches()
    for ax in axes:
        pos = ax.get_position()
        for labels, extent, lim in ((ax.get_xticklabels(), pos.width * w, ax.get_xlim()),
                                    (ax.get_yticklabels(), pos.height * h, ax.get_ylim())):
            cells = abs(lim[1] - lim[0])
            if not labels or cells <= 0:
                continue
            size = fitted_fontsize(int(round(cells)), extent)
            for t in labels:
                if t.get_fontsize() > size:
                    t.set_fontsize(size)
    fig.draw_without_rendering()


def label_legend(ax: Any, players: Sequence[str], fontsize: float = 6.5) -> None:
    """A two-column ``k: name`` legend in its own axes (used when labels are indices)."""
    ax.axis("off")
    d = len(players)
    per_col = int(np.ceil(d / 2))
    for k, name in enumerate(players):
        col, row = divmod(k, per_col)
        ax.text(col * 0.5, 1.0 - (row + 0.5) / per_col, f"{k}: {short(name, 28)}", transform=ax.transAxes,
                fontsize=fontsize, va="center", ha="left", family="monospace")


__all__ = [
    "CMAP", "HAVE_MPL", "INPUT_KINDS", "KIND_COLORS", "KIND_NOUNS", "MAX_LABEL", "has_cross_kinds", "kind_noun", "NEG_COLOR", "POS_COLOR", "absmax", "finish", "fitted_fontsize",
    "fit_tick_labels", "kinds_of", "label_legend", "new_figure", "player_index", "require_mpl", "save_figure", "short", "tick_labels",
]
