"""Pictures of meta-attributions (matplotlib, headless: figures are built without pyplot).

Every function takes a :class:`~metagame.results.result.MetaAttribution`, returns a
:class:`matplotlib.figure.Figure` and, with ``save=path``, also writes it (PNG, SVG or PDF by suffix).
Convention throughout: ``matrix[i, j]`` = φ_{j→i}, row = target i, column = source j.

Matrix pictures colour the off-diagonal entries (the pairs, the point of the picture) on their own scale and
show the diagonal (each player's own effect M[i, i]) as a separate strip with its own scale; every row and column
is labelled up to 64 players (names when they fit, else indices with a legend); players of different kinds are
coloured by kind with lines between the kind blocks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Sequence

import numpy as np

from ..errors import MetagameError
from ..results.result import MetaAttribution
from .images import image_overlay, input_image, patch_layout
from .sequences import arc_diagram, waterfall
from .style import (
    CMAP,
    HAVE_MPL,
    KIND_COLORS,
    NEG_COLOR,
    POS_COLOR,
    absmax,
    default_target,
    finish,
    fit_tick_labels,
    fitted_fontsize,
    has_cross_kinds,
    kind_noun,
    kinds_of,
    label_legend,
    new_figure,
    player_index,
    require_mpl,
    save_figure,
    short,
    tick_labels,
)

try:  # matplotlib is the optional ``viz`` extra
    import matplotlib as _mpl
    from matplotlib.colors import TwoSlopeNorm
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle
except ImportError:  # pragma: no cover - exercised only without matplotlib
    pass

_HAVE_MPL = HAVE_MPL
#: player kinds shown as a sequence of text (arc diagrams, inline text in the report)
TEXT_KINDS = ("token", "word", "word_a", "word_b")
#: the most players whose every row and column is labelled (beyond, every k-th)
MAX_LABELLED = 64
FigureName = Literal["heatmap", "arcs", "waterfall", "image", "comparison", "tensor", "cross_blocks"]


def _title(result: MetaAttribution) -> str:
    kind = "exact" if result.exact else "estimated"
    return f"meta-attributions · {result.method} · {result.variant}/{result.value} · {kind}"


def _off_diagonal(m: np.ndarray) -> np.ndarray:
    out = np.array(m, dtype=np.float64, copy=True)
    np.fill_diagonal(out, np.nan)
    return out


# ---------------------------------------------------------------------------------------------- matrices
def _label_axes(ax, players: Sequence[str], kinds: Sequence[str] | None, inches: float, x: bool = True,
                y: bool = True) -> bool:
    """Label every row/column (names or indices, font fitted to the cell size), coloured by kind; kind blocks are
    separated by lines. Returns True when the labels are indices (the caller adds a legend)."""
    d = len(players)
    labels, indexed = tick_labels(players)
    size = fitted_fontsize(d, inches)
    step = 1 if d <= MAX_LABELLED else int(np.ceil(d / MAX_LABELLED))
    ticks = list(range(0, d, step))
    if x:  # an axis not labelled here is left as it is (e.g. the numeric axis of a bar chart)
        ax.set_xticks(ticks, [labels[k] for k in ticks], rotation=90, fontsize=size)
    if y:
        ax.set_yticks(ticks, [labels[k] for k in ticks], fontsize=size)
    if kinds is not None and len(set(kinds)) > 1:
        for text, k in list(zip(ax.get_xticklabels(), ticks)) * int(x) + list(zip(ax.get_yticklabels(), ticks)) * int(y):
            text.set_color(KIND_COLORS.get(kinds[k], "#333"))
        for k in range(1, d):
            if kinds[k] != kinds[k - 1]:  # only on the axes labelled here (a bar chart's value axis keeps its range)
                if y:
                    ax.axhline(k - 0.5, color="#111", lw=1.1)
                if x:
                    ax.axvline(k - 0.5, color="#111", lw=1.1)
    return indexed


def _draw_offdiag(ax, m: np.ndarray, stderr: np.ndarray | None, vmax: float, annotate: bool):
    """The off-diagonal entries on a symmetric scale ±vmax; the diagonal cells are grey and outlined."""
    d = m.shape[0]
    cmap = _mpl.colormaps[CMAP].with_extremes(bad="#e6e6e6")
    im = ax.imshow(np.ma.masked_invalid(_off_diagonal(m)), cmap=cmap, norm=TwoSlopeNorm(0.0, -vmax, vmax),
                   interpolation="nearest", aspect="equal")
    if d <= 60:
        for k in range(d):
            ax.add_patch(Rectangle((k - 0.5, k - 0.5), 1, 1, fill=False, lw=0.6, ec="#888"))
    if annotate:
        for i in range(d):
            for j in range(d):
                if i == j:
                    continue
                v = m[i, j]
                txt = "nan" if not np.isfinite(v) else f"{v:.2g}"
                if stderr is not None and np.isfinite(v) and np.isfinite(stderr[i, j]):
                    txt += f"\n±{stderr[i, j]:.1g}"
                dark = np.isfinite(v) and abs(v) > 0.6 * vmax
                ax.text(j, i, txt, ha="center", va="center", fontsize=6.5, color="white" if dark else "#222")
    return im


def _draw_diagonal(ax, values: np.ndarray, title: str, annotate: bool):
    """The diagonal as a one-column strip on its own scale."""
    vmax = absmax(values)
    im = ax.imshow(np.ma.masked_invalid(np.asarray(values, dtype=np.float64)[:, None]), cmap=CMAP,
                   norm=TwoSlopeNorm(0.0, -vmax, vmax), interpolation="nearest", aspect="auto")
    ax.set_xticks([0], [title], rotation=90, fontsize=8)
    ax.set_yticks([])
    if annotate:
        for k, v in enumerate(values):
            if np.isfinite(v):
                ax.text(0, k, f"{v:.2g}", ha="center", va="center", fontsize=6.5,
                        color="white" if abs(v) > 0.6 * vmax else "#222")
    return im


def matrix_figure(
    m: np.ndarray,
    players: Sequence[str],
    *,
    title: str,
    kinds: Sequence[str] | None = None,
    stderr: np.ndarray | None = None,
    annotate: bool | None = None,
    xlabel: str = "source j",
    ylabel: str = "target i",
    diagonal: str = "own M[i, i]",
    colorbar: str = r"$\phi_{j\to i}$ (source j moves target i)",
) -> "Figure":
    """A square matrix picture: off-diagonal entries on their own scale, the diagonal as a strip on its own scale,
    every row and column labelled (names or indices plus a legend)."""
    d = m.shape[0]
    size = float(min(12.0, max(4.2, 0.17 * d + 3.2)))
    _, indexed = tick_labels(players)
    legend_h = 0.16 * np.ceil(d / 2) + 0.3 if indexed else 0.0
    fig = new_figure(size + 2.4, size + legend_h)
    heights = [size, legend_h] if indexed else [size]
    gs = fig.add_gridspec(len(heights), 4, width_ratios=[size, 0.45, 0.18, 0.18], height_ratios=heights)
    ax = fig.add_subplot(gs[0, 0])
    annotate = d <= 10 if annotate is None else annotate
    vmax = absmax(_off_diagonal(m))
    im = _draw_offdiag(ax, m, stderr, vmax, annotate)
    _label_axes(ax, players, kinds, inches=0.8 * size)
    ax.set_xlabel(xlabel, fontsize=9)
    ax.set_ylabel(ylabel, fontsize=9)
    ax.set_title(title, fontsize=10)
    axd = fig.add_subplot(gs[0, 1])
    dim = _draw_diagonal(axd, np.diag(m), diagonal, annotate)
    axd.set_ylim(ax.get_ylim())
    cb = fig.colorbar(im, cax=fig.add_subplot(gs[0, 2]))
    cb.set_label(colorbar, fontsize=8)
    cb2 = fig.colorbar(dim, cax=fig.add_subplot(gs[0, 3]))
    cb2.set_label(diagonal + " (own scale)", fontsize=8)
    if indexed:
        label_legend(fig.add_subplot(gs[1, :]), players)
    fit_tick_labels(fig, [ax])
    return fig


def heatmap(
    result: MetaAttribution,
    *,
    annotate: bool | None = None,
    title: str | None = None,
    save: str | Path | None = None,
) -> "Figure":
    """Directed heatmap of M: cell (i, j) = φ_{j→i}; rows = targets, columns = sources, zero = white. The pairs are
    coloured on their own scale; the own effects M[i, i] form a strip on a separate scale."""
    fig = matrix_figure(result.matrix, result.players, title=title or _title(result), kinds=kinds_of(result),
                        stderr=result.stderr, annotate=annotate)
    return finish(fig, save)


def tensor_heatmap(
    result: MetaAttribution,
    target: int | str | None = None,
    *,
    annotate: bool | None = None,
    save: str | Path | None = None,
) -> "Figure":
    """Third order for one target i: cell (j, k) = T[i, j, k], how player k moves the push φ_{j→i} of j on i
    (rows sum to M[i, j]; the diagonal T[i, j, j] is the pair's own effect). Needs an ``order=3`` result."""
    if result.tensor is None:
        raise MetagameError("tensor_heatmap needs an order-3 result; run with order=3")
    i = default_target(result) if target is None else player_index(result, target)
    others = [j for j in range(result.n_players) if j != i]
    block = result.tensor[i][np.ix_(others, others)]
    se = None if result.tensor_stderr is None else result.tensor_stderr[i][np.ix_(others, others)]
    kinds = kinds_of(result)
    name = short(result.players[i], 24)
    fig = matrix_figure(
        block, [result.players[j] for j in others], kinds=[kinds[j] for j in others], stderr=se, annotate=annotate,
        title=f"who moves whose push on '{name}': cell (j, k) = T[i, j, k]",
        xlabel="mover k", ylabel=f"source j (its push φ_{{j→i}} on '{name}')", diagonal="pair's own T[i, j, j]",
        colorbar=r"$T[i, j, k]$ (k moves $\phi_{j\to i}$)",
    )
    return finish(fig, save)


# ---------------------------------------------------------------------------------------------- cross blocks
def cross_blocks_figure(
    result: MetaAttribution,
    *,
    annotate: bool | None = None,
    title: str | None = None,
    save: str | Path | None = None,
) -> "Figure":
    """One panel per ordered pair of player kinds (a, b), a ≠ b: the block of M with sources of kind a (columns) and
    targets of kind b (rows), cell = φ_{j→i}, on its own colour scale. For words and heads, panel "head → word" says
    how each head moves each word's attribution and "word → head" how each word moves each head's."""
    from ..models.joint import kind_blocks

    kinds = kinds_of(result)
    blocks = kind_blocks(kinds)
    if len(blocks) < 2:
        raise MetagameError("cross_blocks_figure needs players of at least two kinds (e.g. words and heads)")
    pairs = [(a, ia, b, ib) for a, ia in blocks for b, ib in blocks if a != b]
    ncols = 2 if len(pairs) <= 4 else 3
    nrows = int(np.ceil(len(pairs) / ncols))
    cell = 0.34
    widths = [max(2.4, cell * len(ia) + 1.6) for _, ia, _, _ in pairs]
    heights = [max(2.0, cell * len(ib) + 1.4) for _, _, _, ib in pairs]
    w = float(min(16.0, ncols * (max(widths) + 0.7)))
    h = float(min(14.0, nrows * max(heights) + 0.7))
    fig = new_figure(w, h)
    gs = fig.add_gridspec(nrows, 2 * ncols, width_ratios=[1.0, 0.05] * ncols)
    cmap = _mpl.colormaps[CMAP].with_extremes(bad="#e6e6e6")
    m = np.asarray(result.matrix, dtype=np.float64)
    axes = []
    for k, (a, ia, b, ib) in enumerate(pairs):
        r, c = divmod(k, ncols)
        ax = fig.add_subplot(gs[r, 2 * c])
        block = m[np.ix_(ib, ia)]
        vmax = absmax(block)
        im = ax.imshow(np.ma.masked_invalid(block), cmap=cmap, norm=TwoSlopeNorm(0.0, -vmax, vmax),
                       interpolation="nearest", aspect="auto")
        ax.set_xticks(range(len(ia)), [short(result.players[j], 12) for j in ia], rotation=90, fontsize=7)
        ax.set_yticks(range(len(ib)), [short(result.players[i], 12) for i in ib], fontsize=7)
        for t in ax.get_xticklabels():
            t.set_color(KIND_COLORS.get(a, "#333"))
        for t in ax.get_yticklabels():
            t.set_color(KIND_COLORS.get(b, "#333"))
        show = (len(ia) * len(ib) <= 64) if annotate is None else annotate
        if show:
            for y in range(len(ib)):
                for x in range(len(ia)):
                    v = block[y, x]
                    if np.isfinite(v):
                        ax.text(x, y, f"{v:.2g}", ha="center", va="center", fontsize=6,
                                color="white" if abs(v) > 0.6 * vmax else "#222")
        ax.set_xlabel(f"source: {kind_noun(a)}", fontsize=8, color=KIND_COLORS.get(a, "#333"))
        ax.set_ylabel(f"target: {kind_noun(b)}", fontsize=8, color=KIND_COLORS.get(b, "#333"))
        ax.set_title(f"{a} → {b}: how each {a} moves a {b}'s attribution", fontsize=8.5)
        cb = fig.colorbar(im, cax=fig.add_subplot(gs[r, 2 * c + 1]))
        cb.ax.tick_params(labelsize=6.5)
        axes.append(ax)
    fig.suptitle(title or f"cross blocks by player kind · {result.method} · cell = " + r"$\phi_{j\to i}$" + " (own scale per panel)",
                 fontsize=10)
    fit_tick_labels(fig, axes)
    return finish(fig, save)


# ---------------------------------------------------------------------------------------------- comparison
def comparison(
    result: MetaAttribution,
    stii: np.ndarray | None = None,
    *,
    save: str | Path | None = None,
) -> "Figure":
    """First-order φ (bars, with row sums Σ_j M[i, j] marked), the meta matrix M, and STII (``stii``, else the
    result's :attr:`~metagame.results.result.MetaAttribution.stii`, else M + Mᵀ) side by side, each matrix on its own
    colour scale (pairs only; diagonals are grey)."""
    d = result.n_players
    if stii is None:
        stii = result.stii
    if stii is not None:
        stii = np.asarray(stii, dtype=np.float64)
        if stii.shape != (d, d):
            raise MetagameError(f"stii has shape {stii.shape}; expected ({d}, {d})")
        third, third_title = stii, "STII (order-2 Shapley-Taylor)"
    else:
        third = result.matrix + result.matrix.T
        third_title = "M + Mᵀ (symmetric part ×2)"
    size = float(min(6.5, max(3.2, 0.1 * d + 2.6)))
    fig = new_figure(3.4 + 2 * size + 1.6, size + 0.8)
    gs = fig.add_gridspec(1, 5, width_ratios=[0.8 * size, size, 0.06 * size, size, 0.06 * size])
    ax0 = fig.add_subplot(gs[0])
    y = np.arange(d)
    fo = np.nan_to_num(result.first_order)
    ax0.barh(y, fo, color=[POS_COLOR if v > 0 else NEG_COLOR for v in fo], height=0.7, alpha=0.85)
    ax0.scatter(np.nan_to_num(result.row_sums()), y, marker="|", s=90, color="#222", label=r"$\sum_j M[i, j]$", zorder=3)
    ax0.axvline(0, color="#444", lw=0.6)
    ax0.set_ylim(d - 0.5, -0.5)
    kinds = kinds_of(result)
    _label_axes(ax0, result.players, kinds if len(set(kinds)) > 1 else None, inches=0.8 * size, x=False)
    ax0.tick_params(axis="x", labelsize=7)
    ax0.set_title("first-order φ_i", fontsize=10)
    ax0.legend(fontsize=7, frameon=False, loc="lower right")
    for side in ("top", "right"):
        ax0.spines[side].set_visible(False)
    for k, (m, name) in enumerate(((result.matrix, r"M: $\phi_{j\to i}$ (row = target)"), (third, third_title))):
        ax = fig.add_subplot(gs[1 + 2 * k])
        im = _draw_offdiag(ax, m, None, absmax(_off_diagonal(m)), annotate=False)
        _label_axes(ax, result.players, None, inches=0.8 * size, y=False)
        ax.set_yticks([])
        ax.set_title(name, fontsize=10)
        fig.colorbar(im, cax=fig.add_subplot(gs[2 + 2 * k]))
    fig.suptitle(_title(result), fontsize=10)
    fit_tick_labels(fig, [a for a in fig.axes if a.images or a is ax0])
    return finish(fig, save)


# ---------------------------------------------------------------------------------------------- all
def default_figures(result: MetaAttribution) -> dict[FigureName, "Figure"]:
    """The pictures that suit this result, by name: heatmap, cross_blocks (players of several aspects), arcs,
    waterfall, image, comparison, tensor."""
    require_mpl()
    kinds = kinds_of(result)
    figs: dict[Any, Any] = {"heatmap": heatmap(result)}
    if has_cross_kinds(kinds):  # players of several aspects (words and heads, features and training points)
        figs["cross_blocks"] = cross_blocks_figure(result)
    if result.n_players >= 2 and "patch" not in kinds and (any(k in TEXT_KINDS for k in kinds) or result.n_players <= 24):
        figs["arcs"] = arc_diagram(result)
    if result.n_players:
        figs["waterfall"] = waterfall(result)
    if "patch" in kinds or result.patch_maps is not None:
        figs["image"] = image_overlay(result)
    if result.n_players <= 80:
        figs["comparison"] = comparison(result)
    if result.tensor is not None and result.n_players >= 3:
        figs["tensor"] = tensor_heatmap(result)
    from ..domains import picture_hooks

    for domain_figures in picture_hooks():  # e.g. diffusion: concept maps and meta-maps over the generated image
        figs.update(domain_figures(result))
    return figs


__all__ = [
    "TEXT_KINDS", "arc_diagram", "comparison", "cross_blocks_figure", "default_figures", "heatmap", "image_overlay", "input_image",
    "matrix_figure", "patch_layout", "save_figure", "tensor_heatmap", "waterfall",
]
