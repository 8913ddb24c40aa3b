"""Patch maps: the vector-valued view of a CLIP/SigLIP image–text pair. The caption's words are the players, every
patch is always present and its attribution is a side target, so each word gets a map of how it moves every
patch's attribution (``mode="patch_maps"`` of :func:`metagame.explain_vision`)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ...errors import MetagameError
from ...models.base import ModelAdapter
from ...results.extras import HEATMAP, HEATMAP_NO_WORDS, IMAGE, PATCH_MAPS, SIDE_AT_EMPTY, SIDE_FIRST_ORDER, SIDE_MATRIX
from .vision import VisionLanguageModel


class PatchMapsModel(ModelAdapter):
    """The vector-valued view of a :class:`VisionLanguageModel`: players = the caption's words, every patch always
    present, and each patch's attribution an always-present *side target*.

    One attribution call at a word coalition T returns the word scores and the patch heatmap; the exact engine
    gives the word-to-word metagame and, per patch p, the value of each word in T ↦ heatmap_p(image, words T):
    ``extras["patch_maps"]`` ``[W, rows, cols]`` with Σ_w patch_maps[w] = heatmap(all words) − heatmap(no words).
    """

    exact_max_players = 16
    side_targets: tuple[str, ...] = ()

    def __init__(self, inner: VisionLanguageModel):
        if not (inner.include_patches and inner.include_words):
            raise MetagameError("patch maps need an adapter with both patch and word players")
        super().__init__(batch_size=inner.batch_size, cache_values=True)
        self.inner = inner
        self.model = inner.model
        self.n_players = inner.n_words
        self.players = inner.players[inner.n_patches :]
        self.player_kinds = ["word"] * self.n_players
        self.side_targets = tuple(inner.players[: inner.n_patches])

    @property
    def dtype(self) -> torch.dtype:
        return self.inner.dtype

    def attribute(self, method: Any, coalitions: np.ndarray) -> torch.Tensor:
        """``[m, W + P]``: the method run on the full adapter with every patch present (through its own hook, so by
        halves); word scores first (the players), then every patch's score (the side targets)."""
        scores = self.inner.attribute(method, self.inner.word_coalitions(coalitions))
        p = self.inner.n_patches
        return torch.cat([scores[:, p:], scores[:, :p]], dim=1)

    def _values(self, coalitions: np.ndarray) -> torch.Tensor:
        self.count(len(coalitions))
        return self.inner.values(self.inner.word_coalitions(coalitions))

    def display_context(self) -> dict:
        return {**self.inner.display_context(), "mode": "patch_maps"}

    def explained(self) -> dict[str, str]:
        """The inner model's f, with the patches always present (each patch an attribution target)."""
        inner = self.inner.explained()
        return {"f": inner["f"] + "; patch maps: every patch present, each patch's attribution a target",
                "masking": "an absent word's tokens leave the attention mask; patches are never masked",
                "empty": "no words of the caption (every patch present)"}

    def describe(self) -> dict:
        return {**self.inner.describe(), "mode": "patch_maps"}

    def fingerprint_parts(self) -> dict[str, Any]:
        return {**self.inner.fingerprint_parts(), "mode": "patch_maps"}

    def finalize(self, result: Any) -> None:
        """Turns the side-target blocks into ``patch_maps`` ``[W, rows, cols]``, ``heatmap`` and ``heatmap_no_words``
        ``[rows, cols]`` and adds the image."""
        rows, cols = self.inner.grid
        side = result.extras.pop(SIDE_MATRIX)  # [P, W]
        result.extras[PATCH_MAPS] = side.T.reshape(self.n_players, rows, cols)
        result.extras[HEATMAP] = result.extras.pop(SIDE_FIRST_ORDER).reshape(rows, cols)
        result.extras[HEATMAP_NO_WORDS] = result.extras.pop(SIDE_AT_EMPTY).reshape(rows, cols)
        result.extras[IMAGE] = self.inner.small_image()


__all__ = ["PatchMapsModel"]
