"""Image players: reading an image, the patch grid (G×G groups of a model's patches) and blur baselines.

A patch player owns a rectangle of pixels; absent patches take a baseline image's pixels (mean colour, blur, zero).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import MetagameError


def load_image(image) -> "Any":
    """An RGB ``PIL.Image`` from a path, a PIL image or an ``[H, W, 3]`` array (uint8, or float in [0, 1])."""
    from PIL import Image, UnidentifiedImageError

    if isinstance(image, Image.Image):
        return image.convert("RGB")
    if isinstance(image, (str, Path)):
        path = Path(image)
        if not path.exists():
            raise MetagameError(f"image file not found: {str(path)!r}; pass the path of a PNG or JPEG file")
        if not path.is_file():
            raise MetagameError(f"{str(path)!r} is not a file; pass the path of a PNG or JPEG file")
        try:
            with Image.open(path) as im:
                return im.convert("RGB")
        except (UnidentifiedImageError, OSError) as e:
            raise MetagameError(
                f"{str(path)!r} is not an image Pillow can read ({type(e).__name__}); pass a PNG, JPEG, BMP or WebP file"
            ) from None
    arr = np.asarray(image)
    if arr.ndim == 3 and arr.shape[2] in (3, 4):
        if arr.dtype.kind == "f":
            arr = np.clip(arr * 255.0, 0, 255).round()
        return Image.fromarray(arr[..., :3].astype(np.uint8))
    raise MetagameError(
        f"image must be a file path, a PIL image or an [H, W, 3] array; got {type(image).__name__} "
        f"with shape {getattr(arr, 'shape', None)}"
    )


def grid_shape(grid, native: int) -> tuple[int, int]:
    if grid is None:
        return native, native
    if isinstance(grid, (int, np.integer)):
        rows = cols = int(grid)
    else:
        try:
            rows, cols = (int(g) for g in grid)
        except (TypeError, ValueError):
            raise MetagameError(f"grid must be an int G (G×G groups) or (rows, cols); got {grid!r}") from None
    if rows < 1 or cols < 1:
        raise MetagameError(f"grid must be positive; got {grid!r}")
    if rows > native or cols > native:
        raise MetagameError(
            f"grid {rows}×{cols} is finer than the model's patch grid {native}×{native}; use grid <= {native} "
            f"(groups of whole patches)"
        )
    return rows, cols


def gaussian_blur(pixels: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of ``[C, H, W]`` with standard deviation ``sigma`` pixels (reflect padding)."""
    radius = max(1, int(round(3 * sigma)))
    c, h, w = pixels.shape
    radius = min(radius, h - 1, w - 1)
    if radius < 1:
        return pixels.clone()
    t = torch.arange(-radius, radius + 1, dtype=pixels.dtype)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    x = pixels.unsqueeze(0)
    x = torch.nn.functional.pad(x, (radius, radius, 0, 0), mode="reflect")
    x = torch.nn.functional.conv2d(x, k.reshape(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
    x = torch.nn.functional.pad(x, (0, 0, radius, radius), mode="reflect")
    x = torch.nn.functional.conv2d(x, k.reshape(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)
    return x[0]


def region_weights(region: Any, grid: tuple[int, int]) -> np.ndarray:
    """Patch weights ``[P]`` from a mask on the patch grid ``[rows, cols]`` or on the image (``[H, W]``, averaged
    over each patch's pixels); non-negative, not all zero."""
    rows, cols = grid
    r = np.asarray(region, dtype=np.float64)
    if r.ndim == 3 and r.shape[2] in (1, 3, 4):
        r = r[..., :3].mean(axis=2)
    if r.shape == (rows, cols):
        w = r
    elif r.ndim == 2 and r.shape[0] % rows == 0 and r.shape[1] % cols == 0:
        w = r.reshape(rows, r.shape[0] // rows, cols, r.shape[1] // cols).mean(axis=(1, 3))
    else:
        raise MetagameError(f"region has shape {r.shape}; pass a mask on the {rows}x{cols} patch grid or on the "
                            f"image (a multiple of it, e.g. {rows * 16}x{cols * 16})")
    if not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
        raise MetagameError("region must be a non-negative mask with at least one patch inside")
    return w.reshape(-1)


__all__ = ["gaussian_blur", "grid_shape", "load_image", "region_weights"]
