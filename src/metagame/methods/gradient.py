"""Gradient family: saliency, gradient×input, Integrated Gradients, SmoothGrad.

Gradients are taken in the adapter's continuous space ``z`` (raw features, embeddings, patch
pixels, component gates) at z = x_S; a player's score is the sum over its coordinates.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import torch

from ..errors import MetagameError, NotDifferentiableError
from ..models.base import ModelAdapter, repeat_rows
from .base import AttributionMethod, PathRule

Quadrature = Literal["gausslegendre", "riemann_left", "riemann_right", "riemann_middle", "riemann_trapezoid"]
_PERTURBATION_NAMES = "occlusion, shapley, banzhaf, kernel_shap, lime"


def quadrature(n_steps: int, rule: Quadrature = "gausslegendre") -> tuple[np.ndarray, np.ndarray]:
    """Nodes α ∈ [0, 1] and weights of a rule for ∫₀¹ g(α) dα with ``n_steps`` evaluations."""
    if n_steps < 1:
        raise MetagameError(f"n_steps must be >= 1; got {n_steps}")
    if rule == "gausslegendre":
        x, w = np.polynomial.legendre.leggauss(n_steps)
        return (x + 1) / 2, w / 2
    if rule == "riemann_left":
        return np.arange(n_steps) / n_steps, np.full(n_steps, 1.0 / n_steps)
    if rule == "riemann_right":
        return np.arange(1, n_steps + 1) / n_steps, np.full(n_steps, 1.0 / n_steps)
    if rule == "riemann_middle":
        return (np.arange(n_steps) + 0.5) / n_steps, np.full(n_steps, 1.0 / n_steps)
    if rule == "riemann_trapezoid":
        if n_steps < 2:
            raise MetagameError("riemann_trapezoid needs n_steps >= 2")
        a = np.linspace(0, 1, n_steps)
        w = np.full(n_steps, 1.0 / (n_steps - 1))
        w[[0, -1]] /= 2
        return a, w
    raise MetagameError(
        f"unknown quadrature {rule!r}; use one of gausslegendre, riemann_left, riemann_right, riemann_middle, riemann_trapezoid"
    )


def input_gradients(
    model: ModelAdapter, z: torch.Tensor, extra: Any, row_coalitions: np.ndarray | None, method: str
) -> torch.Tensor:
    """∂f/∂z for a batch of rows (f summed over rows, so each row gets its own gradient)."""
    z = z.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        out = model.forward(z, extra, row_coalitions=row_coalitions)
        if not out.requires_grad:
            raise NotDifferentiableError(
                f"method '{method}' needs gradients, but the model output does not depend differentiably on its "
                f"input (no grad_fn: is the model run under torch.no_grad(), converted to numpy, or made of "
                f"non-differentiable operations?). Use a perturbation method instead: {_PERTURBATION_NAMES}"
            )
        (grad,) = torch.autograd.grad(out.sum(), z, allow_unused=True)
    if grad is None:
        grad = torch.zeros_like(z)
    return grad.detach()


class _GradientMethod(AttributionMethod):
    family = "gradient"
    needs_gradients = True

    def _check(self, model: ModelAdapter) -> None:
        if not getattr(model, "differentiable", True):
            raise NotDifferentiableError(
                f"method '{self.name}' needs gradients, but {type(model).__name__} has no gradient path; "
                f"use a perturbation method instead: {_PERTURBATION_NAMES}"
            )

    def _rows_per_coalition(self) -> int:
        return 1

    def coalitions_per_pass(self, model: ModelAdapter) -> int:
        """``batch_size // rows per coalition`` (e.g. IG's ``n_steps``): the coalitions of one forward/backward pass."""
        return max(1, model.batch_size // self._rows_per_coalition())

    def attribute(self, model: ModelAdapter, coalitions: np.ndarray) -> torch.Tensor:
        self._check(model)
        coalitions = np.asarray(coalitions, dtype=bool)
        per = self.coalitions_per_pass(model)
        parts = [self._attribute_chunk(model, coalitions[s : s + per]) for s in range(0, len(coalitions), per)]
        return torch.cat(parts) if parts else torch.zeros(0, model.n_players, dtype=model.dtype)

    def _attribute_chunk(self, model: ModelAdapter, coalitions: np.ndarray) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError


class Saliency(_GradientMethod):
    """Saliency: φ_i = Σ_{c∈i} ∂f/∂z_c at x_S (``abs=True``: Σ |∂f/∂z_c|)."""

    name = "saliency"

    def __init__(self, abs: bool = False):
        self.abs = bool(abs)

    def params(self):
        return {"abs": self.abs}

    @property
    def path_rule(self) -> PathRule | None:
        return None if self.abs else PathRule((1.0,), (1.0,), "indicator")

    def _attribute_chunk(self, model, coalitions):
        z, _, extra = model.embed(coalitions)
        g = input_gradients(model, z, extra, coalitions, self.name)
        return model.reduce(g.abs() if self.abs else g)


class GradientXInput(_GradientMethod):
    """Gradient×input: φ_i = Σ_{c∈i} (z_c − b_c) ∂f/∂z_c at x_S."""

    name = "gradient_x_input"
    path_rule = PathRule((1.0,), (1.0,), "displacement")

    def _attribute_chunk(self, model, coalitions):
        z, zb, extra = model.embed(coalitions)
        g = input_gradients(model, z, extra, coalitions, self.name)
        return model.reduce((z - zb) * g)


class IntegratedGradients(_GradientMethod):
    """Integrated Gradients: φ_i = Σ_{c∈i} (z_c − b_c) ∫₀¹ ∂_c f(b + α(z − b)) dα.

    Args:
        n_steps: quadrature nodes per coalition.
        quadrature: ``gausslegendre`` (default; exact for polynomial paths of degree < 2·n_steps) or a
            Riemann rule.
    """

    name = "integrated_gradients"

    def __init__(self, n_steps: int = 32, quadrature: Quadrature = "gausslegendre"):
        self.n_steps = int(n_steps)
        self.quadrature = quadrature
        self._alphas, self._weights = globals()["quadrature"](self.n_steps, quadrature)

    def params(self):
        return {"n_steps": self.n_steps, "quadrature": self.quadrature}

    @property
    def path_rule(self) -> PathRule:
        return PathRule(tuple(float(a) for a in self._alphas), tuple(float(w) for w in self._weights), "displacement")

    def reference_value(self, model: ModelAdapter) -> tuple[float, str] | None:
        """f at the path's start b (the baselines ``zb`` of the full coalition): Σ_i φ_i = f(x) − f(b) (completeness,
        up to quadrature error). None for views that attribute through another adapter (patch maps) or whose
        attributions are maps, where no single scalar start applies."""
        if model.side_targets or model.attribution_shape:
            return None
        try:
            z, zb, extra = model.embed(np.ones((1, model.n_players), dtype=bool))
        except NotImplementedError:
            return None
        with torch.no_grad():
            value = float(model.forward(zb, extra).reshape(-1)[0])
        return value, "the integration path's start (every player at the method's baseline, in the space gradients are taken in)"

    def _rows_per_coalition(self):
        return self.n_steps

    def _attribute_chunk(self, model, coalitions):
        z, zb, extra = model.embed(coalitions)
        m = z.shape[0]
        shape = tuple(z.shape[1:])
        alphas = torch.as_tensor(self._alphas, dtype=z.dtype, device=z.device)
        weights = torch.as_tensor(self._weights, dtype=z.dtype, device=z.device)
        a = alphas.reshape((1, -1) + (1,) * len(shape))
        path = zb.unsqueeze(1) + a * (z - zb).unsqueeze(1)  # [m, steps, *shape]
        path = path.reshape((m * self.n_steps,) + shape)
        rows = np.repeat(coalitions, self.n_steps, axis=0)
        g = input_gradients(model, path, repeat_rows(extra, self.n_steps), rows, self.name)
        g = g.reshape((m, self.n_steps) + shape)
        avg = (g * weights.reshape((1, -1) + (1,) * len(shape))).sum(dim=1)
        return model.reduce((z - zb) * avg)


class SmoothGrad(_GradientMethod):
    """SmoothGrad: φ_i = Σ_{c∈i} mean_ε ∂_c f(x_S + ε), ε ~ N(0, stdev²) (fixed draws, seeded).

    ``multiply_by_inputs=True`` multiplies by (x_S − b) (SmoothGrad of gradient×input).
    """

    name = "smoothgrad"

    def __init__(self, n_samples: int = 16, stdev: float = 0.1, multiply_by_inputs: bool = False, seed: int = 0):
        if n_samples < 1:
            raise MetagameError(f"n_samples must be >= 1; got {n_samples}")
        self.n_samples = int(n_samples)
        self.stdev = float(stdev)
        self.multiply_by_inputs = bool(multiply_by_inputs)
        self.seed = int(seed)
        self._noise: torch.Tensor | None = None

    def params(self):
        return {"n_samples": self.n_samples, "stdev": self.stdev, "multiply_by_inputs": self.multiply_by_inputs, "seed": self.seed}

    def _rows_per_coalition(self):
        return self.n_samples

    def noise(self, shape: tuple[int, ...], dtype, device) -> torch.Tensor:
        """The fixed noise draws ``[n_samples, *shape]`` (the same for every coalition)."""
        if self._noise is None or tuple(self._noise.shape[1:]) != shape:
            gen = torch.Generator().manual_seed(self.seed)
            self._noise = torch.randn((self.n_samples,) + shape, generator=gen, dtype=torch.float64) * self.stdev
        return self._noise.to(dtype=dtype, device=device)

    def _attribute_chunk(self, model, coalitions):
        z, zb, extra = model.embed(coalitions)
        m = z.shape[0]
        shape = tuple(z.shape[1:])
        noisy = (z.unsqueeze(1) + self.noise(shape, z.dtype, z.device).unsqueeze(0)).reshape((m * self.n_samples,) + shape)
        rows = np.repeat(coalitions, self.n_samples, axis=0)
        g = input_gradients(model, noisy, repeat_rows(extra, self.n_samples), rows, self.name)
        g = g.reshape((m, self.n_samples) + shape).mean(dim=1)
        if self.multiply_by_inputs:
            g = g * (z - zb)
        return model.reduce(g)
