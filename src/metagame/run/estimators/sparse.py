"""``sparse`` (Shapley only): KernelSHAP's constrained regression on the residuals of a cross-fitted sparse
polynomial surrogate of each target's game.

Per target game u (m players, values y = u − u(∅) on its distinct coalitions z ∈ {0, 1}^m), the surrogate is a
polynomial g(z) = Σ_j a_j z_j + Σ_{j<k} b_jk z_j z_k without constant (g(∅) = 0 = y(∅)) whose terms are chosen by
forward selection: each round scores every main and every pair against the current residual r (|fᵀr|/‖f‖, the
pairs by one product (z·r)ᵀz), adds the best ``ROUND_SHARE`` of the current size (at least ``MIN_ADD``), and refits
least squares. The sampled coalitions are split into ``FOLDS`` folds; every round also refits without each fold and
scores the held-out rows, and the path stops at the round with the least held-out error (after ``PATIENCE`` rounds
without improvement). g_k, fitted without fold k, predicts the rows of fold k (cross-fitting); ḡ = mean_k g_k
predicts the exact rows. Shapley(g) is closed form (a main term gives a_j to j, a pair b_jk/2 to j and k), so

    φ̂ = Shapley(ḡ) + KernelSHAP(u − g_{k(row)}) with row total δ − ḡ(N),

the second term being :class:`~.regression.Regression`'s fit (Horvitz–Thompson weights, exact row sums, its
delete-a-group jackknife, Student-t factor and ``inf`` rules) on the out-of-fold residuals. A good surrogate leaves
small residuals and a small error; a bad one leaves KernelSHAP's error, and the jackknife sees either. Targets with
fewer than ``MIN_ROWS`` distinct sampled coalitions get no surrogate (plain KernelSHAP). Memory O(budget·d + d²);
time O(rounds·n·m²) per target for n distinct rows (the pair scores).
"""

from __future__ import annotations

import numpy as np

from .base import distinct_rows
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
    """Forward selection of mains and pairs on ``x`` ``[n, m]`` (0/1), ``y`` ``[n]``, on top of one intercept per size
    bin (``bins``); ``fold`` −1 = always fitted.

    Returns ``(terms [p, 2] (k = j for a main), coef [folds, n_bins + p])`` (bin intercepts first): the path's step
    with the least held-out error, refitted without each fold.
    """
    n, m = x.shape
    order = np.argsort(bins, kind="stable")  # rows by bin: every bin is a slice
    x, y, bins, fold = x[order], y[order], bins[order], fold[order]
    xf = np.ascontiguousarray(x, dtype=np.float64)
    x32 = xf.astype(np.float32)  # the screening products (scores only rank candidates)
    n_bins = int(bins.max()) + 1
    dummies = np.zeros((n, n_bins))
    dummies[np.arange(n), bins] = 1.0
    per_bin = dummies.sum(axis=0)
    edges = np.concatenate([[0], np.cumsum(per_bin).astype(np.int64)])
    slices = [slice(int(edges[b]), int(edges[b + 1])) for b in range(n_bins)]
    # within-bin sums of squares of every main (diagonal) and pair: Σ f² − Σ_b (Σ_b f)²/n_b
    pair_counts = xf.T @ xf
    spread = pair_counts.copy()
    for b, sl in enumerate(slices):
        xb = x32[sl]
        spread -= (xb.T @ xb).astype(np.float64) ** 2 / per_bin[b]
    taken = spread < 1e-9 * max(float(spread.max()), 1e-300)
    taken |= pair_counts < MIN_PAIR_ROWS
    taken[np.tril_indices(m, -1)] = True
    in_fold = [fold == k for k in range(folds)]
    n_train = min(n - int(f.sum()) for f in in_fold)
    max_terms = max(int(MAX_TERMS_SHARE * n_train) - n_bins, 0)
    terms: list[tuple[int, int, int]] = []
    cols = dummies

    def fit(cols):
        gram = cols.T @ cols
        rhs = cols.T @ y
        coef = np.empty((folds, cols.shape[1]))
        err = 0.0
        for k in range(folds):
            ck, yk = cols[in_fold[k]], y[in_fold[k]]
            coef[k] = _solve(gram - ck.T @ ck, rhs - ck.T @ yk)
            err += float(np.sum((yk - ck @ coef[k]) ** 2))
        return coef, err, y - cols @ _solve(gram, rhs)

    coef, best_err, r = fit(cols)
    best = (np.zeros((0, 3), dtype=np.int64), coef)
    stall = 0
    triples: set[tuple[int, int, int]] = set()
    while len(terms) < max_terms:
        score = ((x32 * r[:, None].astype(np.float32)).T @ x32).astype(np.float64)  # Σ r z_j z_k; diagonal Σ r z_j
        with np.errstate(divide="ignore", invalid="ignore"):
            score = score**2 / spread
        score[taken] = -1.0
        # triples by hierarchy: a chosen pair (j, k) times any third player l
        parents = [(j, k) for j, k, l in terms if j != k and k == l]
        if parents:
            pj = np.array(parents)
            pcols = xf[:, pj[:, 0]] * xf[:, pj[:, 1]]
            num = (pcols * r[:, None]).T @ xf
            cnt = pcols.T @ xf  # rows holding the triple
            tspread = cnt.copy()
            p32 = pcols.astype(np.float32)
            for b, sl in enumerate(slices):
                tspread -= (p32[sl].T @ x32[sl]).astype(np.float64) ** 2 / per_bin[b]
            with np.errstate(divide="ignore", invalid="ignore"):
                tscore = np.where((cnt >= MIN_PAIR_ROWS) & (tspread > 1e-9 * max(float(spread.max()), 1e-300)),
                                  num**2 / tspread, -1.0)
            tscore[np.arange(len(pj)), pj[:, 0]] = -1.0
            tscore[np.arange(len(pj)), pj[:, 1]] = -1.0
            for (j, k), row in zip(parents, tscore):
                for trip in triples:
                    if j in trip and k in trip:
                        row[sum(trip) - j - k] = -1.0
        else:
            tscore = np.zeros((0, m))
        add = min(max(MIN_ADD, int(ROUND_SHARE * len(terms))), max_terms - len(terms))
        flat = np.concatenate([score.ravel(), tscore.ravel()])
        pick = np.argpartition(-flat, min(add, flat.size - 1))[:add]
        pick = pick[flat[pick] > 0]
        if len(pick) == 0:
            break
        new = []
        for q in pick.tolist():
            if q < m * m:
                j, k = divmod(q, m)
                taken[j, k] = True
                new.append((j, k, k))
            else:
                a, l = divmod(q - m * m, m)
                trip = tuple(sorted((*parents[a], l)))
                if trip in triples:
                    continue
                triples.add(trip)
                new.append(trip)
        terms.extend(new)
        nt = np.array(new, dtype=np.int64)
        cols = np.concatenate([cols, xf[:, nt[:, 0]] * xf[:, nt[:, 1]] * xf[:, nt[:, 2]]], axis=1)
        coef, err, r = fit(cols)
        if err < best_err * (1.0 - 1e-9):
            best_err, best, stall = err, (np.array(terms, dtype=np.int64), coef), 0
        else:
            stall += 1
            if stall >= PATIENCE:
                break
    return best


