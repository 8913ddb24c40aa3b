"""Re-make README pictures that come from metagame itself (no training): the demo heatmap and the third-order
tensor. ``python docs/figures/make_figures.py``"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch

import metagame
from metagame.viz import heatmap, tensor_heatmap
from metagame.viz.style import save_figure

ROOT = Path(__file__).resolve().parent


def demo_heatmap() -> Path:
    """The demo's heatmap: exact Meta-SV on the bundled MiniLM, two sentences."""
    from metagame.cli import main

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    with tempfile.TemporaryDirectory() as tmp:
        assert main(["demo", "--out", tmp, "--no-progress"]) == 0
        res = metagame.load(Path(tmp) / "result.json")
    return save_figure(heatmap(res, title="demo: why are the two sentences similar? (exact Meta-SV)"),
                       ROOT / "demo_heatmap.png", dpi=90)


def third_order() -> Path:
    """T[i, ·, ·] for f = x_price · x_quality · x_brand + x_price + 0.5·x_size at x = 1 (Meta-IG, order 3):
    the three-way term makes each of price/quality/brand move the push of another on the target."""
    players = ["price", "quality", "brand", "size", "colour"]
    f = lambda z: z[:, 0] * z[:, 1] * z[:, 2] + z[:, 0] + 0.5 * z[:, 3] + 0.2 * z[:, 3] * z[:, 4]
    res = metagame.meta_attributions(f, torch.ones(5, dtype=torch.float64), method="integrated_gradients",
                                     players=players, order=3)
    return save_figure(tensor_heatmap(res, target="price"), ROOT / "third_order.png", dpi=90)


if __name__ == "__main__":
    print(demo_heatmap())
    print(third_order())
