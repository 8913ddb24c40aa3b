"""Shared-sample estimators of meta-attribution matrices for many players.

One attribution call at coalition A returns φ(f, x_A) ∈ R^d, i.e. u_i(A∖{i}) for **every** target
i ∈ A at once (metagame) or ν_i(A) for every i (serial variant). Both estimators below draw one
common stream of coalitions and let every evaluated coalition feed every target game it belongs to.

Design (shared by both estimators)
    * Paid first, from the budget: the full coalition N (φ(x), the row totals) and the d singletons
      {i} (the exact diagonal M[i, i] = φ_i(x_{{i}}) and every target's empty coalition); the serial
      variant also pays for the empty coalition (ν_i(∅) = φ_i(baseline)).
    * Coalition sizes whose every coalition the budget can afford are enumerated exactly (greedy, pairs
      of sizes holding complementary coalitions of the target games — a and d + 1 − a for the metagame —
      whenever the sampler would spend at least as many draws on them as
      they have coalitions — KernelSHAP's rule).
    * The rest is spent on *units*: a size a ~ π, a uniform coalition A of that size and, when size d − a
      is sampled too, its complement N∖A (antithetic pair: every player is in exactly one of the two, so
      every target receives exactly one sample per unit). Each sample is reweighted by
      1 / q(A), q(A) = P(A is in a unit), which makes the samples unbiased for each target's game
      (Horvitz–Thompson), whatever the target.

Estimators
    * ``montecarlo``: M[i, j] = Σ_T c_j(|T|, j ∈ T) u_i(T) (semivalue weights c) estimated term by
      term: exact strata plus Σ_units c·(u − g)/q with a per-target, per-size control variate g (the
      running stratum mean, fixed within a batch). Every unit gives a complete unbiased estimate Y_k of
      M, so stderr = sd(Y)/√K is an honest standard error. Each sample's weights sum to zero over j,
      so rows sum to φ_i(x) exactly. Handles Shapley and Banzhaf (MSR-style, uniform coalitions) outer
      values and both variants. Memory O(batch·d + d²).
    * ``regression``: for every target, KernelSHAP's constrained weighted least squares
      min_β Σ_T μ(|T|) (u_i(T) − u_i(∅) − Σ_{j∈T} β_j)² s.t. Σ_j β_j = u_i(L) − u_i(∅), where
      μ(t) = (m−1)/(C(m, t) t (m−t)) is the Shapley kernel of the target's m-player game; the sum is
      exact on enumerated sizes and Horvitz–Thompson on sampled ones. The constraint gives exact row
      sums. stderr: delete-a-group jackknife over the sampled units (20 groups; the enumerated part is
      exact and kept in every replicate). Shapley outer value only; memory O(budget·d), cost O(budget·d³).

    * ``stratified`` (Shapley only): the Shapley value written per size, φ_j = (u(L) − u(∅))/m +
      (1/m) Σ_t [mean_{|T|=t, j∈T} u(T) − mean_{|T|=t, j∉T} u(T)], with a pairwise surrogate
      g(T) = Σ β_k T_k + Σ γ_kl T_k T_l fitted per target (size-stratified Shapley-kernel least squares, one free
      constant per size; linear only while a target has fewer than 1.5 rows per parameter) as control variate:
      φ = Shapley(g) (exact: β_j + ½Σ_l γ_jl) + the formula applied to r = u − g (exact on enumerated sizes,
      per-size sample means on sampled ones). Sizes are drawn ∝ Shapley-kernel mass (not divided by the
      targets a call serves). stderr: per-size in/out sample variances of 5-fold cross-fitted residuals; the row
      gap is spread ∝ variance. Memory O(budget·d), cost O(d·(d²/2)³).

``auto`` chooses ``stratified`` for the Shapley value when d ≤ 24, ``regression`` for 24 < d ≤ 64 and
``montecarlo`` otherwise (Banzhaf, or many players). Why (benchmarks/estimators.py, d = 16, 4,000 calls):
sharing alone makes each target see only ~2× the per-target approach's samples at mid sizes (sizes that can
be enumerated cost C(d, a) calls for C(d−1, a−1) rows per target), and a linear KernelSHAP fit leaves ~10% of
the within-size variance; the pairwise surrogate — affordable only because every target gets ~d/2 × more
rows than a per-target run — removes a further 80–85%, giving ~5× lower error than per-target KernelSHAP.

Small budgets (honest error bars)
    * An off-diagonal entry that the evaluated coalitions do not identify gets ``stderr = inf`` — never 0 — and
      ``params["unidentified_entries"]`` / ``params["stderr_note"]`` say how many: all of them at budget d + 1
      (only N and the singletons), a target reached by fewer than 2 sampled units, and (``regression``) an entry
      whose contrast lies in the null space of the per-target normal matrix. Its value is the row's efficiency
      gap shared out: the even split (φ_i(x) − M[i, i])/(d − 1) when nothing was sampled. ``stderr = 0`` means
      exact (every size enumerated).
    * ``regression`` solves its constrained least squares on the eigen-directions the data determine
      (eigenvalue > 1e-9 × the largest) and keeps the others at the even split (minimum-norm deviation), so an
      underdetermined or ill-conditioned fit cannot blow up; the efficiency constraint stays exact.
    * ``stratified`` bounds the error of sampled sizes with fewer than 2 rows on either side of j by the pooled
      residual variance, and with fewer than 4 sampled units per surrogate parameter takes the larger of that and a
      delete-a-group jackknife of the whole estimate (the surrogate's own variability).
    * With K sampled units reaching a target, its stderr is scaled by t_{K−1}(0.975)/1.96, so ±1.96·stderr is a
      Student-t 95% interval (a factor ≤ 1.01 once K ≥ 100).
    * Shapley rows sum to φ_i(x) (serial: φ_i(x) − φ_i(baseline)) to rounding for every budget.

Cost: ``budget`` counts attribution calls (coalitions attributed) and is never exceeded. An inner
method that costs r model rows per call (IG: ``n_steps``; SmoothGrad: ``n_samples``; kernel_shap / lime:
``n_samples``; shapley/banzhaf above their exact limit: their sampling budget) makes the total
model cost ≈ budget × r rows; the result's ``n_model_rows`` records it.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from math import lgamma, log
from typing import Any, Literal

import numpy as np

from ..errors import MetagameError
from ..games.masked import AttributionGame
from ..methods.base import AttributionMethod
from ..models.base import ModelAdapter
from ..players.coalitions import coalition_keys
from .checkpoint import checkpoint_key, read_checkpoint, write_checkpoint
from .exact import progress_bar
from .tables import Value, Variant

EstimatorName = Literal["auto", "stratified", "regression", "montecarlo"]

#: largest d for which ``auto`` picks the regression estimator
REGRESSION_MAX_PLAYERS = 64
#: largest d for which ``auto`` picks the stratified estimator (its pairwise surrogate has d(d−1)/2 terms)
STRATIFIED_MAX_PLAYERS = 24
#: the pairwise surrogate is fitted only when a target has at least this many rows per parameter
_PAIRWISE_ROWS_PER_PARAM = 1.5
#: folds of the stratified estimator's cross-fitted residuals (standard errors)
CROSSFIT_FOLDS = 5
#: below this many sampled units per surrogate parameter (a target's), the stratified estimator's stderr is at
#: least a delete-a-group jackknife of its whole estimate (the surrogate's own sampling variability)
_SMALL_SAMPLE_ROWS_PER_PARAM = 4.0
#: largest d for which repeated coalitions are looked up instead of paid again
_CACHE_MAX_PLAYERS = 32
#: groups of the regression estimator's delete-a-group jackknife
JACKKNIFE_GROUPS = 20
#: seconds between checkpoint saves
CHECKPOINT_EVERY_S = 30.0


@dataclass
class Estimate:
    """What an estimator computed (the API wraps it into a result object)."""

    matrix: np.ndarray
    first_order: np.ndarray
    stderr: np.ndarray
    n_attribution_calls: int
    params: dict = field(default_factory=dict)
    extras: dict = field(default_factory=dict)


# ----------------------------------------------------------------------------- weights


def _lcomb(n: int, k: int) -> float:
    if k < 0 or k > n:
        return -np.inf
    return lgamma(n + 1) - lgamma(k + 1) - lgamma(n - k + 1)


def _semivalue_logweights(m: int, value: Value) -> tuple[np.ndarray, np.ndarray]:
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


def _size_coefficients(m: int, value: Value) -> np.ndarray:
    """κ(t) = Σ_{|T|=t} c_j(T) = C(m−1, t−1)c_in(t) − C(m−1, t)c_out(t) (so Σ_T c_j(T) g(|T|) = Σ_t κ(t) g(t))."""
    lin, lout = _semivalue_logweights(m, value)
    kappa = np.zeros(m + 1)
    for t in range(m + 1):
        a = np.exp(_lcomb(m - 1, t - 1) + lin[t]) if t >= 1 else 0.0
        b = np.exp(_lcomb(m - 1, t) + lout[t]) if t <= m - 1 else 0.0
        kappa[t] = a - b
    return kappa


def _log_kernel(m: int) -> np.ndarray:
    """log μ(t) of the Shapley kernel μ(t) = (m−1)/(C(m, t) t (m−t)), t = 1..m−1 (−inf elsewhere)."""
    out = np.full(m + 1, -np.inf)
    for t in range(1, m):
        out[t] = log(m - 1) - _lcomb(m, t) - log(t) - log(m - t)
    return out


# ----------------------------------------------------------------------------- the sampling plan


@dataclass
class _Plan:
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


def _int_comb(n: int, k: int) -> int:
    from math import comb

    return comb(n, k)


def _make_plan(d: int, budget: int, variant: Variant, value: Value, share_power: float = -1.0) -> _Plan:
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
            mass = np.exp(_lcomb(m, t) - m * log(2.0))
        want[a] = mass * float(a) ** share_power if variant == "metagame" else mass
    enumerated = set(mandatory)
    plan_shift = offset  # sizes a and d + offset − a hold complementary coalitions of each target's game
    remaining = budget - sum(_int_comb(d, a) for a in mandatory)
    while True:
        rest = [a for a in relevant if a not in enumerated and want[a] > 0]
        if not rest:
            break
        total = want[rest].sum()
        best = None
        for a in sorted(rest, key=lambda s: min(s, d - s)):
            group = sorted({a, d + plan_shift - a} & set(rest))
            cost = sum(_int_comb(d, s) for s in group)
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
        log_q[a] = log(p) - _lcomb(d, a)
    return _Plan(d, variant, value, m, offset, mandatory, sorted(enumerated), sampled, pi, log_q, paired)


def _sizes_rows(d: int, a: int, chunk: int):
    """All coalitions of size ``a`` as ``bool[·, d]`` blocks (lexicographic), for enumeration."""
    from itertools import combinations

    block: list[tuple[int, ...]] = []
    for combo in combinations(range(d), a):
        block.append(combo)
        if len(block) == chunk:
            yield _rows_from(block, d)
            block = []
    if block:
        yield _rows_from(block, d)


def _rows_from(combos: list[tuple[int, ...]], d: int) -> np.ndarray:
    rows = np.zeros((len(combos), d), dtype=bool)
    for r, c in enumerate(combos):
        rows[r, list(c)] = True
    return rows


def _draw_units(rng: np.random.Generator, plan: _Plan, n_units: int) -> tuple[np.ndarray, np.ndarray]:
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


# ----------------------------------------------------------------------------- evaluation, budget, checkpoint


class _Evaluator:
    """Attribution calls with a hard budget, optional de-duplication, replay from a checkpoint, recording."""

    def __init__(self, game: AttributionGame, budget: int, d: int, replay, record: bool):
        self.game = game
        self.budget = budget
        self.d = d
        self.used = 0  # budget spent (replayed + new calls)
        self.cache: dict[bytes, np.ndarray] | None = {} if d <= _CACHE_MAX_PLAYERS else None
        self.replay_rows, self.replay_phi = replay if replay is not None else (np.zeros((0, d), bool), np.zeros((0, d)))
        self.replay_pos = 0
        self.record = record or self.replay_rows.shape[0] > 0
        self.rec_rows: list[np.ndarray] = []
        self.rec_phi: list[np.ndarray] = []

    @property
    def remaining(self) -> int:
        return self.budget - self.used

    def _fresh_mask(self, rows: np.ndarray) -> tuple[np.ndarray, list[bytes] | None]:
        if self.cache is None:
            return np.ones(len(rows), dtype=bool), None
        keys = coalition_keys(rows)
        seen: set[bytes] = set()
        fresh = np.zeros(len(rows), dtype=bool)
        for r, k in enumerate(keys):
            if k not in self.cache and k not in seen:
                fresh[r] = True
                seen.add(k)
        return fresh, keys

    def cost(self, rows: np.ndarray) -> np.ndarray:
        """Cumulative number of calls needed to evaluate ``rows[:r+1]``."""
        return np.cumsum(self._fresh_mask(rows)[0])

    def __call__(self, rows: np.ndarray) -> np.ndarray:
        fresh, keys = self._fresh_mask(rows)
        todo = rows[fresh]
        if len(todo) > self.remaining:  # pragma: no cover - callers truncate first
            raise MetagameError("internal error: attribution budget would be exceeded")
        vals = np.empty((len(todo), self.d))
        n_rep = min(len(todo), self.replay_rows.shape[0] - self.replay_pos)
        if n_rep > 0:
            stored = self.replay_rows[self.replay_pos : self.replay_pos + n_rep]
            if not np.array_equal(stored, todo[:n_rep]):
                raise MetagameError(
                    "the checkpoint does not match this run's coalitions (was it written by another version or "
                    "model?); delete the checkpoint file or pass another checkpoint path"
                )
            vals[:n_rep] = self.replay_phi[self.replay_pos : self.replay_pos + n_rep]
            self.replay_pos += n_rep
        if n_rep < len(todo):
            vals[n_rep:] = self.game(todo[n_rep:])
        self.used += len(todo)
        if self.record:
            self.rec_rows.append(todo)
            self.rec_phi.append(vals)
        out = np.empty((len(rows), self.d))
        out[fresh] = vals
        if self.cache is not None:
            for k, v in zip(np.asarray(keys, dtype=object)[fresh], vals):
                self.cache[k] = v
            for r in np.flatnonzero(~fresh):
                out[r] = self.cache[keys[r]]
        return out

    def recorded(self) -> tuple[np.ndarray, np.ndarray]:
        if not self.rec_rows:
            return np.zeros((0, self.d), bool), np.zeros((0, self.d))
        return np.concatenate(self.rec_rows), np.concatenate(self.rec_phi)


def _load_checkpoint(path: str, key: str, d: int):
    stored = read_checkpoint(path, key)
    if stored is None:
        return None
    packed = stored["rows"]
    rows = np.unpackbits(packed, axis=1, count=d).astype(bool) if packed.size else np.zeros((0, d), bool)
    return rows, np.asarray(stored["phi"], dtype=np.float64).reshape(-1, d)


def _save_checkpoint(path: str, key: str, ev: _Evaluator) -> None:
    rows, phi = ev.recorded()
    write_checkpoint(path, key, rows=np.packbits(rows, axis=1), phi=phi)


# ----------------------------------------------------------------------------- accumulators


class _Rows:
    """Per-row quantities of a block of evaluated coalitions for all target games at once."""

    def __init__(self, plan: _Plan, rows: np.ndarray, phi: np.ndarray, log_q: np.ndarray | None):
        self.rows = rows
        self.phi = phi
        self.size = rows.sum(axis=1)
        self.t = self.size - plan.offset  # local size
        self.relevant = rows if plan.variant == "metagame" else np.ones_like(rows)
        self.log_q = np.zeros(len(rows)) if log_q is None else log_q


def _coefficients(plan: _Plan, block: _Rows, lin: np.ndarray, lout: np.ndarray) -> np.ndarray:
    """C[r, j] = c_j(T_r) / q(A_r)."""
    t = np.clip(block.t, 0, plan.m)
    cin = np.exp(lin[t] - block.log_q)
    cout = np.exp(lout[t] - block.log_q)
    return np.where(block.rows, cin[:, None], -cout[:, None])


class _MonteCarlo:
    """Running sums of the per-unit estimates Y_k (``montecarlo``)."""

    def __init__(self, plan: _Plan):
        d, m = plan.d, plan.m
        self.plan = plan
        self.lin, self.lout = _semivalue_logweights(m, plan.value)
        self.kappa = _size_coefficients(m, plan.value)
        self.exact = np.zeros((d, d))
        self.sum_y = np.zeros((d, d))
        self.sum_y2 = np.zeros((d, d))
        self.k = 0
        self.g_sum = np.zeros((d, m + 1))
        self.g_cnt = np.zeros((d, m + 1))
        self.sampled_t = np.array([a - plan.offset for a in plan.sampled], dtype=int)
        self.g = np.zeros((d, m + 1))
        self.n_rel = np.zeros(d)  # sampled rows that feed each target's game

    def add_exact(self, block: _Rows) -> None:
        c = _coefficients(self.plan, block, self.lin, self.lout)
        self.exact += (np.where(block.relevant, block.phi, 0.0)).T @ c

    def set_control(self, u_empty: np.ndarray, u_full: np.ndarray) -> None:
        """g_i(t): running stratum mean of u_i at local size t, linear interpolation where unseen."""
        m = self.plan.m
        interp = u_empty[:, None] + (u_full - u_empty)[:, None] * (np.arange(m + 1) / m)[None, :]
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = self.g_sum / self.g_cnt
        self.g = np.where(self.g_cnt > 0, mean, interp)

    def add_units(self, block: _Rows, unit: np.ndarray, n_units: int) -> None:
        d = self.plan.d
        c = _coefficients(self.plan, block, self.lin, self.lout)
        t = np.clip(block.t, 0, self.plan.m)
        x = np.where(block.relevant, block.phi - self.g[:, t].T, 0.0)
        base = self.exact + (self.g[:, self.sampled_t] @ self.kappa[self.sampled_t])[:, None]
        # split rows into the first and the second member of their unit
        first = np.ones(len(unit), dtype=bool)
        first[1:] = unit[1:] != unit[:-1]
        x1 = np.zeros((n_units, d))
        c1 = np.zeros((n_units, d))
        x2 = np.zeros((n_units, d))
        c2 = np.zeros((n_units, d))
        x1[unit[first]] = x[first]
        c1[unit[first]] = c[first]
        x2[unit[~first]] = x[~first]
        c2[unit[~first]] = c[~first]
        ht = x1.T @ c1 + x2.T @ c2
        sq = (x1**2).T @ (c1**2) + (x2**2).T @ (c2**2) + 2.0 * (x1 * x2).T @ (c1 * c2)
        self.sum_y += n_units * base + ht
        self.sum_y2 += n_units * base**2 + 2.0 * base * ht + sq
        self.k += n_units
        onehot = np.zeros((len(t), self.plan.m + 1))
        onehot[np.arange(len(t)), t] = 1.0
        self.g_sum += np.where(block.relevant, block.phi, 0.0).T @ onehot
        self.g_cnt += block.relevant.T.astype(np.float64) @ onehot
        self.n_rel += block.relevant.sum(axis=0)

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        """Mean of the unit estimates Y_k and sd(Y)/√K; ``inf`` where fewer than 2 units/rows inform a target."""
        d = self.plan.d
        if not self.plan.sampled:
            return self.exact.copy(), np.zeros((d, d))
        if self.k == 0:
            # no sampled size was reached: exact strata only (boundary terms give the even split δ/m)
            return self.exact.copy(), np.full((d, d), np.inf)
        mean = self.sum_y / self.k
        if self.k < 2:
            return mean, np.full((d, d), np.inf)
        var = np.maximum(self.sum_y2 - self.k * mean**2, 0.0) / (self.k - 1)
        se = np.sqrt(var / self.k)
        se[self.n_rel < 2] = np.inf  # a target seen in fewer than 2 sampled coalitions has no variance estimate
        return mean, se


#: eigenvalues of the regression's normal matrix below this fraction of the largest count as zero (not identified)
_RANK_RCOND = 1e-9


def _contrast_basis(m: int) -> np.ndarray:
    """Orthonormal basis ``[m, m−1]`` of {v : Σ v = 0}."""
    q, _ = np.linalg.qr(np.column_stack([np.ones(m), np.eye(m)[:, : m - 1]]))
    return q[:, 1:]


def _constrained_solve(
    a: np.ndarray, b: np.ndarray, delta: float, basis: np.ndarray, need_identified: bool = False
) -> tuple[np.ndarray, np.ndarray | None]:
    """argmin β of β^T a β − 2 b^T β subject to 1^T β = δ, minimum-norm deviation from the even split δ/m.

    β = δ/m·1 + Qγ (Q: basis of the contrasts); γ solves (QᵀaQ)γ = Qᵀ(b − aδ/m·1) on the eigen-directions whose
    eigenvalue exceeds ``_RANK_RCOND`` × the largest, and is 0 on the others (directions the data do not determine
    stay at the even split). Returns β and, when asked, ``identified[j]``: β_j is a function of determined
    directions only (its row of Q lies in their span).
    """
    m = len(b)
    beta0 = np.full(m, delta / m)
    if m < 2:
        return beta0, np.ones(m, dtype=bool)
    ap = basis.T @ a @ basis
    bp = basis.T @ (b - a @ beta0)
    lam, vec = np.linalg.eigh((ap + ap.T) / 2.0)
    top = float(lam.max()) if lam.size else 0.0
    keep = lam > _RANK_RCOND * top if top > 0 and np.isfinite(top) else np.zeros(len(lam), dtype=bool)
    vk = vec[:, keep]
    gamma = vk @ ((vk.T @ bp) / lam[keep])
    beta = beta0 + basis @ gamma
    beta += (delta - beta.sum()) / m  # remove rounding so that Σβ = δ exactly
    if not need_identified:
        return beta, None
    rows = basis @ vk  # projection of each contrast row onto the determined directions
    norm_all = (basis**2).sum(axis=1)
    identified = (rows**2).sum(axis=1) >= (1.0 - 1e-8) * norm_all
    return beta, identified


class _StoredRows:
    """Keeps every evaluated block (exact blocks, and sampled blocks with their global unit ids)."""

    def __init__(self, plan: _Plan):
        self.plan = plan
        self.blocks: list[tuple[_Rows, np.ndarray | None]] = []
        self.k = 0  # sampled units so far

    def add_exact(self, block: _Rows) -> None:
        self.blocks.append((block, None))

    def add_units(self, block: _Rows, unit: np.ndarray, n_units: int) -> None:
        self.blocks.append((block, unit + self.k))
        self.k += n_units

    def stacked(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """All stored rows at once: coalitions, attribution vectors, local sizes, log q, unit id (−1 = exact)."""
        rows = np.concatenate([b.rows for b, _ in self.blocks])
        phi = np.concatenate([b.phi for b, _ in self.blocks])
        t = np.concatenate([b.t for b, _ in self.blocks])
        log_q = np.concatenate([b.log_q for b, _ in self.blocks])
        unit = np.concatenate([u if u is not None else np.full(len(b.rows), -1) for b, u in self.blocks])
        return rows, phi, t, log_q, unit


def _jackknife_variance(replicates: np.ndarray) -> np.ndarray:
    """Delete-a-group jackknife variance (G − 1)/G · Σ_g (θ_g − θ̄)² of G replicate estimates."""
    groups = len(replicates)
    dev = replicates - replicates.mean(axis=0, keepdims=True)
    return (groups - 1) / groups * (dev**2).sum(axis=0)


class _Regression(_StoredRows):
    """Constrained weighted least squares per target on stored rows (``regression``)."""

    def __init__(self, plan: _Plan):
        super().__init__(plan)
        self.log_mu = _log_kernel(plan.m)

    def _jackknife(self, z, w, y, delta, unit, sampled, a, b) -> np.ndarray:
        """Grouped (delete-a-group) jackknife variance of the constrained fit over the sampled units."""
        groups = min(self.k, JACKKNIFE_GROUPS)
        gid = unit[sampled] % groups
        zs, ws, ys = z[sampled], w[sampled], y[sampled]
        zw_all = zs * ws[:, None]
        a_s, b_s = zw_all.T @ zs, zw_all.T @ ys  # sampled part of the normal equations (weights carry 1/K)
        a_e, b_e = a - a_s, b - b_s  # exact (enumerated) part
        us = unit[sampled]
        basis = _contrast_basis(z.shape[1])
        betas = np.empty((groups, z.shape[1]))
        for g in range(groups):
            pick = gid == g
            n_g = len(np.unique(us[pick]))
            scale = self.k / max(self.k - n_g, 1)  # the other units re-weighted to stand for all K
            zw = zw_all[pick]
            betas[g] = _constrained_solve(
                a_e + scale * (a_s - zw.T @ zs[pick]), b_e + scale * (b_s - zw.T @ ys[pick]), delta, basis
            )[0]
        return _jackknife_variance(betas)

    def result(self, u_empty: np.ndarray, u_full: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        plan = self.plan
        d, m = plan.d, plan.m
        rows, phi, t, log_q, unit = self.stacked()
        inner = (t >= 1) & (t <= m - 1)
        k = max(self.k, 1)
        logw = self.log_mu[np.clip(t, 0, m)] - log_q - np.where(unit >= 0, log(k), 0.0)
        w = np.where(inner, np.exp(logw), 0.0)
        est = np.zeros((d, d))
        se = np.zeros((d, d))
        sampled = unit >= 0
        basis = _contrast_basis(m)
        for i in range(d):
            if plan.variant == "metagame":
                sel = rows[:, i] & inner
                cols = np.flatnonzero(np.arange(d) != i)
            else:
                sel = inner
                cols = np.arange(d)
            z = rows[sel][:, cols].astype(np.float64)
            wi = w[sel]
            y = phi[sel, i] - u_empty[i]
            delta = u_full[i] - u_empty[i]
            a = (z * wi[:, None]).T @ z
            b = (z * wi[:, None]).T @ y
            beta, identified = _constrained_solve(a, b, delta, basis, need_identified=True)
            cov_diag = np.zeros(len(cols))
            if plan.sampled:
                n_units_i = len(np.unique(unit[sel][sampled[sel]]))
                if n_units_i >= 2:
                    cov_diag = self._jackknife(z, wi, y, delta, unit[sel], sampled[sel], a, b)
                else:  # no sampled unit (or a single one) informs this target: no error estimate
                    cov_diag = np.full(len(cols), np.inf)
            cov_diag[~identified] = np.inf
            est[i, cols] = beta
            se[i, cols] = np.sqrt(cov_diag)
        return est, se


class _Stratified(_StoredRows):
    """Stratified Shapley estimator with a fitted surrogate as control variate (``stratified``).

    Per target game u (m players, boundary values u(∅), u(L) exact), with Δ_t(u)_j = mean_{|T|=t, j∈T} u(T) −
    mean_{|T|=t, j∉T} u(T) the Shapley value is φ_j = (u(L) − u(∅))/m + (1/m) Σ_{t=1}^{m−1} Δ_t(u)_j. A surrogate
    g(T) = Σ_k β_k T_k + Σ_{k<l} γ_kl T_k T_l (plus a free constant per size) is fitted by least squares with the
    Shapley kernel weight of each size spread over that size's rows; its Shapley value β_j + ½Σ_l γ_jl is exact,
    and the residual r = u − g enters through the same formula, exactly on enumerated sizes and by per-size
    sample means on sampled sizes (independent samples within a size: one per unit and target).
    """

    @staticmethod
    def _design(z: np.ndarray, pairwise: bool) -> np.ndarray:
        x = z.astype(np.float64)
        if not pairwise:
            return x
        iu = np.triu_indices(z.shape[1], 1)
        return np.concatenate([x, x[:, iu[0]] * x[:, iu[1]]], axis=1)

    @staticmethod
    def _fit(x: np.ndarray, y: np.ndarray, w: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Weighted least squares of y on x with one free intercept per size t (centering within sizes)."""
        xc, yc = x.copy(), y.copy()
        for s in np.unique(t):
            k = t == s
            xc[k] -= x[k].mean(axis=0)
            yc[k] -= y[k].mean()
        xw = xc * w[:, None]
        a = xw.T @ xc
        a[np.diag_indices_from(a)] += 1e-10 * max(np.trace(a) / len(a), 1e-300)
        try:
            return np.linalg.solve(a, xw.T @ yc)
        except np.linalg.LinAlgError:
            return np.linalg.lstsq(a, xw.T @ yc, rcond=None)[0]

    @staticmethod
    def _shapley_of(coef: np.ndarray, m: int, pairwise: bool) -> tuple[np.ndarray, float]:
        """Shapley values of the surrogate and its value g(L) on the full coalition."""
        sh = coef[:m].copy()
        total = float(coef.sum())
        if pairwise:
            iu = np.triu_indices(m, 1)
            g = np.zeros((m, m))
            g[iu] = coef[m:]
            sh += (g + g.T).sum(axis=1) / 2.0
        return sh, total

    @staticmethod
    def _deltas(
        r: np.ndarray, z: np.ndarray, t: np.ndarray, var: bool, sizes: list[int] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Σ_t Δ_t(r) over the sizes present, and the sampling variance of that sum (per-size sample means).

        With ``var``, every size in ``sizes`` (the sampled sizes) counts: where a size has fewer than 2 rows with
        j ∈ T or with j ∉ T (or none at all), the unseen Δ_t(r)_j is bounded by 2 s², s² the pooled within-size
        variance of the residuals (conservative: Δ_t(r) is a difference of means, not of single residuals).
        """
        m = z.shape[1]
        tot = np.zeros(m)
        v = np.zeros(m)
        present = np.unique(t)
        s2 = 0.0
        if var:
            ss, dof = 0.0, 0
            for s_ in present:
                k = t == s_
                if k.sum() >= 2:
                    ss += float(((r[k] - r[k].mean()) ** 2).sum())
                    dof += int(k.sum()) - 1
            if dof > 0:
                s2 = ss / dof
            elif len(r) >= 2:  # one row per size: the spread across sizes (levels included) bounds it
                s2 = float(np.var(r, ddof=1))
            else:
                s2 = float(np.mean(r**2)) if len(r) else 0.0
        for s in present:
            k = t == s
            rk = r[k] - r[k].mean()
            zk = z[k]
            n_in = zk.sum(axis=0)
            n_out = len(rk) - n_in
            s_in = rk @ zk
            m_in = np.where(n_in > 0, s_in / np.maximum(n_in, 1), 0.0)
            m_out = np.where(n_out > 0, -s_in / np.maximum(n_out, 1), 0.0)  # rk sums to zero within the size
            tot += m_in - m_out
            if var:
                dev_in = ((rk[:, None] - m_in[None, :]) ** 2 * zk).sum(axis=0)
                dev_out = ((rk[:, None] - m_out[None, :]) ** 2 * ~zk).sum(axis=0)
                v += dev_in / np.maximum(n_in - 1, 1) / np.maximum(n_in, 1)
                v += dev_out / np.maximum(n_out - 1, 1) / np.maximum(n_out, 1)
                v += np.where((n_in < 2) | (n_out < 2), 2.0 * s2, 0.0)  # too few rows: be conservative
        if var and sizes is not None:
            missing = len(set(int(a) for a in sizes) - set(int(a) for a in present))
            v += missing * 2.0 * s2  # sampled sizes that no row of this target reached
        return tot, v

    def _row(self, x, y, z, t, pairwise: bool, delta: float) -> np.ndarray:
        """The row estimate (before the gap is spread) from the given rows, gap spread evenly."""
        m = z.shape[1]
        cnt = np.bincount(t, minlength=m + 1).astype(np.float64)
        coef = self._fit(x, y, 1.0 / (t * (m - t) * cnt[t]), t)
        sh, g_full = self._shapley_of(coef, m, pairwise)
        corr, _ = self._deltas(y - x @ coef, z, t, var=False)
        row = sh + (delta - g_full) / m + corr / m
        return row - (row.sum() - delta) / m

    def _jackknife(self, x, y, z, t, un, sampled, pairwise: bool, delta: float) -> np.ndarray:
        """Delete-a-group jackknife variance of the row estimate over the sampled units (≤ 20 groups)."""
        units = np.unique(un[sampled])
        groups = min(len(units), JACKKNIFE_GROUPS)
        gid = np.searchsorted(units, un) % groups
        reps = np.stack([self._row(x[keep], y[keep], z[keep], t[keep], pairwise, delta)
                         for keep in (~(sampled & (gid == g)) for g in range(groups))])
        return _jackknife_variance(reps)

    def result(self, u_empty: np.ndarray, u_full: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        plan = self.plan
        d, m = plan.d, plan.m
        rows, phi, t_all, _, unit = self.stacked()
        inner = (t_all >= 1) & (t_all <= m - 1)
        sampled_t = [a - plan.offset for a in plan.sampled if 1 <= a - plan.offset <= m - 1]
        est = np.zeros((d, d))
        se = np.zeros((d, d))
        for i in range(d):
            if plan.variant == "metagame":
                sel = rows[:, i] & inner
                cols = np.flatnonzero(np.arange(d) != i)
            else:
                sel = inner
                cols = np.arange(d)
            z = rows[sel][:, cols]
            y = phi[sel, i]
            t = t_all[sel]
            un = unit[sel]
            delta = u_full[i] - u_empty[i]
            if len(y) == 0:  # no inner coalition: the even split, unknown error unless nothing was sampled
                est[i, cols] = delta / m
                se[i, cols] = np.inf if sampled_t else 0.0
                continue
            n_params = m + m * (m - 1) // 2
            pairwise = len(y) >= _PAIRWISE_ROWS_PER_PARAM * n_params
            x = self._design(z, pairwise)
            cnt = np.bincount(t, minlength=m + 1).astype(np.float64)
            w = 1.0 / (t * (m - t) * cnt[t])
            coef = self._fit(x, y, w, t)
            sh, g_full = self._shapley_of(coef, m, pairwise)
            r = y - x @ coef
            corr, _ = self._deltas(r, z, t, var=False)
            row = sh + (u_full[i] - g_full - u_empty[i]) / m + corr / m
            var = np.zeros(m)
            sampled = un >= 0
            if sampled_t and len(np.unique(un[sampled])) < 2:
                var = np.full(m, np.inf)  # fewer than 2 sampled units reached this target: no error estimate
            elif sampled.any():
                # honest residuals: each sampled row's residual from a surrogate fitted without its fold
                folds = min(CROSSFIT_FOLDS, self.k)
                fid = un % folds
                r_oof = np.empty(int(sampled.sum()))
                idx_s = np.flatnonzero(sampled)
                for f_ in range(folds):
                    out = sampled & (fid == f_)
                    if not out.any():
                        continue
                    keep = ~out
                    cnt_k = np.bincount(t[keep], minlength=m + 1).astype(np.float64)
                    w_k = 1.0 / (t[keep] * (m - t[keep]) * np.maximum(cnt_k[t[keep]], 1.0))
                    c_k = self._fit(x[keep], y[keep], w_k, t[keep])
                    r_oof[np.searchsorted(idx_s, np.flatnonzero(out))] = (y[out] - x[out] @ c_k)
                _, var = self._deltas(r_oof, z[sampled], t[sampled], var=True, sizes=sampled_t)
                var /= m**2
                n_units_i = len(np.unique(un[sampled]))
                if n_units_i < _SMALL_SAMPLE_ROWS_PER_PARAM * (x.shape[1] + len(sampled_t)):
                    # few rows per surrogate parameter: the surrogate itself varies with the sample, which the
                    # residual variance above ignores; a delete-a-group jackknife of the whole estimate sees it
                    var = np.maximum(var, self._jackknife(x, y, z, t, un, sampled, pairwise, u_full[i] - u_empty[i]))
            # exact row sums: spread the gap in proportion to each entry's variance (evenly over unknown ones)
            gap = row.sum() - delta
            if np.isinf(var).any():
                row = row - np.where(np.isinf(var), gap / np.isinf(var).sum(), 0.0)
            else:
                row = row - (gap * var / var.sum() if var.sum() > 0 else gap / m)
            est[i, cols] = row
            se[i, cols] = np.sqrt(var)
        return est, se


# ----------------------------------------------------------------------------- driver


def _resolve(estimator: str, d: int, value: Value) -> str:
    if estimator not in ("auto", "stratified", "regression", "montecarlo"):
        raise MetagameError(
            f"unknown estimator {estimator!r}; use 'auto', 'stratified', 'regression' or 'montecarlo'"
        )
    if estimator == "auto":
        if value != "shapley":
            return "montecarlo"
        if d <= STRATIFIED_MAX_PLAYERS:
            return "stratified"
        return "regression" if d <= REGRESSION_MAX_PLAYERS else "montecarlo"
    if estimator in ("regression", "stratified") and value != "shapley":
        raise MetagameError(
            f"estimator={estimator!r} fits the Shapley value only; for value='banzhaf' use estimator='montecarlo' "
            "(or 'auto')"
        )
    return estimator


def estimate_meta_attributions(
    model: ModelAdapter,
    method: AttributionMethod,
    *,
    variant: Variant = "metagame",
    value: Value = "shapley",
    budget: int,
    seed: int | None = None,
    estimator: EstimatorName = "auto",
    tol: float | None = None,
    progress: bool | None = None,
    checkpoint: str | os.PathLike | None = None,
    batch_size: int | None = None,
) -> Estimate:
    """Estimate M[i, j] = φ_{j→i} from at most ``budget`` attribution calls shared by all targets.

    M[i, j] = Σ_{T⊆N∖i} c_j(T) φ_i(x_{T∪i}) (c: Shapley or Banzhaf weights of the (d−1)-player game),
    estimated from one stream of coalitions; see the module docstring for the design.

    Args:
        model: the model adapter (players, masking).
        method: the inner attribution method. Total model cost ≈ attribution calls × rows per call of the
            inner method (e.g. IG ``n_steps``, kernel_shap/lime ``n_samples``); the calls are ≤ ``budget``.
        variant: ``"metagame"`` or ``"serial"``.
        value: ``"shapley"`` or ``"banzhaf"`` (Banzhaf: ``montecarlo`` only; rows need not sum).
        budget: attribution calls, at least d + 1 (metagame: N and the d singletons are always paid;
            serial: d + 2, with the empty coalition).
        seed: seed of the coalition sampler (None: drawn once and recorded in ``params["seed_used"]``).
        estimator: ``"auto"`` (Shapley: stratified for d ≤ 24, regression for d ≤ 64; else montecarlo),
            ``"stratified"``, ``"regression"``, ``"montecarlo"``.
        tol: stop early once every standard error is below ``tol`` (checked after each batch).
        progress: tqdm progress bar; None shows one on a terminal for runs longer than 2 s.
        checkpoint: ``.npz`` path; evaluated coalitions and attribution vectors are saved there every
            30 s and at the end (also on errors/interrupts), and a rerun with the same parameters resumes
            from them, paying only for the calls not yet made.
        batch_size: units per batch (default: adapted to d and the budget).

    Returns:
        :class:`Estimate` with ``matrix``, ``first_order`` (φ(x)), ``stderr`` (0: exact; ``inf``: not identified by
        the calls made, see the module docstring), ``n_attribution_calls`` and ``params`` (estimator, n_calls,
        n_new_calls, batches, stopped_early, enumerated sizes, unidentified_entries, stderr_note, ...).
    """
    d = int(model.n_players)
    if variant not in ("metagame", "serial"):
        raise MetagameError(f"unknown variant {variant!r}; use 'metagame' (default) or 'serial'")
    if value not in ("shapley", "banzhaf"):
        raise MetagameError(f"unknown value {value!r}; use 'shapley' (default) or 'banzhaf'")
    if isinstance(budget, bool) or not isinstance(budget, (int, np.integer)):
        raise MetagameError(f"budget must be a positive integer number of attribution calls; got {budget!r}")
    budget = int(budget)
    if budget <= 0:
        raise MetagameError(f"budget must be a positive number of attribution calls; got {budget}")
    minimum = d + 1 if variant == "metagame" else d + 2
    if budget < minimum:
        what = "the full coalition and the d singletons" + ("" if variant == "metagame" else " and the empty coalition")
        raise MetagameError(
            f"budget={budget} is too small for d={d} players: at least {minimum} attribution calls are needed "
            f"({what}); pass budget >= {minimum}"
        )
    if tol is not None and not tol > 0:
        raise MetagameError(f"tol must be a positive number (a standard-error threshold); got {tol!r}")
    name = _resolve(estimator, d, value)
    if seed is None:
        seed_used = int(np.random.SeedSequence().generate_state(1)[0])
    else:
        seed_used = int(seed)
    plan = _make_plan(d, budget, variant, value, share_power=0.0 if name == "stratified" else -1.0)
    rng = np.random.default_rng(np.random.SeedSequence([seed_used, d, 0x6D657461]))
    if batch_size is None:
        batch_size = int(np.clip(budget // 40, 32, max(32, 2**20 // max(d, 1))))
        batch_size = min(batch_size, 4096)
    ck_params = {
        "d": d, "players": list(model.players), "model": model.describe(), "method": method.name,
        "method_params": method.params(), "variant": variant, "value": value, "budget": budget,
        "seed": seed_used, "estimator": name, "batch_size": batch_size,
    }
    if checkpoint is not None and seed is None:
        raise MetagameError("checkpoint needs a fixed seed to resume reproducibly; pass seed=<int>")
    key = checkpoint_key(ck_params)
    replay = _load_checkpoint(str(checkpoint), key, d) if checkpoint is not None else None

    game = AttributionGame(model, method)
    ev = _Evaluator(game, budget, d, replay, record=checkpoint is not None or name == "regression")
    acc: Any = {"montecarlo": _MonteCarlo, "regression": _Regression, "stratified": _Stratified}[name](plan)
    bar = progress_bar(budget, f"meta-attributions ({name})", progress, unit="call")
    last_save = time.monotonic()
    batches = 0
    stopped_early = False
    n_units = 0
    units_per_target = np.zeros(d)  # sampled units whose coalitions feed each target's game

    def save(force: bool = False) -> None:
        nonlocal last_save
        if checkpoint is not None and (force or time.monotonic() - last_save > CHECKPOINT_EVERY_S):
            _save_checkpoint(str(checkpoint), key, ev)
            last_save = time.monotonic()

    def evaluate(rows: np.ndarray) -> np.ndarray:
        before = ev.used
        out = ev(rows)
        bar.update(ev.used - before)
        return out

    try:
        # mandatory and enumerated sizes (exact strata)
        base_rows = [np.ones((1, d), bool), np.eye(d, dtype=bool)]
        if variant == "serial":
            base_rows.insert(0, np.zeros((1, d), bool))
        base = np.concatenate(base_rows)
        base_phi = evaluate(base)
        full_phi = base_phi[-1 - d] if variant == "metagame" else base_phi[1]
        single_phi = base_phi[-d:]
        if variant == "metagame":
            u_empty = single_phi[np.arange(d), np.arange(d)].copy()
        else:
            u_empty = base_phi[0].copy()
        u_full = full_phi.copy()
        acc.add_exact(_Rows(plan, base, base_phi, None))
        for a in plan.enumerated:
            if a in plan.mandatory:
                continue
            for rows in _sizes_rows(d, a, 4096):
                acc.add_exact(_Rows(plan, rows, evaluate(rows), None))
                save()
        # sampled units, in batches
        max_units = 8 * budget
        while plan.sampled and ev.remaining > 0 and n_units < max_units:
            if isinstance(acc, _MonteCarlo):
                acc.set_control(u_empty, u_full)
            rows, unit = _draw_units(rng, plan, batch_size)
            cost = ev.cost(rows)
            last = cost[-1] > ev.remaining
            if last:
                # keep whole units whose rows fit into the remaining budget
                fits = cost <= ev.remaining
                unit_ok = np.ones(batch_size, dtype=bool)
                np.logical_and.at(unit_ok, unit, fits)
                n_keep = int(np.argmin(unit_ok)) if not unit_ok.all() else batch_size
                keep = unit < n_keep
                rows, unit = rows[keep], unit[keep]
                batch_units = n_keep
            else:
                batch_units = batch_size
            if batch_units == 0:
                break
            phi = evaluate(rows)
            units_per_target += rows.sum(axis=0) if variant == "metagame" else batch_units
            acc.add_units(_Rows(plan, rows, phi, plan.log_q[rows.sum(axis=1)]), unit, batch_units)
            n_units += batch_units
            batches += 1
            save()
            if last:
                break
            if tol is not None:
                se = acc.result()[1] if isinstance(acc, _MonteCarlo) else acc.result(u_empty, u_full)[1]
                if np.all(se < tol):
                    stopped_early = True
                    break
    finally:
        bar.close()
        if checkpoint is not None:
            save(force=True)

    if isinstance(acc, _MonteCarlo):
        matrix, stderr = acc.result()
    else:
        matrix, stderr = acc.result(u_empty, u_full)
    if variant == "metagame":
        idx = np.arange(d)
        matrix[idx, idx] = u_empty
        stderr[idx, idx] = 0.0
    off = ~np.eye(d, dtype=bool) if variant == "metagame" else np.ones((d, d), dtype=bool)
    if plan.sampled:
        # few units: scale so that ±1.96·stderr is the Student-t 95% interval with (units − 1) degrees of freedom
        from scipy.stats import t as student_t

        dof = np.maximum(units_per_target - 1.0, 1.0)
        stderr = stderr * np.where(off, (student_t.ppf(0.975, dof) / 1.959963984540054)[:, None], 1.0)
    if value == "shapley":
        # efficiency holds by construction; remove what rounding left (evenly over the estimated entries)
        gap = matrix.sum(axis=1) - (u_full if variant == "metagame" else u_full - u_empty)
        matrix -= np.where(off, (gap / off.sum(axis=1))[:, None], 0.0)
    unidentified = int(np.isinf(stderr[off]).sum())
    extras: dict[str, np.ndarray] = {}
    if variant == "serial":
        extras["attribution_at_baseline"] = u_empty.copy()
    params = {
        "estimator": name,
        "estimator_requested": estimator,
        "n_calls": int(ev.used),
        "n_new_calls": int(game.n_calls),
        "resumed_calls": int(ev.replay_pos),
        "batches": batches,
        "batch_size": batch_size,
        "units": n_units,
        "stopped_early": stopped_early,
        "tol": tol,
        "seed_used": seed_used,
        "enumerated_sizes": [int(a) for a in plan.enumerated],
        "sampled_sizes": [int(a) for a in plan.sampled],
        "unidentified_entries": unidentified,
    }
    if unidentified:
        params["stderr_note"] = (
            f"{unidentified} of {int(off.sum())} estimated entries are not identified by the {int(ev.used)} calls "
            "(too few sampled coalitions reach them): their stderr is inf and their value is the row's efficiency "
            "gap shared out (the even split φ_i/… when nothing was sampled); raise the budget"
        )
    return Estimate(matrix, u_full.copy(), stderr, int(ev.used), params, extras)
