"""Masking rules: how a coalition S becomes a model input x_S.

A masking rule owns the players of an input: it knows how many there are, their labels, which
input coordinates belong to which player, and how to build ``x_S`` (players in S keep their value,
the others take their baseline). Later stages (tokens, patches, training points, components) add
rules of their own with the same two verbs: :meth:`apply` and :meth:`reduce`.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from ..errors import MetagameError
from .coalitions import player_labels


def to_tensor(x, dtype: torch.dtype | None = None, device=None) -> torch.Tensor:
    """Convert arrays / lists / scalars to a tensor, keeping float64 as float64."""
    if isinstance(x, torch.Tensor):
        t = x.detach()
    else:
        arr = np.asarray(x)
        if arr.dtype.kind in "biu":
            arr = arr.astype(np.float32)
        t = torch.as_tensor(arr)
    if dtype is not None:
        t = t.to(dtype)
    elif not t.is_floating_point():
        t = t.float()
    if device is not None:
        t = t.to(device)
    return t


def _check_finite(t: torch.Tensor, what: str) -> None:
    bad = ~torch.isfinite(t)
    if bool(bad.any()):
        where = tuple(int(i) for i in torch.nonzero(bad)[0])
        raise MetagameError(
            f"the {what} contain a non-finite value ({float(t[where])}) at index {where}; metagame explains finite "
            f"inputs: replace NaN/inf in the {what} before calling"
        )


class Masking:
    """Base class of masking rules (players + coalition -> input)."""

    n_players: int
    players: list[str]

    def apply(self, coalitions: np.ndarray) -> torch.Tensor:  # pragma: no cover - interface
        """Inputs ``x_S`` for a batch of coalitions ``bool[m, d]``."""
        raise NotImplementedError

    def reduce(self, coordinate_scores: torch.Tensor) -> torch.Tensor:  # pragma: no cover - interface
        """Sum per-coordinate scores ``[m, *shape]`` into per-player scores ``[m, d]``."""
        raise NotImplementedError


class BaselineMasking(Masking):
    """x_S = x on the coordinates of players in S, the baseline b elsewhere.

    Args:
        inputs: the explained input x, any shape.
        baselines: same shape as ``inputs`` (or broadcastable to it); default zeros.
        feature_mask: optional integer array of ``inputs``' shape giving each coordinate's player
            (Captum's word); default one player per coordinate.
        players: optional labels, one per player.
    """

    def __init__(
        self, inputs, baselines=None, feature_mask=None, players: Sequence[str] | None = None,
        dtype: torch.dtype | None = None,
    ):
        x = to_tensor(inputs, dtype=dtype)
        if x.ndim == 0:
            raise MetagameError("inputs must have at least one feature; got a scalar")
        if x.numel() == 0:
            raise MetagameError(f"inputs are empty (shape {tuple(x.shape)}); pass the input to explain, with at least one feature")
        _check_finite(x, "inputs")
        if baselines is None:
            b = torch.zeros_like(x)
        else:
            b = to_tensor(baselines, dtype=x.dtype, device=x.device)
            if b.ndim == 0:
                b = torch.full_like(x, float(b))
            if b.shape != x.shape:
                try:
                    b = torch.broadcast_to(b, x.shape).clone()
                except RuntimeError:
                    raise MetagameError(
                        f"baselines have shape {tuple(b.shape)} but inputs have shape {tuple(x.shape)}; "
                        f"pass baselines of the same shape as inputs (or a scalar)"
                    ) from None
        _check_finite(b, "baselines")
        self.inputs = x
        self.baselines = b
        if feature_mask is None:
            fm = torch.arange(x.numel(), device=x.device).reshape(x.shape)
        else:
            fm = torch.as_tensor(np.asarray(feature_mask), device=x.device).long()
            if fm.shape != x.shape:
                raise MetagameError(
                    f"feature_mask has shape {tuple(fm.shape)} but inputs have shape {tuple(x.shape)}; "
                    f"give one player id per input coordinate"
                )
            ids = torch.unique(fm)
            if ids.min() != 0 or ids.max() != len(ids) - 1:
                raise MetagameError("feature_mask must use the player ids 0 .. d-1, each at least once")
        self.feature_mask = fm
        self.n_players = int(fm.max().item()) + 1
        self.players = player_labels(players, self.n_players)
        self._flat_mask = fm.reshape(-1)

    def coordinate_mask(self, coalitions: np.ndarray) -> torch.Tensor:
        """Boolean ``[m, *shape]``: which coordinates are kept for each coalition."""
        c = torch.as_tensor(np.asarray(coalitions, dtype=bool), device=self.inputs.device)
        return c[:, self._flat_mask].reshape((c.shape[0],) + tuple(self.inputs.shape))

    def apply(self, coalitions: np.ndarray) -> torch.Tensor:
        keep = self.coordinate_mask(coalitions)
        return torch.where(keep, self.inputs.unsqueeze(0), self.baselines.unsqueeze(0))

    def baseline_batch(self, m: int) -> torch.Tensor:
        """The baseline repeated ``m`` times, ``[m, *shape]``."""
        return self.baselines.unsqueeze(0).expand((m,) + tuple(self.baselines.shape)).clone()

    def reduce(self, coordinate_scores: torch.Tensor) -> torch.Tensor:
        m = coordinate_scores.shape[0]
        flat = coordinate_scores.reshape(m, -1)
        out = torch.zeros(m, self.n_players, dtype=flat.dtype, device=flat.device)
        out.index_add_(1, self._flat_mask.to(flat.device), flat)
        return out
