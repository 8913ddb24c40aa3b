"""Pictures of meta-attributions (matplotlib, headless: figures are built without pyplot).

Every function takes a :class:`~metagame.results.result.MetaAttribution`, returns a
:class:`matplotlib.figure.Figure` and, with ``save=path``, also writes it (PNG, SVG or PDF by suffix).
Convention throughout: ``matrix[i, j]`` = φ_{j→i}, row = target i, column = source j.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal, Sequence

import numpy as np

from ..errors import MetagameError
from ..results.result import MetaAttribution

try:  # matplotlib is the optional ``viz`` extra
    from matplotlib.colors import TwoSlopeNorm
    from matplotlib.figure import Figure
    from matplotlib.patches import FancyArrowPatch, Rectangle
    import matplotlib as _mpl

    _HAVE_MPL = True
except ImportError:  # pragma: no cover - exercised only without matplotlib
    _HAVE_MPL = False

#: player kinds shown as a sequence of text (arc diagrams, inline text in the report)
TEXT_KINDS = ("token", "word", "word_a", "word_b")
CMAP = "RdBu_r"
POS_COLOR = "#c0392b"
NEG_COLOR = "#2866b0"
FigureName = Literal["heatmap", "arcs", "waterfall", "image", "comparison"]

_PATCH_RE = re.compile(r"\(\s*(\d+)\s*,\s*(\d+)\s*\)")


def _require_mpl() -> None:
    if not _HAVE_MPL:
        raise MetagameError("plots need matplotlib; install it with `pip install metagame[viz]`")


def _kinds(result: MetaAttribution) -> list[str]:
    return list(result.player_kinds) if result.player_kinds is not None else ["feature"] * result.n_players


def _absmax(*arrays: np.ndarray) -> float:
    vals = [np.nanmax(np.abs(a)) for a in arrays if a is not None and a.size and np.isfinite(a).any()]
    m = float(max(vals)) if vals else 0.0
    return m if m > 0 else 1.0


def _short(label: str, width: int = 14) -> str:
    label = label.replace("\n", " ")
    return label if len(label) <= width else label[: width - 1] + "…"


def _finish(fig: "Figure", save: str | Path | None) -> "Figure":
    if save is not None:
        save_figure(fig, save)
    return fig


def save_figure(fig: "Figure", path: str | Path, dpi: int = 110) -> Path:
    """Write ``fig`` to ``path``; the format follows the suffix (``.png``, ``.svg``, ``.pdf``)."""
    path = Path(path)
    if path.suffix.lower() not in (".png", ".svg", ".pdf"):
        raise MetagameError(f"cannot save a figure as '{path.suffix}'; use a .png, .svg or .pdf path")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, bbox_inches="tight", facecolor="white")
    return path


def _player_index(result: MetaAttribution, player: int | str) -> int:
    if isinstance(player, (int, np.integer)):
        if not -result.n_players <= int(player) < result.n_players:
            raise MetagameError(f"player index {player} out of range for {result.n_players} players")
        return int(player) % result.n_players
    if player in result.players:
        return result.players.index(player)
    raise MetagameError(f"no player labelled {player!r}; pass an index 0..{result.n_players - 1} or one of the labels")


def _new_fig(w: float, h: float) -> "Figure":
    _require_mpl()
    return Figure(figsize=(w, h), layout="constrained")


# ---------------------------------------------------------------------------------------------- heatmap
def _draw_matrix(ax, m: np.ndarray, players: Sequence[str], title: str, vmax: float | None = None,
                 mark_diagonal: bool = True, annotate: bool | None = None, stderr: np.ndarray | None = None):
    d = m.shape[0]
    vmax = _absmax(m) if vmax is None else vmax
    im = ax.imshow(np.ma.masked_invalid(m), cmap=CMAP, norm=TwoSlopeNorm(0.0, -vmax, vmax), interpolation="nearest")
    ax.set_title(title, fontsize=10)
    if d <= 40:
        labels = [_short(p) for p in players]
        ax.set_xticks(range(d), labels, rotation=60, ha="right", fontsize=8 if d <= 20 else 6)
        ax.set_yticks(range(d), labels, fontsize=8 if d <= 20 else 6)
    else:
        step = int(np.ceil(d / 20))
        ax.set_xticks(range(0, d, step), [_short(players[k], 8) for k in range(0, d, step)], rotation=60, ha="right", fontsize=6)
        ax.set_yticks(range(0, d, step), [_short(players[k], 8) for k in range(0, d, step)], fontsize=6)
    ax.set_xlabel("source j", fontsize=9)
    ax.set_ylabel("target i", fontsize=9)
    if mark_diagonal:
        if d <= 60:
            for k in range(d):
                ax.add_patch(Rectangle((k - 0.5, k - 0.5), 1, 1, fill=False, lw=0.9, ec="#222", ls="-"))
        else:
            ax.plot([-0.5, d - 0.5], [-0.5, d - 0.5], color="#222", lw=0.6, ls="--")
    if annotate is None:
        annotate = d <= 10
    if annotate:
        for i in range(d):
            for j in range(d):
                v = m[i, j]
                if not np.isfinite(v):
                    txt = "nan"
                else:
                    txt = f"{v:.2g}"
                    if stderr is not None and np.isfinite(stderr[i, j]):
                        txt += f"\n±{stderr[i, j]:.1g}"
                dark = np.isfinite(v) and abs(v) > 0.6 * vmax
                ax.text(j, i, txt, ha="center", va="center", fontsize=6.5, color="white" if dark else "#222")
    return im


def heatmap(
    result: MetaAttribution,
    *,
    annotate: bool | None = None,
    title: str | None = None,
    save: str | Path | None = None,
) -> "Figure":
    """Directed heatmap of M: cell (i, j) = φ_{j→i}; rows = targets, columns = sources, zero = white."""
    d = result.n_players
    size = min(11.0, max(4.2, 0.42 * d + 2.2))
    fig = _new_fig(size + 0.9, size)
    ax = fig.add_subplot()
    im = _draw_matrix(ax, result.matrix, result.players, title or _title(result), annotate=annotate,
                      stderr=result.stderr)
    cb = fig.colorbar(im, ax=ax, shrink=0.8)
    cb.set_label(r"$\phi_{j\to i}$ (source j moves target i)", fontsize=8)
    return _finish(fig, save)


def _title(result: MetaAttribution) -> str:
    kind = "exact" if result.exact else "estimated"
    return f"meta-attributions · {result.method} · {result.variant}/{result.value} · {kind}"


# ---------------------------------------------------------------------------------------------- arcs
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
    kinds = _kinds(result)
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
    fig = _new_fig(width, 4.6)
    ax = fig.add_subplot()
    ax.set_title(title or f"strongest directed pairs (top {len(pairs)}) · arrow = source → target", fontsize=10)
    fvmax = _absmax(result.first_order)
    norm = TwoSlopeNorm(0.0, -fvmax, fvmax)
    cmap = _mpl.colormaps[CMAP]
    for k in range(d):
        v = result.first_order[k]
        face = cmap(norm(v)) if np.isfinite(v) else (0.85, 0.85, 0.85, 1.0)
        ink = "white" if 0.299 * face[0] + 0.587 * face[1] + 0.114 * face[2] < 0.5 else "#111"
        ax.text(xs[k], 0, _short(result.players[k], 12), ha="center", va="center", fontsize=8.5 if d <= 25 else 6.5,
                color=ink,
                rotation=0 if d <= 16 else 90, bbox=dict(boxstyle="round,pad=0.25", fc=face, ec="#555", lw=0.6), zorder=3)
    vmax = _absmax(np.array([abs(v) for _, _, v in pairs])) if pairs else 1.0
    span = max(1.0, xs[-1] - xs[0]) if d else 1.0
    for j, i, v in pairs:
        if not np.isfinite(v):
            continue
        rightward = xs[i] > xs[j]
        # arc3 with a negative rad bends a rightward arrow upwards and a leftward one downwards
        arrow = FancyArrowPatch(
            (xs[j], 0.28 if rightward else -0.28), (xs[i], 0.28 if rightward else -0.28),
            connectionstyle="arc3,rad=-0.55", arrowstyle="-|>", mutation_scale=8 + 6 * abs(v) / vmax,
            lw=0.6 + 4.4 * abs(v) / vmax, color=POS_COLOR if v > 0 else NEG_COLOR, alpha=0.75, zorder=2,
        )
        ax.add_patch(arrow)
    h = 0.6 * span / 2 + 0.8
    ax.set_xlim(xs[0] - 1 if d else -1, xs[-1] + 1 if d else 1)
    ax.set_ylim(-h, h)
    ax.axis("off")
    ax.text(0.0, -0.02, "above: arrows to the right · below: arrows to the left · red = pushes up, blue = pushes down",
            transform=ax.transAxes, fontsize=7, color="#555")
    return _finish(fig, save)


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

    ``target`` defaults to the player with the largest |φ_i|; pushes beyond the ``n`` largest are pooled.
    """
    if target is None:
        fo = np.where(np.isfinite(result.first_order), np.abs(result.first_order), -1.0)
        i = int(np.argmax(fo)) if result.n_players else 0
    else:
        i = _player_index(result, target)
    row = result.matrix[i]
    others = [j for j in range(result.n_players) if j != i]
    others.sort(key=lambda j: -abs(row[j]) if np.isfinite(row[j]) else 0.0)
    shown, rest = others[:n], others[n:]
    labels = [f"own: {_short(result.players[i], 18)}"] + [f"{_short(result.players[j], 18)} →" for j in shown]
    values = [row[i]] + [row[j] for j in shown]
    if rest:
        labels.append(f"{len(rest)} others →")
        values.append(float(np.nansum(row[rest])))
    fig = _new_fig(7.0, 1.2 + 0.36 * (len(values) + 1))
    ax = fig.add_subplot()
    cum = 0.0
    for k, v in enumerate(values):
        v = float(v) if np.isfinite(v) else 0.0
        color = "#777" if k == 0 else (POS_COLOR if v > 0 else NEG_COLOR)
        ax.barh(k, v, left=cum, color=color, height=0.62, alpha=0.9)
        ax.text(cum + v, k, f" {v:+.3g} ", va="center", ha="left" if v >= 0 else "right", fontsize=7.5)
        if k + 1 < len(values) + 1:
            ax.plot([cum + v, cum + v], [k + 0.31, k + 0.69], color="#999", lw=0.6)
        cum += v
    total = float(np.nansum(row))
    ax.barh(len(values), total, color="#333", height=0.62)
    labels.append("Σ row")
    ax.text(total, len(values), f" {total:+.3g} ", va="center", ha="left" if total >= 0 else "right", fontsize=7.5,
            fontweight="bold")
    phi = result.first_order[i]
    if np.isfinite(phi):
        ax.axvline(phi, color="#e67e22", ls="--", lw=1.0, label=f"first-order φ_i = {phi:.3g}")
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=7.5, frameon=False)
    ax.axvline(0, color="#444", lw=0.6)
    ax.margins(x=0.12)
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("contribution to φ_i", fontsize=9)
    ax.set_title(title or f"how φ of '{_short(result.players[i], 30)}' splits (row {i})", fontsize=10)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    return _finish(fig, save)


