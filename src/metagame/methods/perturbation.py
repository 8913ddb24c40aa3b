"""Perturbation family: occlusion (leave-one-out), Shapley value, Banzhaf value.

At a masked input x_S the method explains the restricted game v_S(T) = f(x_{S∩T}); players
outside S are null and get 0. Values come from ``model.values`` (cached, batched).
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from ..errors import MetagameError
from ..models.base import ModelAdapter
from ..solvers.exact import banzhaf_values, shapley_values
from .base import AttributionMethod, coalition_rng

#: total sub-coalitions evaluated per model.values call when expanding a batch
_ROWS_PER_CALL = 1 << 15


def subset_table_rows(members: np.ndarray, d: int) -> np.ndarray:
    """All ``2**s`` subsets of ``members`` as ``bool[2**s, d]`` in bitmask order over the members."""
    s = len(members)
    idx = np.arange(2**s, dtype=np.int64)
    local = ((idx[:, None] >> np.arange(s, dtype=np.int64)) & 1).astype(bool)
    rows = np.zeros((2**s, d), dtype=bool)
    rows[:, members] = local
    return rows


def evaluate_expansions(
    model: ModelAdapter, coalitions: np.ndarray, expand: Callable[[np.ndarray], np.ndarray]
) -> list[tuple[np.ndarray, np.ndarray]]:
    """For each coalition, the rows ``expand(S)`` and their values, evaluated in large deduplicated batches."""
    results: list[tuple[np.ndarray, np.ndarray]] = []
    pending: list[np.ndarray] = []
    total = 0

    def flush():
        nonlocal pending, total
        if not pending:
            return
        allrows = np.concatenate(pending)
        vals = model.values(allrows).detach().cpu().double().numpy()
        pos = 0
        for rows in pending:
            results.append((rows, vals[pos : pos + len(rows)]))
            pos += len(rows)
        pending, total = [], 0

    for c in coalitions:
        rows = expand(c)
        pending.append(rows)
        total += len(rows)
        if total >= _ROWS_PER_CALL:
            flush()
    flush()
    return results


class Occlusion(AttributionMethod):
    """Occlusion / leave-one-out: φ_i = f(x_S) − f(x_{S∖i}) for i ∈ S, else 0."""

    name = "occlusion"
    family = "perturbation"

    @property
    def table_rule(self):
        return "occlusion"

    def attribute(self, model: ModelAdapter, coalitions: np.ndarray) -> torch.Tensor:
        coalitions = np.asarray(coalitions, dtype=bool)
        m, d = coalitions.shape
        # rows: S itself followed by S∖i for every i (rows for i ∉ S equal S and are deduplicated by the cache)
        eye = np.eye(d, dtype=bool)
        full = np.concatenate([coalitions[:, None, :], coalitions[:, None, :] & ~eye[None]], axis=1)
        vals = model.values(full.reshape(-1, d)).reshape(m, d + 1)
        phi = vals[:, :1] - vals[:, 1:]
        return torch.where(torch.as_tensor(coalitions), phi, torch.zeros_like(phi))


class _Semivalue(AttributionMethod):
    family = "perturbation"
    _solver = staticmethod(shapley_values)

    def __init__(self, exact_limit: int = 16, n_samples: int = 64, seed: int | None = 0):
        if exact_limit < 1:
            raise MetagameError(f"exact_limit must be >= 1; got {exact_limit}")
        if n_samples < 1:
            raise MetagameError(f"n_samples must be >= 1; got {n_samples}")
        self.exact_limit = int(exact_limit)
        self.n_samples = int(n_samples)
        self.seed = seed

    def params(self):
        return {"exact_limit": self.exact_limit, "n_samples": self.n_samples, "seed": self.seed}

    @property
    def table_rule(self):
        return self.name

    @property
    def table_rule_limit(self) -> int:
        return self.exact_limit

    def attribute(self, model: ModelAdapter, coalitions: np.ndarray) -> torch.Tensor:
        coalitions = np.asarray(coalitions, dtype=bool)
        m, d = coalitions.shape
        out = np.zeros((m, d))

        def expand(c):
            members = np.flatnonzero(c)
            if len(members) <= self.exact_limit:
                return subset_table_rows(members, d)
            return self._sample_rows(c, members, d)

        for r, (c, (rows, vals)) in enumerate(zip(coalitions, evaluate_expansions(model, coalitions, expand))):
            members = np.flatnonzero(c)
            if len(members) == 0:
                continue
            if len(members) <= self.exact_limit:
                out[r, members] = self._solver(vals)
            else:
                out[r, members] = self._estimate(rows[:, members], vals)
        return torch.as_tensor(out).to(model.dtype)


class Shapley(_Semivalue):
    """Shapley value of v_S: φ_i = Σ_{T⊆S∖i} |T|!(|S|−|T|−1)!/|S|! [v(T∪i) − v(T)].

    Exact for |S| ≤ ``exact_limit``; beyond, antithetic permutation sampling with ``n_samples``
    permutation pairs (each costs 2(|S|+1) model rows), seeded per coalition.
    """

    name = "shapley"
    _solver = staticmethod(shapley_values)

    def _sample_rows(self, c, members, d):
        rng = coalition_rng(self.seed, c)
        s = len(members)
        chains = []
        for _ in range(self.n_samples):
            perm = rng.permutation(s)
            for order in (perm, perm[::-1]):
                rows = np.zeros((s + 1, d), dtype=bool)
                for t in range(1, s + 1):
                    rows[t] = rows[t - 1]
                    rows[t, members[order[t - 1]]] = True
                chains.append(rows)
        return np.concatenate(chains)

    def _estimate(self, local_rows, vals):
        s = local_rows.shape[1]
        chains = vals.reshape(-1, s + 1)
        rows = local_rows.reshape(-1, s + 1, s)
        added = np.argmax(rows[:, 1:] & ~rows[:, :-1], axis=2)  # player added at each step
        gains = np.diff(chains, axis=1)
        phi = np.zeros(s)
        np.add.at(phi, added.reshape(-1), gains.reshape(-1))
        return phi / chains.shape[0]


class Banzhaf(_Semivalue):
    """Banzhaf value of v_S: φ_i = 2^{−(|S|−1)} Σ_{T⊆S∖i} [v(T∪i) − v(T)].

    Exact for |S| ≤ ``exact_limit``; beyond, the maximum-sample-reuse estimator over
    ``n_samples``·|S| uniform subsets (mean value with i minus mean value without i).
    """

    name = "banzhaf"
    _solver = staticmethod(banzhaf_values)

    def _sample_rows(self, c, members, d):
        rng = coalition_rng(self.seed, c)
        s = len(members)
        local = rng.random((self.n_samples * s, s)) < 0.5
        rows = np.zeros((local.shape[0], d), dtype=bool)
        rows[:, members] = local
        return rows

    def _estimate(self, local_rows, vals):
        phi = np.zeros(local_rows.shape[1])
        for i in range(local_rows.shape[1]):
            on = local_rows[:, i]
            if on.all() or (~on).all():
                raise MetagameError("Banzhaf sampling drew no subset with (or without) a player; raise n_samples")
            phi[i] = vals[on].mean() - vals[~on].mean()
        return phi
