"""ConceptAttention (Helbling et al., 2025) as an inner method: the concept maps of a diffusion adapter."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ...errors import MetagameError
from ...methods.base import AttributionMethod


class ConceptAttention(AttributionMethod):
    """φ(x_S) = the ConceptAttention maps ``[m, d, P]`` of an adapter that has them (``adapter.maps``; see
    :class:`~metagame.domains.diffusion.DiffusionConceptModel`): per player, the softmax over the present players of
    ⟨o_player, o_patch⟩, averaged over the chosen blocks and denoising steps. Vector-valued, forward-only; the
    settings (route, blocks, timesteps, softmax) live on the adapter."""

    name = "concept_attention"
    applications = ("diffusion",)
    family = "attention"
    needs_gradients = False

    def attribute(self, model: Any, coalitions: np.ndarray) -> torch.Tensor:
        maps = getattr(model, "maps", None)
        if maps is None or not getattr(model, "attribution_shape", ()):
            raise MetagameError(
                f"concept_attention reads ConceptAttention maps, which {type(model).__name__} does not have; "
                f"use it with metagame.explain_diffusion (a diffusion transformer)"
            )
        return maps(coalitions)


__all__ = ["ConceptAttention"]