# ---------------------------------------------------------------------------------------------- image overlay
def patch_layout(result: MetaAttribution) -> tuple[list[int], int, int, list[tuple[int, int]]]:
    """Patch players and their grid cells: ``(indices, rows, cols, [(r, c), ...])``.

    The grid comes from ``context["grid"]``, else from ``"(r, c)"`` in the labels, else the nearest square.
    """
    kinds = _kinds(result)
    idx = [k for k, kd in enumerate(kinds) if kd == "patch"]
    if not idx:
        return [], 0, 0, []
    parsed = [_PATCH_RE.search(result.players[k]) for k in idx]
    grid = result.context.get("grid")
    if grid is not None:
        rows, cols = int(grid[0]), int(grid[1])
    elif all(parsed):
        rows = max(int(m.group(1)) for m in parsed) + 1
        cols = max(int(m.group(2)) for m in parsed) + 1
    else:
        cols = int(np.ceil(np.sqrt(len(idx))))
        rows = int(np.ceil(len(idx) / cols))
    if all(parsed) and all(int(m.group(1)) < rows and int(m.group(2)) < cols for m in parsed):
        cells = [(int(m.group(1)), int(m.group(2))) for m in parsed]
    else:
        cells = [divmod(n, cols) for n in range(len(idx))]
    if rows * cols < len(idx):
        raise MetagameError(f"context['grid'] = {grid} has fewer cells than the {len(idx)} patch players; fix the grid")
    return idx, rows, cols, cells


