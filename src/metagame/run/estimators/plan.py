"""The sampling plan shared by every estimator: size weights, which sizes are enumerated, how units are drawn.

One attribution call at coalition A returns φ(f, x_A) ∈ R^d, i.e. u_i(A∖{i}) for every target i ∈ A at once
(metagame variant) or ν_i(A) for every i (serial variant). The plan pays first for the full coalition and the
singletons (and ∅ for the serial variant), enumerates whole coalition sizes while the budget's share for them
covers them (KernelSHAP's rule, complementary sizes in pairs), and spends the rest on *units*: a size a ~ π, a
uniform coalition of that size and, when size d − a is sampled too, its complement. See docs/estimators.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import comb, lgamma, log

import numpy as np

from ..options import Value, Variant


def lcomb(n: int, k: int) -> float:
    """log C(n, k) (−inf outside 0 ≤ k ≤ n)."""
    if k < 0 or k > n:
        return -np.inf
    return lgamma(n + 1) - lgamma(k + 1) - lgamma(n - k + 1)


def semivalue_logweights(m: int, value: Value) -> tuple[np.ndarray, np.ndarray]:
    """log c for T ∋ j (``lin``) and T ∌ j (``lout``), indexed by t = |T| = 0..m, in an m-player game."""
    lin = np.full(m + 1, -np.inf)
    lout = np.full(m + 1, -np.inf)
    for t in range(m + 1):
        if value == "shapley":
            if t >= 1:
                lin[t] = lgamma(t) + lgamma(m - t + 1) - lgamma(m + 1)
            if t <= m - 1:
                lout[t] = lgamma(t + 1) + lgamma(m - t) - lgamma(m + 1)
        else:
            c = -(m - 1) * log(2.0)
            if t >= 1:
                lin[t] = c
            if t <= m - 1:
                lout[t] = c
    return lin, lout


def size_coefficients(m: int, value: Value) -> np.ndarray:
    """κ(t) = Σ_{|T|=t} c_j(T) = C(m−1, t−1)c_in(t) − C(m−1, t)c_out(t) (so Σ_T c_j(T) g(|T|) = Σ_t κ(t) g(t))."""
    lin, lout = semivalue_logweights(m, value)
    kappa = np.zeros(m + 1)
    for t in range(m + 1):
        a = np.exp(lcomb(m - 1, t - 1) + lin[t]) if t >= 1 else 0.0
        b = np.exp(lcomb(m - 1, t) + lout[t]) if t <= m - 1 else 0.0
        kappa[t] = a - b
    return kappa


def log_kernel(m: int) -> np.ndarray:
    """log μ(t) of the Shapley kernel μ(t) = (m−1)/(C(m, t) t (m−t)), t = 1..m−1 (−inf elsewhere)."""
    out = np.full(m + 1, -np.inf)
    for t in range(1, m):
        out[t] = log(m - 1) - lcomb(m, t) - log(t) - log(m - t)
    return out


@dataclass
class Plan:
    """Which coalition sizes are paid first, enumerated or sampled, and how units are drawn."""

    d: int
    variant: Variant
    value: Value
    m: int  # players of each target's game
    offset: int  # local size t = |A| − offset
    mandatory: list[int]
    enumerated: list[int]  # d-space sizes enumerated exactly (mandatory included)
    sampled: list[int]  # d-space sizes drawn by units
    pi: np.ndarray  # [d+1] size distribution of unit draws
    log_q: np.ndarray  # [d+1] log P(a given coalition of that size is in a unit)
    paired: np.ndarray  # [d+1] bool: a unit of this size carries its complement


def make_plan(d: int, budget: int, variant: Variant, value: Value, share_power: float = -1.0) -> Plan:
    """The plan for ``budget`` calls: mandatory sizes, then whole sizes while affordable, then units."""
    if variant == "metagame":
        m, offset, relevant, mandatory = d - 1, 1, list(range(1, d + 1)), [1, d]
    else:
        m, offset, relevant, mandatory = d, 0, list(range(0, d + 1)), [0, 1, d]
    # desired per-target local-size mass, mapped to the d-space size of the evaluated coalition
    want = np.zeros(d + 1)
    for a in relevant:
        t = a - offset
        if t < 1 or t > m - 1:
            continue
        if value == "shapley":
            mass = 1.0 / (t * (m - t))
        else:
            mass = np.exp(lcomb(m, t) - m * log(2.0))
        want[a] = mass * float(a) ** share_power if variant == "metagame" else mass
    enumerated = set(mandatory)
    plan_shift = offset  # sizes a and d + offset − a hold complementary coalitions of each target's game
    remaining = budget - sum(comb(d, a) for a in mandatory)
    while True:
        rest = [a for a in relevant if a not in enumerated and want[a] > 0]
        if not rest:
            break
        total = want[rest].sum()
        best = None
        for a in sorted(rest, key=lambda s: min(s, d - s)):
            group = sorted({a, d + plan_shift - a} & set(rest))
            cost = sum(comb(d, s) for s in group)
            share = want[group].sum() / total * remaining
            if cost <= share and cost <= remaining:
                best = (group, cost)
                break
        if best is None:
            break
        enumerated.update(best[0])
        remaining -= best[1]
    sampled = [a for a in relevant if a not in enumerated and want[a] > 0]
    pi = np.zeros(d + 1)
    if sampled:
        pi[sampled] = want[sampled] / want[sampled].sum()
    paired = np.zeros(d + 1, dtype=bool)
    log_q = np.full(d + 1, -np.inf)
    sset = set(sampled)
    for a in sampled:
        paired[a] = (d - a) in sset
        p = pi[a] + (pi[d - a] if paired[a] else 0.0)
        log_q[a] = log(p) - lcomb(d, a)
    return Plan(d, variant, value, m, offset, mandatory, sorted(enumerated), sampled, pi, log_q, paired)


def sizes_rows(d: int, a: int, chunk: int):
    """All coalitions of size ``a`` as ``bool[·, d]`` blocks (lexicographic), for enumeration."""
    from itertools import combinations

    block: list[tuple[int, ...]] = []
    for combo in combinations(range(d), a):
        block.append(combo)
        if len(block) == chunk:
            yield rows_from(block, d)
            block = []
    if block:
        yield rows_from(block, d)


def rows_from(combos: list[tuple[int, ...]], d: int) -> np.ndarray:
    rows = np.zeros((len(combos), d), dtype=bool)
    for r, c in enumerate(combos):
        rows[r, list(c)] = True
    return rows


def draw_units(rng: np.random.Generator, plan: Plan, n_units: int) -> tuple[np.ndarray, np.ndarray]:
    """``n_units`` units: coalitions ``bool[r, d]`` and the unit index of each row."""
    d = plan.d
    sampled = np.asarray(plan.sampled)
    sizes = rng.choice(sampled, size=n_units, p=plan.pi[sampled])
    keys = rng.random((n_units, d))
    order = np.argsort(keys, axis=1)
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.arange(d)[None, :].repeat(n_units, 0), axis=1)
    first = ranks < sizes[:, None]
    pair = plan.paired[sizes]
    rows = [first]
    unit = [np.arange(n_units)]
    if pair.any():
        rows.append(~first[pair])
        unit.append(np.flatnonzero(pair))
    rows_a = np.concatenate(rows)
    unit_a = np.concatenate(unit)
    order = np.argsort(unit_a, kind="stable")
    return rows_a[order], unit_a[order]


__all__ = ["Plan", "draw_units", "lcomb", "log_kernel", "make_plan", "rows_from", "semivalue_logweights", "size_coefficients", "sizes_rows"]
