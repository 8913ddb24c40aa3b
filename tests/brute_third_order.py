"""Brute force written from SPEC's definitions, shared by the third-order tests (independent of the engine).

Shapley values by the subset formula; the metagame matrix M(x_S) at every masked input x_S (players outside S at
the baseline) and the tensor T[i, j, k] = Shapley value of k in w_ij(R) = M[i, j](x_{R∪{i,j}}), T[i, j, j] = w_ij(∅),
T[i, i, i] = M[i, i].
"""

from __future__ import annotations

from itertools import combinations
from math import factorial
from typing import Callable

import numpy as np


def shapley_by_subsets(players: list[int], v: Callable[[frozenset], float]) -> dict[int, float]:
    """Shapley values of ``v`` (a function of frozensets) over ``players``: Σ_T |T|!(n−|T|−1)!/n! (v(T∪{p}) − v(T))."""
    n = len(players)
    out = {}
    for p in players:
        rest = [q for q in players if q != p]
        total = 0.0
        for size in range(n):
            w = factorial(size) * factorial(n - size - 1) / factorial(n)
            for t in combinations(rest, size):
                t = frozenset(t)
                total += w * (v(t | {p}) - v(t))
        out[p] = total
    return out


def third_order_brute_force(phi_of: Callable[[frozenset], np.ndarray], d: int) -> tuple[np.ndarray, np.ndarray]:
    """``(M, T)`` at the full input from ``phi_of(S)`` = the attribution vector φ(f, x_S) ``[d]``."""
    phis: dict[frozenset, np.ndarray] = {}
    metas: dict[frozenset, np.ndarray] = {}

    def phi(s: frozenset) -> np.ndarray:
        if s not in phis:
            phis[s] = np.asarray(phi_of(s), dtype=np.float64)
        return phis[s]

    def meta(s: frozenset) -> np.ndarray:
        """M(x_S): row i = Shapley values of u_i(T) = φ_i(x_{(T∪{i})∩S}) over N∖{i}; M[i, i] = φ_i(x_{{i}∩S})."""
        if s not in metas:
            m = np.zeros((d, d))
            for i in range(d):
                others = [j for j in range(d) if j != i]
                for j, value in shapley_by_subsets(others, lambda t, i=i: phi((t | {i}) & s)[i]).items():
                    m[i, j] = value
                m[i, i] = phi(frozenset({i}) & s)[i]
            metas[s] = m
        return metas[s]

    full = meta(frozenset(range(d)))
    t3 = np.zeros((d, d, d))
    for i in range(d):
        t3[i, i, i] = full[i, i]
        for j in range(d):
            if j == i:
                continue
            w = lambda r, i=i, j=j: meta(r | {i, j})[i, j]
            rest = [k for k in range(d) if k not in (i, j)]
            for k, value in shapley_by_subsets(rest, w).items():
                t3[i, j, k] = value
            t3[i, j, j] = w(frozenset())
    return full.copy(), t3
