"""``sparse`` (Shapley only): KernelSHAP's constrained regression on the residuals of a cross-fitted sparse
polynomial surrogate of each target's game.

Per target game u (m players, values y = u − u(∅) on its distinct coalitions z ∈ {0, 1}^m), the surrogate is a
polynomial g(z) = h(|z|) + Σ_S c_S Π_{l∈S} z_l (h a step function of the size with h(0) = 0, so g(∅) = 0 = y(∅))
whose terms S are chosen by forward selection: each round scores every main and every pair against the current
residual r ((fᵀr)² / within-size-bin Σ f², the pairs by one product (z·r)ᵀz on at most ``SCREEN_ROWS`` rows), and
every chosen term of order 2 … ``MAX_ORDER`` − 1 extended by one player (hierarchy), adds the best ``ROUND_SHARE`` of
the current size (at least ``MIN_ADD``), and refits least squares. The sampled coalitions are split into
``FOLDS`` folds; every round also refits without each fold and scores the held-out rows, and the path stops at the round with the least held-out error (after ``PATIENCE`` rounds
without improvement). g_k, fitted without fold k, predicts the rows of fold k (cross-fitting); ḡ = mean_k g_k
predicts the exact rows. Shapley(g) is closed form (a term c_S gives c_S/|S| to every l ∈ S; h, symmetric, gives
h(m)/m to everyone, with h(m) set so that g(N) = y(N)), so

    φ̂ = Shapley(ḡ) + KernelSHAP(u − g_{k(row)}) with row total δ − ḡ(N),

(0 by that choice of h(m)), the second term being :class:`~.regression.Regression`'s fit (Horvitz–Thompson
weights, exact row sums, its delete-a-group jackknife, Student-t factor and ``inf`` rules) on the out-of-fold residuals. A good surrogate leaves
small residuals and a small error; a bad one leaves KernelSHAP's error, and the jackknife sees either. Targets with
fewer than ``MIN_ROWS`` distinct sampled coalitions get no surrogate (plain KernelSHAP). Memory O(budget·d + d²);
time O(rounds·n·m²) per target for n distinct rows (the pair scores).
"""

from __future__ import annotations

import numpy as np

from .base import unique_rows
from .plan import Plan
from .regression import Regression

#: folds of the sampled coalitions (cross-fitting and the held-out error of the selection path)
FOLDS = 5
#: distinct sampled coalitions a target needs before it gets a surrogate
MIN_ROWS = 40
#: rows holding a pair (both players in) needed before the pair is a candidate
MIN_PAIR_ROWS = 5
#: each round adds this share of the current number of terms (at least MIN_ADD)
ROUND_SHARE = 0.5
MIN_ADD = 4
#: rounds without a better held-out error before the path stops
PATIENCE = 2
#: terms at most, as a share of the rows a fold's fit sees
MAX_TERMS_SHARE = 0.4
#: distinct rows per size bin (consecutive local sizes share one intercept until they hold this many)
BIN_ROWS = 25
#: at most this many rows enter the candidates' scores (the fits use every row)
SCREEN_ROWS = 2000
#: calls per player from which the plan draws middle sizes too (share_power 0)
MIDDLE_SIZES_BUDGET = 8
#: highest order of a surrogate term (terms beyond pairs grow from chosen ones, one player at a time)
MAX_ORDER = 4
#: ridge, relative to the mean diagonal of the normal matrix (numerical only)
RIDGE = 1e-8


def _solve(g: np.ndarray, c: np.ndarray) -> np.ndarray:
    lam = RIDGE * max(float(np.mean(np.diag(g))), 1e-300)
    try:
        return np.linalg.solve(g + lam * np.eye(len(c)), c)
    except np.linalg.LinAlgError:
        return np.linalg.lstsq(g, c, rcond=None)[0]


def size_bins(t: np.ndarray, min_rows: int) -> np.ndarray:
    """Bin id of every row: consecutive local sizes merged until each bin holds ``min_rows`` rows."""
    sizes, counts = np.unique(t, return_counts=True)
    bin_of, b, acc = {}, 0, 0
    for s_, c in zip(sizes.tolist(), counts.tolist()):
        bin_of[s_] = b
        acc += c
        if acc >= min_rows:
            b, acc = b + 1, 0
    if acc and b > 0:  # a short last bin joins the one before
        for s_ in bin_of:
            if bin_of[s_] == b:
                bin_of[s_] = b - 1
    return np.array([bin_of[v] for v in t.tolist()], dtype=np.int64)


