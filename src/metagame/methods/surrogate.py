"""Surrogate family: KernelSHAP and LIME (weighted linear fits over coalitions of S)."""

from __future__ import annotations

from math import comb

import numpy as np
import torch

from ..errors import MetagameError
from ..models.base import ModelAdapter
from .base import AttributionMethod, coalition_rng
from .perturbation import evaluate_expansions, subset_table_rows


class _Surrogate(AttributionMethod):
    family = "surrogate"

    def __init__(self, n_samples: int = 2048, seed: int | None = 0):
        if n_samples < 2:
            raise MetagameError(f"n_samples must be >= 2; got {n_samples}")
        self.n_samples = int(n_samples)
        self.seed = seed

    def params(self):
        return {"n_samples": self.n_samples, "seed": self.seed}

    def attribute(self, model: ModelAdapter, coalitions: np.ndarray) -> torch.Tensor:
        coalitions = np.asarray(coalitions, dtype=bool)
        m, d = coalitions.shape
        out = np.zeros((m, d))
        expanded = evaluate_expansions(model, coalitions, lambda c: self._rows(c, d))
        for r, (c, (rows, vals)) in enumerate(zip(coalitions, expanded)):
            members = np.flatnonzero(c)
            if len(members):
                out[r, members] = self._fit(rows[:, members], vals)
        return torch.as_tensor(out).to(model.dtype)


class KernelShap(_Surrogate):
    """KernelSHAP: argmin_φ Σ_z k(z)[v(z) − v(∅) − φ·z]² s.t. Σφ = v(S) − v(∅), Shapley kernel k.

    All coalitions of S are used (giving the exact Shapley value) when 2^|S| − 2 ≤ ``n_samples``;
    otherwise ``n_samples`` paired draws from the kernel, seeded per coalition.
    """

    name = "kernel_shap"

    def _rows(self, c, d):
        members = np.flatnonzero(c)
        s = len(members)
        if s <= 1 or 2**s - 2 <= self.n_samples:
            return subset_table_rows(members, d)
        rng = coalition_rng(self.seed, c)
        k = np.arange(1, s)
        p = (s - 1) / (k * (s - k))
        p = p / p.sum()
        half = (self.n_samples + 1) // 2
        sizes = rng.choice(k, size=half, p=p)
        local = np.zeros((2 * half + 2, s), dtype=bool)
        local[1] = True  # row 0 = empty set, row 1 = S
        for t, size in enumerate(sizes):
            on = rng.permutation(s)[:size]
            local[2 + 2 * t, on] = True
            local[3 + 2 * t] = ~local[2 + 2 * t]
        rows = np.zeros((local.shape[0], d), dtype=bool)
        rows[:, members] = local
        return rows

    def _fit(self, z, vals):
        s = z.shape[1]
        sizes = z.sum(axis=1)
        empty = vals[sizes == 0][0]
        full = vals[sizes == s][0]
        if s == 1:
            return np.array([full - empty])
        inner = (sizes > 0) & (sizes < s)
        zz = z[inner].astype(np.float64)
        y = vals[inner] - empty
        if 2**s - 2 == inner.sum():  # exact enumeration: Shapley kernel weights
            kz = sizes[inner]
            w = (s - 1) / (np.array([comb(s, int(t)) for t in kz]) * kz * (s - kz))
        else:  # sampled from the kernel: equal weights
            w = np.ones(len(y))
        a = zz.T @ (zz * w[:, None])
        b = zz.T @ (w * y)
        kkt = np.zeros((s + 1, s + 1))
        kkt[:s, :s] = 2 * a
        kkt[:s, s] = 1
        kkt[s, :s] = 1
        rhs = np.concatenate([2 * b, [full - empty]])
        sol = np.linalg.lstsq(kkt, rhs, rcond=None)[0]
        return sol[:s]


class Lime(_Surrogate):
    """LIME: ridge fit of v(z) ≈ β₀ + β·z over coalitions z ⊆ S weighted by exp(−D(z)²/width²),
    D = cosine distance between z and S (1 − sqrt(|z|/|S|)).

    Neighbourhood as in Captum's ``Lime``: the instance itself plus uniformly random subsets of S
    (each player kept with probability 1/2), ``n_samples`` rows in all, kernel width 1. When all
    2^|S| coalitions fit in ``n_samples`` they are enumerated instead, each weighted by its expected
    count under that sampler, so the exact fit is the expectation of the sampled one and the ridge
    penalty ``alpha`` keeps the same strength relative to the data in both modes.
    """

    name = "lime"

    def __init__(self, n_samples: int = 2048, kernel_width: float = 1.0, alpha: float = 1.0, seed: int | None = 0):
        super().__init__(n_samples=n_samples, seed=seed)
        if kernel_width <= 0:
            raise MetagameError(f"kernel_width must be > 0; got {kernel_width}")
        self.kernel_width = float(kernel_width)
        self.alpha = float(alpha)

    def params(self):
        return {**super().params(), "kernel_width": self.kernel_width, "alpha": self.alpha}

    def _rows(self, c, d):
        members = np.flatnonzero(c)
        s = len(members)
        if 2**s <= self.n_samples:
            return subset_table_rows(members, d)
        rng = coalition_rng(self.seed, c)
        local = rng.random((self.n_samples, s)) < 0.5
        local[0] = True  # the explained instance
        rows = np.zeros((self.n_samples, d), dtype=bool)
        rows[:, members] = local
        return rows

    def _fit(self, z, vals):
        s = z.shape[1]
        sizes = z.sum(axis=1)
        distance = 1.0 - np.sqrt(sizes / s)
        w = np.exp(-(distance**2) / self.kernel_width**2)
        if len(vals) == 2**s and 2**s <= self.n_samples:  # enumerated: weight by expected sampler counts
            w = w * np.where(sizes == s, 1.0 + (self.n_samples - 1) / 2**s, (self.n_samples - 1) / 2**s)
        x = z.astype(np.float64)
        mx = (w @ x) / w.sum()
        my = (w @ vals) / w.sum()
        xc = x - mx
        a = xc.T @ (xc * w[:, None]) + self.alpha * np.eye(s)
        return np.linalg.solve(a, xc.T @ (w * (vals - my)))
