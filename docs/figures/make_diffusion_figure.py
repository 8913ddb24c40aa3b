"""Re-make docs/figures/diffusion_meta_maps.png: Meta-ConceptAttention on a tiny random Flux pipeline.

    python docs/figures/make_diffusion_figure.py

The pipeline is built offline from configs (tests/tiny_diffusion.py), so the image and the maps are those of
random weights: the picture shows the layout of the result, not what a trained Flux model sees.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))

from tiny_diffusion import tiny_flux_pipeline  # noqa: E402

from metagame import explain_diffusion  # noqa: E402
from metagame.domains.diffusion.pictures import meta_maps_figure  # noqa: E402
from metagame.viz.plots import save_figure  # noqa: E402


def main() -> Path:
    pipe = tiny_flux_pipeline(seed=0)
    res = explain_diffusion(pipe, "a cat under a tree", concepts=["cat", "tree", "sky"], steps=2, height=48, width=48,
                            max_sequence_length=12, generation_seed=0)
    return save_figure(meta_maps_figure(res), ROOT / "docs" / "figures" / "diffusion_meta_maps.png", dpi=80)


if __name__ == "__main__":
    print(main())