def fit_surrogate(x: np.ndarray, y: np.ndarray, bins: np.ndarray, fold: np.ndarray, folds: int):
    """Forward selection of mains, pairs and (by hierarchy) terms up to ``MAX_ORDER`` on ``x`` ``[n, m]`` (0/1),
    ``y`` ``[n]``, on top of one intercept per size bin (``bins``); ``fold`` −1 = always fitted.

    Returns ``(terms [p, MAX_ORDER] (see :func:`padded`), coef [folds, n_bins + p])`` (bin intercepts first): the
    path's step with the least held-out error, refitted without each fold.
    """
    n, m = x.shape
    n_bins = int(bins.max()) + 1
    # fit rows ordered by fold (every fold a slice; the always-fitted rows last)
    part = np.where(fold >= 0, fold, folds)
    order = np.argsort(part, kind="stable")
    x, y, bins, part = x[order], y[order], bins[order], part[order]
    edges = np.searchsorted(part, np.arange(folds + 2))
    parts = [slice(int(edges[k]), int(edges[k + 1])) for k in range(folds + 1)]
    xf = np.ascontiguousarray(x, dtype=np.float64)
    # screening rows: at most SCREEN_ROWS (a fixed spread of the rows), ordered by bin (every bin a slice)
    scr = np.arange(n) if n <= SCREEN_ROWS else np.linspace(0, n - 1, SCREEN_ROWS).round().astype(np.int64)
    scr = scr[np.argsort(bins[scr], kind="stable")]
    xs = xf[scr].astype(np.float32)  # the screening products (scores only rank candidates)
    per_bin = np.bincount(bins[scr], minlength=n_bins).astype(np.float64)
    bedges = np.concatenate([[0], np.cumsum(per_bin).astype(np.int64)])
    bslices = [(slice(int(bedges[b]), int(bedges[b + 1])), per_bin[b]) for b in range(n_bins) if per_bin[b] > 0]

    def within_spread(f: np.ndarray, counts: np.ndarray) -> np.ndarray:
        """Σ over screening rows of the within-bin squared deviations of the products f_a·z_l (f binary)."""
        out = counts.astype(np.float64).copy()
        for sl, nb in bslices:
            out -= (f[sl].T @ xs[sl]).astype(np.float64) ** 2 / nb
        return out

    pair_counts = (xs.T @ xs).astype(np.float64)
    spread = within_spread(xs, pair_counts)
    floor = 1e-9 * max(float(spread.max()), 1e-300)
    taken = (spread < floor) | (pair_counts < MIN_PAIR_ROWS)
    taken[np.tril_indices(m, -1)] = True
    n_train = n - max(parts[k].stop - parts[k].start for k in range(folds))
    max_terms = max(int(MAX_TERMS_SHARE * n_train) - n_bins, 0)
    terms: list[tuple[int, ...]] = []
    chosen: set[tuple[int, ...]] = set()
    cols = np.zeros((n, n_bins))
    cols[np.arange(n), bins] = 1.0
    grams = [cols[sl].T @ cols[sl] for sl in parts]
    rhss = [cols[sl].T @ y[sl] for sl in parts]

    def fit():
        gram, rhs = sum(grams), sum(rhss)
        coef = np.empty((folds, cols.shape[1]))
        err = 0.0
        for k in range(folds):
            coef[k] = _solve(gram - grams[k], rhs - rhss[k])
            err += float(np.sum((y[parts[k]] - cols[parts[k]] @ coef[k]) ** 2))
        return coef, err, y - cols @ _solve(gram, rhs)

    coef, best_err, r = fit()
    best = (np.zeros((0, MAX_ORDER), dtype=np.int64), coef)
    stall = 0
    while len(terms) < max_terms:
        rs = r[scr].astype(np.float32)
        score = ((xs * rs[:, None]).T @ xs).astype(np.float64)  # Σ r z_j z_k; diagonal Σ r z_j
        with np.errstate(divide="ignore", invalid="ignore"):
            score = score**2 / spread
        score[taken] = -1.0
        # higher orders by hierarchy: a chosen term of order 2 … MAX_ORDER − 1 times any further player l
        parents = [t for t in terms if 2 <= len(t) < MAX_ORDER]
        tscore = np.zeros((0, m))
        if parents:
            ps = np.ones((len(scr), len(parents)), dtype=np.float32)
            for c, t in enumerate(parents):
                for l_ in t:
                    ps[:, c] *= xs[:, l_]
            cnt = (ps.T @ xs).astype(np.float64)  # screening rows holding the extended term
            num = ((ps * rs[:, None]).T @ xs).astype(np.float64)
            tspread = within_spread(ps, cnt)
            with np.errstate(divide="ignore", invalid="ignore"):
                tscore = np.where((cnt >= MIN_PAIR_ROWS) & (tspread > floor), num**2 / tspread, -1.0)
            for c, t in enumerate(parents):
                tscore[c, list(t)] = -1.0
        add = min(max(MIN_ADD, int(ROUND_SHARE * len(terms))), max_terms - len(terms))
        flat = np.concatenate([score.ravel(), tscore.ravel()])
        pick = np.argpartition(-flat, min(add, flat.size - 1))[:add]
        pick = pick[flat[pick] > 0]
        new: list[tuple[int, ...]] = []
        for q in pick.tolist():
            if q < m * m:
                j, k = divmod(q, m)
                taken[j, k] = True
                term = (j,) if j == k else (j, k)
            else:
                a_, l_ = divmod(q - m * m, m)
                term = tuple(sorted((*parents[a_], l_)))
            if term not in chosen:
                chosen.add(term)
                new.append(term)
        if not new:
            break
        terms.extend(new)
        add_cols = term_values(x, padded(new))
        for k, sl in enumerate(parts):
            cross = cols[sl].T @ add_cols[sl]
            grams[k] = np.block([[grams[k], cross], [cross.T, add_cols[sl].T @ add_cols[sl]]])
            rhss[k] = np.concatenate([rhss[k], add_cols[sl].T @ y[sl]])
        cols = np.concatenate([cols, add_cols], axis=1)
        coef, err, r = fit()
        if err < best_err * (1.0 - 1e-9):
            best_err, best, stall = err, (padded(terms), coef), 0
        else:
            stall += 1
            if stall >= PATIENCE:
                break
    return best


