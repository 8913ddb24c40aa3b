"""Pictures along the players: arcs of the strongest directed pairs over the sequence, and the waterfall of one
player's attribution split into its own effect and the pushes of the others."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..results.result import MetaAttribution
from .style import CMAP, NEG_COLOR, POS_COLOR, absmax, default_target, finish, kinds_of, new_figure, player_index, short

try:  # matplotlib is the optional ``viz`` extra
    import matplotlib as _mpl
    from matplotlib.colors import TwoSlopeNorm
    from matplotlib.figure import Figure
    from matplotlib.patches import FancyArrowPatch
    from matplotlib.path import Path as MplPath
except ImportError:  # pragma: no cover - exercised only without matplotlib
    pass


# ---------------------------------------------------------------------------------------------- arcs
#: how far an arc's control point lies from the line, per unit of its chord (its peak is half of it)
ARC_RISE = 0.6


def arc_diagram(
    result: MetaAttribution,
    n: int = 12,
    *,
    title: str | None = None,
    save: str | Path | None = None,
) -> "Figure":
    """Arcs over the player sequence for the ``n`` strongest pairs: arrow j → i, width ∝ |φ_{j→i}|, colour = sign.

    Arcs that point right are drawn above the line, arcs that point left below it; players are coloured by φ_i.
    """
    d = result.n_players
    kinds = kinds_of(result)
    # two texts: leave a gap between text A and text B
    xs, x = [], 0.0
    for k in range(d):
        if k > 0 and kinds[k] != kinds[k - 1] and {kinds[k], kinds[k - 1]} & {"word_a", "word_b"}:
            x += 1.0
        xs.append(x)
        x += 1.0
    xs = np.asarray(xs)
    pairs = result.top_pairs(n)
    width = min(16.0, max(5.0, 0.75 * (xs[-1] + 1) + 1.5)) if d else 5.0
    fig = new_figure(width, 4.6)
    ax = fig.add_subplot()
    ax.set_title(title or f"strongest directed pairs (top {len(pairs)}) · arrow = source → target", fontsize=10)
    fvmax = absmax(result.first_order)
    norm = TwoSlopeNorm(0.0, -fvmax, fvmax)
    cmap = _mpl.colormaps[CMAP]
    for k in range(d):
        v = result.first_order[k]
        face = cmap(norm(v)) if np.isfinite(v) else (0.85, 0.85, 0.85, 1.0)
        ink = "white" if 0.299 * face[0] + 0.587 * face[1] + 0.114 * face[2] < 0.5 else "#111"
        ax.text(xs[k], 0, short(result.players[k], 12), ha="center", va="center", fontsize=8.5 if d <= 25 else 6.5,
                color=ink,
                rotation=0 if d <= 16 else 90, bbox=dict(boxstyle="round,pad=0.25", fc=face, ec="#555", lw=0.6), zorder=3)
    vmax = absmax(np.array([abs(v) for _, _, v in pairs])) if pairs else 1.0
    # each arc is a quadratic Bézier in data coordinates (control point ARC_RISE·chord above or below the line), so
    # its peak, y0 + ARC_RISE·chord / 2, is known and the axes are sized to hold every arc with a margin
    peak = 0.5
    for i, j, v in pairs:
        if not np.isfinite(v):
            continue
        sign = 1.0 if xs[i] > xs[j] else -1.0  # rightward arrows above the line, leftward ones below
        chord = abs(xs[i] - xs[j])
        y0 = sign * 0.28
        ctrl = ((xs[i] + xs[j]) / 2, y0 + sign * ARC_RISE * chord)
        path = MplPath([(xs[j], y0), ctrl, (xs[i], y0)], [MplPath.MOVETO, MplPath.CURVE3, MplPath.CURVE3])
        arrow = FancyArrowPatch(
            path=path, arrowstyle="-|>", mutation_scale=8 + 6 * abs(v) / vmax,
            lw=0.6 + 4.4 * abs(v) / vmax, color=POS_COLOR if v > 0 else NEG_COLOR, alpha=0.75, zorder=2,
        )
        ax.add_patch(arrow)
        peak = max(peak, 0.28 + ARC_RISE * chord / 2)
    h = peak * 1.12 + 0.25  # room for the arrow's width and heads
    ax.set_xlim(xs[0] - 1 if d else -1, xs[-1] + 1 if d else 1)
    ax.set_ylim(-h, h)
    ax.axis("off")
    ax.text(0.0, -0.04, "above: arrows to the right · below: arrows to the left · red = pushes up, blue = pushes down",
            transform=ax.transAxes, fontsize=7, color="#555")
    return finish(fig, save)


# ---------------------------------------------------------------------------------------------- waterfall
def waterfall(
    result: MetaAttribution,
    target: int | str | None = None,
    n: int = 12,
    *,
    title: str | None = None,
    save: str | Path | None = None,
) -> "Figure":
    """How φ_i splits into its own effect M[i, i] and the pushes φ_{j→i} of the others (sorted by size).

    ``target`` defaults to the player with the largest |φ_i|; pushes beyond the ``n`` largest are pooled. The values
    are printed in a column of their own right of the bars, so they never cover a bar or a label.
    """
    i = default_target(result) if target is None else player_index(result, target)
    row = result.matrix[i]
    others = [j for j in range(result.n_players) if j != i]
    others.sort(key=lambda j: -abs(row[j]) if np.isfinite(row[j]) else 0.0)
    shown, rest = others[:n], others[n:]
    labels = [f"own: {short(result.players[i], 18)}"] + [f"{short(result.players[j], 18)} →" for j in shown]
    values = [row[i]] + [row[j] for j in shown]
    if rest:
        labels.append(f"{len(rest)} others →")
        values.append(float(np.nansum(row[rest])))
    fig = new_figure(7.6, 1.4 + 0.36 * (len(values) + 1))
    gs = fig.add_gridspec(1, 2, width_ratios=[6.4, 1.0])
    ax = fig.add_subplot(gs[0])
    col = fig.add_subplot(gs[1], sharey=ax)
    cum = 0.0
    for k, v in enumerate(values):
        v = float(v) if np.isfinite(v) else 0.0
        color = "#777" if k == 0 else (POS_COLOR if v > 0 else NEG_COLOR)
        ax.barh(k, v, left=cum, color=color, height=0.62, alpha=0.9)
        ax.plot([cum + v, cum + v], [k + 0.31, k + 0.69], color="#999", lw=0.6)
        col.text(0.05, k, f"{v:+.3g}", va="center", ha="left", fontsize=7.5)
        cum += v
    total = float(np.nansum(row))
    ax.barh(len(values), total, color="#333", height=0.62)
    labels.append("Σ row")
    col.text(0.05, len(values), f"{total:+.3g}", va="center", ha="left", fontsize=7.5, fontweight="bold")
    col.set_xlim(0, 1)
    col.axis("off")
    phi = result.first_order[i]
    if np.isfinite(phi):
        ax.axvline(phi, color="#e67e22", ls="--", lw=1.0)
    ax.axvline(0, color="#444", lw=0.6)
    ax.margins(x=0.06)
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    ax.set_ylim(len(labels) - 0.5, -0.5)
    ax.set_xlabel("contribution to φ_i" + (f"   (dashed: first-order φ_i = {phi:.3g})" if np.isfinite(phi) else ""),
                  fontsize=8.5)
    ax.set_title(title or f"how φ of '{short(result.players[i], 30)}' splits (row {i})", fontsize=10)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    return finish(fig, save)


__all__ = ["arc_diagram", "waterfall"]
