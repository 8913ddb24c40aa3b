"""Pictures of Meta-ConceptAttention results: concept maps and meta-maps over the generated image.

``concept_maps_figure``: the generated image, then each full concept map φ_i(x_N) over it.
``meta_maps_figure``: one row per target concept i: its full map, then M[i, j, :] for every source j (how concept
j moves concept i's map, patch by patch; red = raises it, blue = lowers it). The diagonal M[i, i] is concept i
alone (its own scale; with softmax maps it is 1 everywhere, shown as text).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from ...errors import MetagameError
from ...results.result import MetaAttribution
from ...viz.images import input_image, overlay_map
from ...viz.style import CMAP, player_index
from ...viz.style import absmax as _absmax
from ...viz.style import finish as _finish
from ...viz.style import new_figure as _new_fig
from ...viz.style import short as _short

MAP_CMAP = "inferno"


def _maps(result: MetaAttribution) -> tuple[np.ndarray, np.ndarray]:
    maps, meta = result.concept_maps, result.meta_maps
    if maps is None or meta is None:
        raise MetagameError("diffusion pictures need extras['concept_maps'] and extras['meta_maps'] "
                            "(a result of metagame.explain_diffusion)")
    return np.asarray(maps, dtype=np.float64), np.asarray(meta, dtype=np.float64)


def _overlay(ax, grid: np.ndarray, img: np.ndarray | None, *, cmap: str, vmin: float, vmax: float, alpha: float):
    from matplotlib.colors import Normalize, TwoSlopeNorm

    norm = TwoSlopeNorm(0.0, vmin, vmax) if vmin < 0 < vmax else Normalize(vmin, vmax)
    return overlay_map(ax, grid, img, cmap=cmap, norm=norm, alpha=alpha)


def _map_range(maps: np.ndarray) -> tuple[float, float]:
    lo, hi = float(np.nanmin(maps)), float(np.nanmax(maps))
    if lo < 0:
        m = max(abs(lo), abs(hi)) or 1.0
        return -m, m
    return 0.0, hi if hi > 0 else 1.0


def _select(result: MetaAttribution, players: Sequence[int | str] | None, limit: int) -> list[int]:
    if players is None:
        return list(range(min(limit, result.n_players)))
    return [player_index(result, p) for p in players]


def concept_maps_figure(
    result: MetaAttribution,
    players: Sequence[int | str] | None = None,
    *,
    max_panels: int = 12,
    alpha: float = 0.65,
    save: str | Path | None = None,
):
    """The generated image and each concept's full map φ_i(x_N) over it (one shared colour scale)."""
    maps, _ = _maps(result)
    sel = _select(result, players, max_panels)
    img = input_image(result)
    n = len(sel) + (img is not None)
    ncol = min(5, n)
    nrow = int(np.ceil(n / ncol))
    fig = _new_fig(2.6 * ncol + 0.8, 2.6 * nrow + 0.5)
    axes = fig.subplots(nrow, ncol, squeeze=False).flat
    k = 0
    if img is not None:
        ax = axes[0]
        ax.imshow(img, interpolation="bilinear")
        ax.set_title("generated image", fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
        k = 1
    lo, hi = _map_range(maps[sel])
    im = None
    for i in sel:
        ax = axes[k]
        im = _overlay(ax, maps[i], img, cmap=MAP_CMAP if lo >= 0 else CMAP, vmin=lo, vmax=hi, alpha=alpha)
        ax.set_title(f"'{_short(result.players[i], 18)}'  (mean {result.first_order[i]:.2f})", fontsize=9)
        k += 1
    for ax in list(axes)[k:]:
        ax.axis("off")
    if im is not None:
        fig.colorbar(im, ax=fig.axes, shrink=0.7, label="concept map φ_i (full coalition)")
    prompt = result.context.get("prompt")
    fig.suptitle(f"ConceptAttention maps · {prompt!r}" if prompt else "ConceptAttention maps", fontsize=10)
    return _finish(fig, save)


def meta_maps_figure(
    result: MetaAttribution,
    targets: Sequence[int | str] | None = None,
    *,
    max_players: int = 6,
    alpha: float = 0.7,
    show_image: bool = True,
    save: str | Path | None = None,
):
    """Rows = target i: its full map, then M[i, j, :] for each source j (diagonal: i alone, own scale); with
    ``show_image`` the generated image heads an extra first column."""
    maps, meta = _maps(result)
    rows = _select(result, targets, max_players)
    cols = list(range(min(max_players, result.n_players)))
    img = input_image(result)
    off = np.array([meta[i, j] for i in rows for j in cols if i != j])
    vmax = _absmax(off) if off.size else 1.0
    map_lo, map_hi = _map_range(np.array([maps[i] for i in rows]))
    diag = np.array([meta[i, i] for i in rows])
    diag_lo, diag_hi = _map_range(diag)
    diag_constant = float(np.nanmax(diag) - np.nanmin(diag)) < 1e-9
    lead = int(show_image and img is not None)
    nr, nc = len(rows), len(cols) + 1 + lead
    fig = _new_fig(2.1 * nc + 1.6, 2.1 * nr + 0.6)
    grid_axes = fig.subplots(nr, nc, squeeze=False)
    if lead:
        for r in range(nr):
            ax = grid_axes[r, 0]
            if r == 0:
                ax.imshow(img, interpolation="bilinear")
                ax.set_title("generated image", fontsize=9)
                ax.set_xticks([])
                ax.set_yticks([])
            else:
                ax.axis("off")
    axes = grid_axes[:, lead:]
    im_off = im_map = None
    for r, i in enumerate(rows):
        ax = axes[r, 0]
        im_map = _overlay(ax, maps[i], img, cmap=MAP_CMAP if map_lo >= 0 else CMAP, vmin=map_lo, vmax=map_hi, alpha=alpha)
        ax.set_ylabel(f"target '{_short(result.players[i], 12)}'", fontsize=9)
        if r == 0:
            ax.set_title("full map φ_i", fontsize=9)
        for c, j in enumerate(cols, start=1):
            ax = axes[r, c]
            if i == j and diag_constant:  # softmax maps: a concept alone owns every patch
                ax.set_xticks([])
                ax.set_yticks([])
                ax.set_facecolor("#f1f1f1")
                ax.text(0.5, 0.5, f"alone:\n{float(meta[i, i].flat[0]):.3g}\neverywhere", ha="center", va="center",
                        fontsize=9, color="#444", transform=ax.transAxes)
            elif i == j:  # its own scale: concept i alone
                _overlay(ax, meta[i, j], img, cmap=MAP_CMAP if diag_lo >= 0 else CMAP, vmin=diag_lo, vmax=diag_hi, alpha=alpha)
            if i == j:
                for s in ax.spines.values():
                    s.set_edgecolor("#222")
                    s.set_linewidth(1.6)
            else:
                im_off = _overlay(ax, meta[i, j], img, cmap=CMAP, vmin=-vmax, vmax=vmax, alpha=alpha)
            if r == 0:
                ax.set_title(f"source '{_short(result.players[j], 12)}'", fontsize=9)
            ax.set_xlabel(f"{result.matrix[i, j]:+.3f}", fontsize=8)
    if im_off is not None:
        fig.colorbar(im_off, ax=axes[:, 1:], shrink=0.6, label="M[i, j, p]: how source j moves target i's map")
    if im_map is not None:
        fig.colorbar(im_map, ax=axes[:, 0], shrink=0.6, location="left", label="full map φ_i")
    fig.suptitle("meta-maps (row = target i, column = source j; number = mean over the patches or region)", fontsize=10)
    return _finish(fig, save)


def diffusion_figures(result: MetaAttribution) -> dict:
    """``{"concept_maps": Figure, "meta_maps": Figure}`` for a result with concept maps and meta-maps; ``{}`` for
    any other result (the picture hook of the diffusion domain)."""
    if result.meta_maps is None:
        return {}
    _maps(result)
    return {"concept_maps": concept_maps_figure(result), "meta_maps": meta_maps_figure(result)}


__all__ = ["concept_maps_figure", "diffusion_figures", "meta_maps_figure"]
