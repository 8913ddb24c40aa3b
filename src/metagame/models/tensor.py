"""Adapter for plain tensor callables ``model(x: [n, *shape]) -> [n]``."""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
import torch

from ..errors import MetagameError
from ..players.masking import BaselineMasking
from .base import ModelAdapter


def auto_batch_size(inputs: torch.Tensor, elements: int = 1 << 20, low: int = 64, high: int = 8192) -> int:
    """Rows per model call: about ``elements`` input elements per call, clipped to ``[low, high]``."""
    return int(min(high, max(low, elements // max(1, inputs.numel()))))


class TensorModel(ModelAdapter):
    """A callable on float tensors explained at one input with baseline masking.

    Args:
        model: callable mapping ``[n, *inputs.shape]`` to ``[n]`` (or ``[n, 1]``).
        inputs: the explained input x.
        baselines: baseline b (same shape; default zeros).
        feature_mask: optional player id per coordinate (players spanning several coordinates).
        players: optional player labels.
        batch_size: rows per model call (None: :func:`auto_batch_size`, up to 8192 rows for small inputs).
    """

    def __init__(
        self,
        model: Callable,
        inputs,
        baselines=None,
        *,
        feature_mask=None,
        players: Sequence[str] | None = None,
        batch_size: int | None = None,
        cache_values: bool = True,
    ):
        if not callable(model):
            raise MetagameError(f"model must be callable (a torch module or function); got {type(model).__name__}")
        masking = BaselineMasking(inputs, baselines, feature_mask=feature_mask, players=players)
        super().__init__(batch_size=batch_size or auto_batch_size(masking.inputs), cache_values=cache_values)
        self.model = model
        self.masking = masking
        self.n_players = self.masking.n_players
        self.players = self.masking.players
        self.player_kinds = ["feature"] * self.n_players

    @property
    def dtype(self) -> torch.dtype:
        return self.masking.inputs.dtype

    @property
    def inputs(self) -> torch.Tensor:
        return self.masking.inputs

    @property
    def baselines(self) -> torch.Tensor:
        return self.masking.baselines

    def embed(self, coalitions: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, Any]:
        z = self.masking.apply(coalitions)
        return z, self.masking.baseline_batch(z.shape[0]), None

    def forward(self, z: torch.Tensor, extra: Any = None, row_coalitions: np.ndarray | None = None) -> torch.Tensor:
        self.count(z.shape[0])
        out = self.model(z)
        return self.check_output(out, z.shape[0], row_coalitions)

    def reduce(self, coordinate_scores: torch.Tensor) -> torch.Tensor:
        return self.masking.reduce(coordinate_scores)

    def describe(self) -> dict:
        name = type(self.model).__name__
        return {"adapter": "TensorModel", "model": name, "input_shape": list(self.inputs.shape), "dtype": str(self.dtype)}