def input_image(result: MetaAttribution) -> np.ndarray | None:
    """The input image as float ``[H, W, 3]`` in [0, 1]: ``extras["image"]``, else ``context["image_path"]``."""
    img = result.extras.get("image")
    if img is not None:
        img = np.asarray(img, dtype=np.float64)
        if img.ndim == 2:
            img = np.repeat(img[..., None], 3, axis=2)
        if img.ndim == 3 and img.shape[0] in (1, 3) and img.shape[2] not in (1, 3):
            img = np.moveaxis(img, 0, 2)
        if img.ndim == 3 and img.shape[2] == 1:
            img = np.repeat(img, 3, axis=2)
        if img.max(initial=0.0) > 1.0:
            img = img / 255.0
        return np.clip(img, 0.0, 1.0)
    path = result.context.get("image_path")
    if isinstance(path, str) and Path(path).is_file():
        try:
            from PIL import Image

            with Image.open(path) as im:
                return np.asarray(im.convert("RGB"), dtype=np.float64) / 255.0
        except Exception:  # unreadable image: show the maps without it
            return None
    return None


def _grid_map(values: np.ndarray, rows: int, cols: int, cells: list[tuple[int, int]]) -> np.ndarray:
    g = np.full((rows, cols), np.nan)
    for v, (r, c) in zip(values, cells):
        g[r, c] = v
    return g