def term_values(x: np.ndarray, terms: np.ndarray) -> np.ndarray:
    """Columns Π z over each term (``[n, p]``; a term is three player indices, repeated for mains and pairs)."""
    return (x[:, terms[:, 0]] & x[:, terms[:, 1]] & x[:, terms[:, 2]]).astype(np.float64)


def term_shapley(terms: np.ndarray, coef: np.ndarray, m: int) -> np.ndarray:
    """Shapley value of Σ coef·Π_{l∈S} z_l in 0/1 coding: coef/|S| to every player of S."""
    out = np.zeros(m)
    size = 1 + (terms[:, 1] != terms[:, 0]) + ((terms[:, 2] != terms[:, 1]) & (terms[:, 2] != terms[:, 0]))
    share = coef / size
    np.add.at(out, terms[:, 0], share)
    np.add.at(out, terms[:, 1], np.where(terms[:, 1] != terms[:, 0], share, 0.0))
    np.add.at(out, terms[:, 2], np.where((terms[:, 2] != terms[:, 1]) & (terms[:, 2] != terms[:, 0]), share, 0.0))
    return out


class Sparse(Regression):
    """KernelSHAP on the residuals of a cross-fitted sparse pairwise surrogate (``sparse``); see the module text."""

    name = "sparse"

    def __init__(self, plan: Plan):
        super().__init__(plan)
        self.n_terms: dict[int, int] = {}

    def control(self, i, z, y, delta, unit):
        zb = z.astype(bool)
        m = zb.shape[1]
        sampled = unit >= 0
        if not self.plan.sampled or int(sampled.sum()) == 0:
            return y, delta, 0.0
        keep = distinct_rows(zb)
        n_sampled = int(sampled[keep].sum())
        if n_sampled < MIN_ROWS:
            return y, delta, 0.0
        # distinct coalitions for the fit; folds by coalition, exact rows in every fit
        _, inverse = np.unique(np.packbits(zb, axis=1), axis=0, return_inverse=True)
        inverse = np.asarray(inverse).ravel()
        n_distinct = int(inverse.max()) + 1
        rep = np.zeros(n_distinct, dtype=np.int64)
        rep[inverse[::-1]] = np.arange(len(inverse))[::-1]  # first row of each coalition
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