def padded(terms) -> np.ndarray:
    """Terms (tuples of distinct players) as ``[p, MAX_ORDER]``, each padded with its first player."""
    out = np.empty((len(terms), MAX_ORDER), dtype=np.int64)
    for r, t in enumerate(terms):
        out[r] = list(t) + [t[0]] * (MAX_ORDER - len(t))
    return out


def term_values(x: np.ndarray, terms: np.ndarray) -> np.ndarray:
    """Columns Π_{l∈S} z_l of padded terms (``[n, p]``)."""
    out = x[:, terms[:, 0]].copy()
    for c in range(1, terms.shape[1]):
        out &= x[:, terms[:, c]]
    return out.astype(np.float64)


def term_shapley(terms: np.ndarray, coef: np.ndarray, m: int) -> np.ndarray:
    """Shapley value of Σ coef·Π_{l∈S} z_l in 0/1 coding (padded terms): coef/|S| to every player of S."""
    out = np.zeros(m)
    extra = terms[:, 1:] != terms[:, :1]  # the padding repeats the first player
    share = coef / (1 + extra.sum(axis=1))
    np.add.at(out, terms[:, 0], share)
    for c in range(1, terms.shape[1]):
        np.add.at(out, terms[:, c], np.where(extra[:, c - 1], share, 0.0))
    return out


class Sparse(Regression):
    """KernelSHAP on the residuals of a cross-fitted sparse pairwise surrogate (``sparse``); see the module text."""

    name = "sparse"

    @classmethod
    def share_power(cls, d: int, budget: int) -> float:
        """Middle sizes (share_power 0) carry the interactions the surrogate needs once each target gets enough rows
        for one (budget ≥ ``MIDDLE_SIZES_BUDGET``·d); below, KernelSHAP's extreme sizes (−1)."""
        return 0.0 if budget >= MIDDLE_SIZES_BUDGET * d else -1.0

    def __init__(self, plan: Plan):
        super().__init__(plan)
        self.n_terms: dict[int, int] = {}

    def control(self, i, z, y, delta, unit, coalition=None):
        zb = z.astype(bool)
        m = zb.shape[1]
        sampled = unit >= 0
        if not self.plan.sampled or int(sampled.sum()) == 0:
            return y, delta, 0.0
        # distinct coalitions for the fit; folds by coalition, exact rows in every fit
        if coalition is None:
            rep, inverse = unique_rows(zb)  # first row of each coalition, coalition of each row
        else:  # the same, from ids numbered in unique_rows's order
            rep, inverse = np.unique(coalition, return_index=True, return_inverse=True)[1:]
            inverse = np.asarray(inverse).ravel()
        n_distinct = len(rep)
        if int(sampled[rep].sum()) < MIN_ROWS:
            return y, delta, 0.0
        rng = np.random.default_rng([i, m, 0x5A])
        fold_of = np.where(unit[rep] >= 0, rng.permutation(n_distinct) % FOLDS, -1)
        bins = size_bins(zb[rep].sum(axis=1), BIN_ROWS)
        terms, coef = fit_surrogate(zb[rep], y[rep], bins, fold_of, FOLDS)
        n_bins = int(bins.max()) + 1
        self.n_terms[i] = len(terms)
        if len(terms) == 0:
            return y, delta, 0.0
        mean = coef.mean(axis=0)
        f = np.concatenate([np.eye(n_bins)[bins[inverse]], term_values(zb, terms)], axis=1)
        row_fold = fold_of[inverse]
        g = np.where(row_fold >= 0, np.einsum("np,np->n", f, coef[np.maximum(row_fold, 0)]), f @ mean)
        poly = mean[n_bins:]
        # g(N) = δ by its full-coalition intercept, a symmetric term worth (δ − poly(N))/m to every player
        prior = term_shapley(terms, poly, m) + (delta - float(poly.sum())) / m
        return y - g, 0.0, prior


__all__ = ["Sparse", "fit_surrogate", "term_shapley"]
