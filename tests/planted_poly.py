"""Multilinear polynomials with planted interactions and their meta-attributions in closed form (from SPEC's
definitions, independent of the engine), for coverage tests at many players.

f(z) = Σ_B c_B Π_{l∈B} z_l over planted sets B (every singleton, plus pairs, triples and quadruples), baseline 0.
Gradient×input at a masked input x_S is φ_i(x_S) = Σ_{B∋i, B⊆S} c_B x_B (x_B = Π_{l∈B} x_l), so each target's game
u_i(T) = φ_i(x_{T∪i}) = Σ_{B∋i} c_B x_B·1[B∖{i} ⊆ T] is a sum of unanimity games on R = B∖{i}: its Shapley values
give M[i, j] = Σ_{B⊇{i,j}} c_B x_B/(|B| − 1) and M[i, i] = c_{{i}} x_i, and its Meta-SV (Möbius coefficient c_B x_B
on R, split over the r(r − 1) ordered pairs of R) gives T[i, j, k] = Σ_{B⊇{i,j,k}} c_B x_B/((|B| − 1)(|B| − 2)) and
T[i, j, j] = c_{{i,j}} x_i x_j.
"""

from __future__ import annotations

import numpy as np
import torch


def planted_poly(d: int, seed: int, pairs: int, triples: int, quads: int = 0, higher: tuple[int, ...] = ()):
    """``(f, x, M, T)``: the polynomial (torch, batched), the input, and its exact M ``[d, d]`` and T ``[d, d, d]``
    (T only for d ≤ 64). ``higher``: numbers of planted sets of size 5, 6, … (coefficient scale 0.5, 0.4, …)."""
    rng = np.random.default_rng(seed)
    x = rng.choice([-1.0, 1.0], size=d) * rng.uniform(0.5, 1.5, size=d)
    sets: dict[tuple[int, ...], float] = {(j,): float(rng.normal()) for j in range(d)}
    planted = [(2, pairs, 1.0), (3, triples, 0.8), (4, quads, 0.6)]
    planted += [(5 + k, count, 0.5 - 0.1 * k) for k, count in enumerate(higher)]
    for size, count, scale in planted:
        while sum(len(b) == size for b in sets) < count:
            sets[tuple(sorted(rng.choice(d, size=size, replace=False).tolist()))] = float(rng.normal() * scale)
    m = np.zeros((d, d))
    t = np.zeros((d, d, d)) if d <= 64 else None
    for b, c in sets.items():
        cx = c * float(np.prod(x[list(b)]))
        if len(b) == 1:
            m[b[0], b[0]] += cx
            if t is not None:
                t[b[0], b[0], b[0]] += cx
            continue
        for i in b:
            rest = [j for j in b if j != i]
            for j in rest:
                m[i, j] += cx / (len(b) - 1)
                if t is None:
                    continue
                if len(b) == 2:
                    t[i, j, j] += cx
                for k in rest:
                    if k != j:
                        t[i, j, k] += cx / ((len(b) - 1) * (len(b) - 2))
    groups = {}
    for b, c in sets.items():
        groups.setdefault(len(b), ([], []))
        groups[len(b)][0].append(list(b))
        groups[len(b)][1].append(c)
    terms = [(torch.tensor(idx), torch.tensor(coef, dtype=torch.float64)) for idx, coef in groups.values()]

    def f(z: torch.Tensor) -> torch.Tensor:
        return sum(torch.prod(z[:, idx], dim=2) @ coef for idx, coef in terms)

    return f, torch.tensor(x, dtype=torch.float64), m, t