def image_overlay(
    result: MetaAttribution,
    words: Sequence[int | str] | None = None,
    *,
    max_panels: int = 8,
    alpha: float = 0.6,
    save: str | Path | None = None,
) -> "Figure":
    """Patch attributions over the image, one panel per map.

    With ``extras["patch_maps"]`` ([n_words, rows, cols]) one panel per word (how the word moves every patch's
    attribution). Otherwise: the first-order patch map, then for each non-patch player j the column
    M[patches, j] (how j moves each patch), or, without such players, the rows M[i, patches] of the top patches.
    """
    idx, rows, cols, cells = patch_layout(result)
    maps = result.extras.get("patch_maps")
    if not idx and maps is None:
        raise MetagameError("image_overlay needs patch players (player_kinds 'patch') or extras['patch_maps']")
    img = input_image(result)
    panels: list[tuple[str, np.ndarray]] = []
    kinds = _kinds(result)
    non_patch = [k for k, kd in enumerate(kinds) if kd != "patch"]
    if maps is not None:
        maps = np.asarray(maps, dtype=np.float64)
        if maps.ndim != 3:
            raise MetagameError(f"extras['patch_maps'] must be [n_words, rows, cols]; got shape {maps.shape}")
        names = result.context.get("patch_map_labels") or [result.players[k] for k in non_patch]
        if len(names) != maps.shape[0]:
            names = [f"map {k}" for k in range(maps.shape[0])]
        sel = range(maps.shape[0])
        if words is not None:
            sel = [names.index(w) if isinstance(w, str) and w in names else int(w) for w in words]
        for k in list(sel)[:max_panels]:
            panels.append((f"'{_short(str(names[k]), 16)}' → patches", maps[k]))
    else:
        fo = _grid_map(result.first_order[idx], rows, cols, cells)
        panels.append(("first-order φ (patches)", fo))
        if non_patch:
            src = non_patch
            if words is not None:
                src = [_player_index(result, w) for w in words]
            else:
                strength = [np.nansum(np.abs(result.matrix[idx, j])) for j in non_patch]
                src = [non_patch[k] for k in np.argsort(strength)[::-1]]
            for j in src[: max_panels - 1]:
                panels.append((f"'{_short(result.players[j], 16)}' → patches", _grid_map(result.matrix[idx, j], rows, cols, cells)))
        else:
            order = sorted(idx, key=lambda i: -abs(result.first_order[i]) if np.isfinite(result.first_order[i]) else 0)
            for i in order[: max_panels - 1]:
                panels.append((f"patches → {_short(result.players[i], 16)}", _grid_map(result.matrix[i, idx], rows, cols, cells)))
    if img is not None:
        panels.insert(0, ("input image", None))
    n = len(panels)
    ncol = min(4, n)
    nrow = int(np.ceil(n / ncol))
    fig = _new_fig(3.0 * ncol + 0.8, 3.0 * nrow + 0.4)
    axes = fig.subplots(nrow, ncol, squeeze=False)
    maps_only = [p[1] for p in panels if p[1] is not None]
    vmax_first = _absmax(maps_only[0])
    vmax_rest = _absmax(*maps_only[1:]) if len(maps_only) > 1 else vmax_first
    gray = None if img is None else 0.25 + 0.6 * img.mean(axis=2)  # muted grey image under the colour map
    im = None
    for k, ax in enumerate(axes.flat):
        ax.set_xticks([])
        ax.set_yticks([])
        if k >= n:
            ax.axis("off")
            continue
        name, grid = panels[k]
        ax.set_title(name, fontsize=9)
        if grid is None:
            ax.imshow(img, interpolation="bilinear")
            continue
        vmax = vmax_first if (grid is maps_only[0] and maps is None) else vmax_rest
        gh, gw = grid.shape
        if gray is not None:
            ax.imshow(gray, cmap="gray", vmin=0, vmax=1, extent=(0, gw, gh, 0), interpolation="bilinear")
            im = ax.imshow(np.ma.masked_invalid(grid), cmap=CMAP, norm=TwoSlopeNorm(0.0, -vmax, vmax), alpha=alpha,
                           extent=(0, gw, gh, 0), interpolation="nearest")
        else:
            im = ax.imshow(np.ma.masked_invalid(grid), cmap=CMAP, norm=TwoSlopeNorm(0.0, -vmax, vmax),
                           extent=(0, gw, gh, 0), interpolation="nearest")
    if im is not None:
        fig.colorbar(im, ax=axes, shrink=0.7, label="attribution (red + / blue −)")
    return _finish(fig, save)


