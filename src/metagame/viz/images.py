"""Pictures of patch players over the input image (CLIP/SigLIP patches, per-word patch maps).

Convention as in :mod:`metagame.viz.plots`: ``matrix[i, j]`` = φ_{j→i}, row = target i, column = source j.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import MetagameError
from ..results.result import MetaAttribution
from .style import CMAP, absmax, finish, kinds_of, new_figure, player_index, short

try:  # matplotlib is the optional ``viz`` extra
    from matplotlib.colors import TwoSlopeNorm
    from matplotlib.figure import Figure
except ImportError:  # pragma: no cover - exercised only without matplotlib
    pass

_PATCH_RE = re.compile(r"\(\s*(\d+)\s*,\s*(\d+)\s*\)")


def patch_layout(result: MetaAttribution) -> tuple[list[int], int, int, list[tuple[int, int]]]:
    """Patch players and their grid cells: ``(indices, rows, cols, [(r, c), ...])``.

    The grid comes from ``context["grid"]``, else from ``"(r, c)"`` in the labels, else the nearest square.
    """
    kinds = kinds_of(result)
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
    """The input image as float ``[H, W, 3]`` in [0, 1]: :attr:`~metagame.results.result.MetaAttribution.image`,
    else ``context["image_path"]``."""
    img = result.image
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


def overlay_map(ax, grid: np.ndarray, img: np.ndarray | None, *, cmap: str, norm, alpha: float):
    """Draw ``grid`` [rows, cols] over a muted grey copy of ``img`` (alone without one); returns the map's artist."""
    gh, gw = grid.shape
    ax.set_xticks([])
    ax.set_yticks([])
    grid = np.ma.masked_invalid(grid)
    if img is None:
        return ax.imshow(grid, cmap=cmap, norm=norm, extent=(0, gw, gh, 0), interpolation="nearest")
    gray = 0.25 + 0.6 * img.mean(axis=2)
    ax.imshow(gray, cmap="gray", vmin=0, vmax=1, extent=(0, gw, gh, 0), interpolation="bilinear")
    return ax.imshow(grid, cmap=cmap, norm=norm, alpha=alpha, extent=(0, gw, gh, 0), interpolation="nearest")


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

    With :attr:`~metagame.results.result.MetaAttribution.patch_maps` ([n_words, rows, cols]) one panel per word (how the word moves every patch's
    attribution). Otherwise: the first-order patch map, then for each non-patch player j the column
    M[patches, j] (how j moves each patch), or, without such players, the rows M[i, patches] of the top patches.
    """
    idx, rows, cols, cells = patch_layout(result)
    maps = result.patch_maps
    if not idx and maps is None:
        raise MetagameError("image_overlay needs patch players (player_kinds 'patch') or extras['patch_maps']")
    img = input_image(result)
    panels: list[tuple[str, np.ndarray]] = []
    kinds = kinds_of(result)
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
            panels.append((f"'{short(str(names[k]), 16)}' → patches", maps[k]))
    else:
        fo = _grid_map(result.first_order[idx], rows, cols, cells)
        panels.append(("first-order φ (patches)", fo))
        if non_patch:
            src = non_patch
            if words is not None:
                src = [player_index(result, w) for w in words]
            else:
                strength = [np.nansum(np.abs(result.matrix[idx, j])) for j in non_patch]
                src = [non_patch[k] for k in np.argsort(strength)[::-1]]
            for j in src[: max_panels - 1]:
                panels.append((f"'{short(result.players[j], 16)}' → patches", _grid_map(result.matrix[idx, j], rows, cols, cells)))
        else:
            order = sorted(idx, key=lambda i: -abs(result.first_order[i]) if np.isfinite(result.first_order[i]) else 0)
            for i in order[: max_panels - 1]:
                panels.append((f"patches → {short(result.players[i], 16)}", _grid_map(result.matrix[i, idx], rows, cols, cells)))
    if img is not None:
        panels.insert(0, ("input image", None))
    n = len(panels)
    ncol = min(4, n)
    nrow = int(np.ceil(n / ncol))
    fig = new_figure(3.0 * ncol + 0.8, 3.0 * nrow + 0.4)
    axes = fig.subplots(nrow, ncol, squeeze=False)
    maps_only = [p[1] for p in panels if p[1] is not None]
    vmax_first = absmax(maps_only[0])
    vmax_rest = absmax(*maps_only[1:]) if len(maps_only) > 1 else vmax_first
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
        im = overlay_map(ax, grid, img, cmap=CMAP, norm=TwoSlopeNorm(0.0, -vmax, vmax), alpha=alpha)
    if im is not None:
        fig.colorbar(im, ax=axes, shrink=0.7, label="attribution (red + / blue −)")
    return finish(fig, save)


__all__ = ["image_overlay", "input_image", "overlay_map", "patch_layout"]
