"""Adapter for plain tensor callables ``model(x: [n, *shape]) -> [n]``."""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
import torch

from ...errors import MetagameError
from ...models.base import ModelAdapter
from ...players.masking import BaselineMasking


def auto_batch_size(inputs: torch.Tensor, elements: int = 1 << 20, low: int = 64, high: int = 8192) -> int:
    """Rows per model call: about ``elements`` input elements per call, clipped to ``[low, high]``."""
    return int(min(high, max(low, elements // max(1, inputs.numel()))))


def module_dtype(model: Any) -> torch.dtype | None:
    """The floating dtype of a ``torch.nn.Module``'s parameters when they share one (None otherwise or for a
    plain function): inputs are cast to it, since a float32 network cannot take float64 inputs."""
    if not isinstance(model, torch.nn.Module):
        return None
    dtypes = {p.dtype for p in model.parameters() if p.is_floating_point()}
    dtypes |= {b.dtype for b in model.buffers() if b.is_floating_point()}
    return dtypes.pop() if len(dtypes) == 1 else None


class TensorModel(ModelAdapter):
    """A callable on float tensors explained at one input with baseline masking.

    Args:
        model: callable mapping ``[n, *inputs.shape]`` to ``[n]`` (or ``[n, 1]``).
        inputs: the explained input x.
        baselines: baseline b (same shape; default zeros).
        feature_mask: optional player id per coordinate (players spanning several coordinates).
        players: optional player labels.
        batch_size: rows per model call (None: :func:`auto_batch_size`, up to 8192 rows for small inputs).

    A ``torch.nn.Module`` whose parameters share one floating dtype gets its inputs and baselines in that dtype
    (float64 inputs for a float32 network are cast to float32); a plain function gets them as given.
    """

    native_input = True

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
        dtype = module_dtype(model)
        masking = BaselineMasking(inputs, baselines, feature_mask=feature_mask, players=players, dtype=dtype)
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
        try:
            out = self.model(z)
        except (RuntimeError, IndexError) as exc:
            raise self._call_error(exc, z) from exc
        return self.check_output(out, z.shape[0], row_coalitions)

    def _call_error(self, exc: Exception, z: torch.Tensor) -> Exception:
        """A clear error for the common ways a model rejects ``z`` (dtype, shape), else the original error."""
        text = str(exc)
        if any(k in text for k in ("dtype", "scalar type", "Double", "Float", "Half", "BFloat16")) and z.is_floating_point():
            return MetagameError(
                f"the model rejected inputs of dtype {z.dtype} ({text.splitlines()[0]}); pass inputs in the model's "
                f"dtype (e.g. x.float() for a float32 network) or cast the model (model.double())"
            )
        if any(k in text for k in ("shape", "size", "dimension", "mat1", "index")):
            return MetagameError(
                f"the model rejected a batch of shape {tuple(z.shape)} ({text.splitlines()[0]}); metagame calls it on "
                f"[n, *inputs.shape] (it adds the batch dimension itself){self.shape_hint()}"
            )
        return exc

    def shape_hint(self) -> str:
        shape = tuple(self.inputs.shape)
        if len(shape) >= 2 and shape[0] == 1:
            return (f"; the inputs have shape {shape} with a leading 1: pass the single input without a batch "
                    f"dimension, inputs[0] of shape {shape[1:]}")
        return ""

    def fingerprint_parts(self) -> dict[str, Any]:
        return {
            "inputs": self.inputs, "baselines": self.baselines, "feature_mask": self.masking.feature_mask,
            "model": self.model,
        }

    def reduce(self, coordinate_scores: torch.Tensor) -> torch.Tensor:
        return self.masking.reduce(coordinate_scores)

    def explained(self) -> dict[str, str]:
        """f = the model's output at the masked input; absent features take the baseline."""
        name = getattr(self.model, "__name__", None) or type(self.model).__name__
        return {"f": f"{name}(x_S), the model's output (one scalar per input)",
                "masking": "an absent feature takes its baseline value b (x_S = x on S, b elsewhere)",
                "empty": "x_∅ = b, every feature at its baseline"}

    def describe(self) -> dict:
        name = type(self.model).__name__
        return {"adapter": "TensorModel", "model": name, "input_shape": list(self.inputs.shape), "dtype": str(self.dtype)}