# ---------------------------------------------------------------------------------------------- comparison
def comparison(
    result: MetaAttribution,
    stii: np.ndarray | None = None,
    *,
    save: str | Path | None = None,
) -> "Figure":
    """First-order φ (bars, with row sums Σ_j M[i, j] marked), the meta matrix M, and STII (or M + Mᵀ) side by side."""
    d = result.n_players
    if stii is None and "stii" in result.extras:
        stii = result.extras["stii"]
    if stii is not None:
        stii = np.asarray(stii, dtype=np.float64)
        if stii.shape != (d, d):
            raise MetagameError(f"stii has shape {stii.shape}; expected ({d}, {d})")
        third, third_title = stii, "STII (order-2 Shapley-Taylor)"
    else:
        third = result.matrix + result.matrix.T
        third_title = "M + Mᵀ (symmetric part ×2)"
    size = min(6.5, max(3.2, 0.3 * d + 1.8))
    fig = _new_fig(3.6 + 2 * size + 1.2, size + 0.6)
    gs = fig.add_gridspec(1, 3, width_ratios=[0.8, 1, 1])
    ax0 = fig.add_subplot(gs[0])
    y = np.arange(d)
    fo = np.nan_to_num(result.first_order)
    ax0.barh(y, fo, color=[POS_COLOR if v > 0 else NEG_COLOR for v in fo], height=0.7, alpha=0.85)
    ax0.scatter(np.nan_to_num(result.row_sums()), y, marker="|", s=90, color="#222", label=r"$\sum_j M[i, j]$", zorder=3)
    ax0.axvline(0, color="#444", lw=0.6)
    ax0.set_ylim(d - 0.5, -0.5)
    if d <= 40:
        ax0.set_yticks(y, [_short(p) for p in result.players], fontsize=8 if d <= 20 else 6)
    ax0.set_title("first-order φ_i", fontsize=10)
    ax0.legend(fontsize=7, frameon=False, loc="best")
    for side in ("top", "right"):
        ax0.spines[side].set_visible(False)
    vmax = _absmax(result.matrix, third)
    ax1 = fig.add_subplot(gs[1])
    im = _draw_matrix(ax1, result.matrix, result.players, r"M: $\phi_{j\to i}$ (row = target)", vmax=vmax, annotate=False)
    ax2 = fig.add_subplot(gs[2])
    _draw_matrix(ax2, third, result.players, third_title, vmax=vmax, annotate=False)
    ax2.set_ylabel("")
    fig.colorbar(im, ax=[ax1, ax2], shrink=0.75)
    fig.suptitle(_title(result), fontsize=10)
    return _finish(fig, save)


# ---------------------------------------------------------------------------------------------- all
def default_figures(result: MetaAttribution) -> dict[FigureName, "Figure"]:
    """The pictures that suit this result, by name: heatmap, arcs, waterfall, image, comparison."""
    _require_mpl()
    kinds = _kinds(result)
    figs: dict[Any, Any] = {"heatmap": heatmap(result)}
    if result.n_players >= 2 and "patch" not in kinds and (any(k in TEXT_KINDS for k in kinds) or result.n_players <= 24):
        figs["arcs"] = arc_diagram(result)
    if result.n_players:
        figs["waterfall"] = waterfall(result)
    if "patch" in kinds or "patch_maps" in result.extras:
        figs["image"] = image_overlay(result)
    if result.n_players <= 80:
        figs["comparison"] = comparison(result)
    return figs


__all__ = [
    "heatmap", "arc_diagram", "waterfall", "image_overlay", "comparison", "default_figures", "save_figure",
    "patch_layout", "input_image", "TEXT_KINDS",
]
