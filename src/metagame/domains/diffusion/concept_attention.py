"""ConceptAttention (Helbling et al., 2025) as an inner method: the concept maps of a diffusion adapter."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch

from ...methods.base import AttributionMethod
from ...models.contract import VectorValued, require_capability


@runtime_checkable
class ConceptMaps(VectorValued, Protocol):
    """The capability concept_attention needs (:mod:`metagame.models.contract`): vector-valued attributions whose
    maps the adapter computes itself, ``maps(coalitions) -> [m, d, *attribution_shape]``. A
    :class:`~metagame.domains.diffusion.DiffusionConceptModel` provides it."""

    def maps(self, coalitions: np.ndarray) -> torch.Tensor:
        """Each player's concept map at each coalition."""


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
        require_capability(model, ConceptMaps, "method 'concept_attention'",
                           f"concept_attention reads ConceptAttention maps, which {type(model).__name__} does not have; "
                           f"use it with metagame.explain_diffusion (a diffusion transformer)")
        return model.maps(coalitions)


__all__ = ["ConceptAttention", "ConceptMaps"]
