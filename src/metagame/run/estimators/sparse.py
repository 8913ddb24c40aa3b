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
time per target for n distinct rows: O(rounds · min(n, ``SCREEN_ROWS``) · m²) for the pair scores (the within-bin
spreads once, the extended terms' counts and spreads once per new parent), O(n·p·q + p³) per round of q new terms
for the fits (the bin intercepts' diagonal block eliminated in closed form, the p term columns' normal pieces grown
per fold), and Regression's one pass of symmetric O(n·m²) products for its normal equations and jackknife groups.
"""

from __future__ import annotations

import numpy as np

from .base import jackknife_variance, unique_rows
from .plan import Plan
from .regression import Control, Regression

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
#: term columns allocated up front (then grown by half when full)
INITIAL_COLUMNS = 64
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
    sizes, inverse, counts = np.unique(t, return_inverse=True, return_counts=True)
    bin_of, b, acc = np.empty(len(sizes), dtype=np.int64), 0, 0
    for s_, c in enumerate(counts.tolist()):
        bin_of[s_] = b
        acc += c
        if acc >= min_rows:
            b, acc = b + 1, 0
    if acc and b > 0:  # a short last bin joins the one before
        bin_of[bin_of == b] = b - 1
    return bin_of[np.asarray(inverse).ravel()]


class _Columns:
    """The term columns of a fit (float64, column-major, capacity grown by half when full) and, per part of the
    rows (the folds and the always-fitted rows), their normal-equation pieces: FᵀF, Fᵀy and their sums per size bin
    (the bin intercepts' block of the normal matrix is diagonal, so the fits eliminate it in closed form)."""

    def __init__(self, x: np.ndarray, y: np.ndarray, bins: np.ndarray, parts: list[slice], n_bins: int):
        self.xt = np.ascontiguousarray(x.T)  # [m, n]: a term's rows gathered as one contiguous row
        self.y, self.bins, self.parts, self.n_bins = y, bins, parts, n_bins
        n_parts = len(parts)
        part = np.repeat(np.arange(n_parts), [sl.stop - sl.start for sl in parts])
        self.cell = cell = part * n_bins + bins  # (part, bin) of every row
        self.count = np.bincount(cell, minlength=n_parts * n_bins).reshape(n_parts, n_bins).astype(np.float64)
        self.ysum = np.bincount(cell, weights=y, minlength=n_parts * n_bins).reshape(n_parts, n_bins)
        self.p = 0
        self._alloc(INITIAL_COLUMNS)

    def _alloc(self, cap: int) -> None:
        n_parts, p = len(self.parts), self.p
        f = np.empty((len(self.y), cap), order="F")
        ff = np.zeros((n_parts, cap, cap))
        cb = np.zeros((n_parts, self.n_bins, cap))
        fy = np.zeros((n_parts, cap))
        if p:
            f[:, :p] = self.f[:, :p]
            ff[:, :p, :p] = self.ff[:, :p, :p]
            cb[:, :, :p] = self.cb[:, :, :p]
            fy[:, :p] = self.fy[:, :p]
        self.f, self.ff, self.cb, self.fy, self.cap = f, ff, cb, fy, cap

    def add(self, terms: np.ndarray) -> None:
        p, q = self.p, len(terms)
        if p + q > self.cap:
            self._alloc(max(p + q, (3 * self.cap) // 2))
        vals = self.xt[terms[:, 0]]
        for c in range(1, terms.shape[1]):
            vals &= self.xt[terms[:, c]]
        f = self.f
        f[:, p : p + q] = vals.T
        new = f[:, p : p + q]
        for k, sl in enumerate(self.parts):
            cross = f[sl, :p].T @ new[sl]
            self.ff[k, :p, p : p + q] = cross
            self.ff[k, p : p + q, :p] = cross.T
            self.ff[k, p : p + q, p : p + q] = new[sl].T @ new[sl]
            self.fy[k, p : p + q] = new[sl].T @ self.y[sl]
        for c in range(q):  # bin sums per part: counts, exact
            self.cb[:, :, p + c] = np.bincount(self.cell, weights=new[:, c], minlength=self.cb[:, :, 0].size).reshape(
                len(self.parts), self.n_bins)
        self.p = p + q

    def fit(self, folds: int) -> tuple[np.ndarray, float, np.ndarray]:
        """Least squares without each fold (coefficients ``[folds, n_bins + p]``, bins first) and their held-out
        squared error, and the residual of the fit on every row."""
        p, n_bins = self.p, self.n_bins
        count_t, ysum_t = self.count.sum(axis=0), self.ysum.sum(axis=0)
        ff_t, cb_t, fy_t = self.ff[:, :p, :p].sum(axis=0), self.cb[:, :, :p].sum(axis=0), self.fy[:, :p].sum(axis=0)
        systems = []
        for k in range(folds + 1):  # without fold k; the last: every row
            if k < folds:
                sys_ = (count_t - self.count[k], cb_t - self.cb[k, :, :p], ff_t - self.ff[k, :p, :p],
                        ysum_t - self.ysum[k], fy_t - self.fy[k, :p])
            else:
                sys_ = (count_t, cb_t, ff_t, ysum_t, fy_t)
            systems.append(sys_)
        coef = _solve_bins(systems, p, n_bins)
        y, bins, f = self.y, self.bins, self.f[:, :p]
        err = 0.0
        for k in range(folds):
            sl = self.parts[k]
            err += float(np.sum((y[sl] - coef[k, bins[sl]] - f[sl] @ coef[k, n_bins:]) ** 2))
        return coef[:folds], err, y - coef[folds, bins] - f @ coef[folds, n_bins:]


def _solve_bins(systems, p: int, n_bins: int) -> np.ndarray:
    """Ridge least squares of bin intercepts and p terms for each ``(bin counts, bin sums of the terms [n_bins, p],
    FᵀF, bin sums of y, Fᵀy)``: the diagonal bin block eliminated (Schur complement), one batched solve for the
    terms. The ridge is ``RIDGE`` × the mean diagonal of the whole normal matrix, as :func:`_solve`'s."""
    out = np.empty((len(systems), n_bins + p))
    if p:
        mats = np.empty((len(systems), p, p))
        rhs = np.empty((len(systems), p))
    dls = []
    for s_, (cnt, cb, ff, ysum, fy) in enumerate(systems):
        lam = RIDGE * max(float((cnt.sum() + np.trace(ff)) / (n_bins + p)), 1e-300)
        dl = cnt + lam
        dls.append(dl)
        if p:
            cs = cb / dl[:, None]
            mats[s_] = ff - cb.T @ cs
            mats[s_].flat[:: p + 1] += lam
            rhs[s_] = fy - cs.T @ ysum
    if p:
        try:
            terms = np.linalg.solve(mats, rhs[:, :, None])[:, :, 0]
        except np.linalg.LinAlgError:
            terms = None
    for s_, (cnt, cb, ff, ysum, fy) in enumerate(systems):
        if p and terms is None:  # singular: the whole system by _solve (its least-squares fallback)
            g = np.block([[np.diag(cnt), cb], [cb.T, ff]])
            out[s_] = _solve(g, np.concatenate([ysum, fy]))
            continue
        c_f = terms[s_] if p else np.zeros(0)
        out[s_, :n_bins] = (ysum - (cb @ c_f if p else 0.0)) / dls[s_]
        out[s_, n_bins:] = c_f
    return out


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
    # screening rows: at most SCREEN_ROWS (a fixed spread of the rows), ordered by bin (every bin a slice)
    scr = np.arange(n) if n <= SCREEN_ROWS else np.linspace(0, n - 1, SCREEN_ROWS).round().astype(np.int64)
    scr = scr[np.argsort(bins[scr], kind="stable")]
    xs = x[scr].astype(np.float32)  # the screening products (scores only rank candidates)
    per_bin = np.bincount(bins[scr], minlength=n_bins)
    nonempty = np.flatnonzero(per_bin)
    nb = per_bin[nonempty].astype(np.float64)
    bedges = np.concatenate([[0], np.cumsum(per_bin[nonempty])])
    bslices = [slice(int(bedges[b]), int(bedges[b + 1])) for b in range(len(nonempty))]

    def within_spread(f: np.ndarray, counts: np.ndarray) -> np.ndarray:
        """Σ over screening rows of the within-bin squared deviations of the products f_a·z_l (f binary):
        counts − Σ_b (bin sums)²/n_b, subtracted bin after bin (the bin sums are counts, exact in float32)."""
        out = counts.astype(np.float64).copy()
        tmp = np.empty_like(out)  # reused: no allocation per bin
        for sl, n_b in zip(bslices, nb.tolist()):
            s_ = f[sl].T @ xs[sl]
            np.multiply(s_, s_, out=s_)  # a count ≤ 2,000 squared: exact in float32
            np.divide(s_, n_b, out=tmp, dtype=np.float64)
            out -= tmp
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
    cols = _Columns(x, y, bins, parts, n_bins)
    coef, best_err, r = cols.fit(folds)
    best = (0, coef)  # (terms of the best step, its coefficients)
    stall = 0
    p_cols: list[np.ndarray] = []  # parents' screening columns [rows, parents], and their rows of counts and spreads
    p_cnt: list[np.ndarray] = []
    p_spread: list[np.ndarray] = []
    xr, raw = np.empty_like(xs), np.empty((m, m), dtype=np.float32)  # the pair scores' buffers
    while len(terms) < max_terms:
        rs = r[scr].astype(np.float32)
        np.multiply(xs, rs[:, None], out=xr)
        np.matmul(xr.T, xs, out=raw)  # Σ r z_j z_k; diagonal Σ r z_j
        score = np.square(raw, dtype=np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            score /= spread
        score[taken] = -1.0
        # higher orders by hierarchy: a chosen term of order 2 … MAX_ORDER − 1 times any further player l
        parents = [t for t in terms if 2 <= len(t) < MAX_ORDER]
        tscore = np.zeros((0, m))
        if parents:
            pt = padded(parents)
            if len(parents) > len(p_cnt):  # the new parents' screening columns, counts and spreads (r-free: kept)
                new_pt = pt[len(p_cnt) :]
                ps = xs[:, new_pt[:, 0]]
                for c in range(1, MAX_ORDER):
                    ps *= xs[:, new_pt[:, c]]
                cnt = (ps.T @ xs).astype(np.float64)  # screening rows holding the extended term
                p_cols.append(ps)
                p_cnt.extend(cnt)
                p_spread.extend(within_spread(ps, cnt))
            ps = np.concatenate(p_cols, axis=1) if len(p_cols) > 1 else p_cols[0]
            p_cols[:] = [ps]
            cnt, tspread = np.array(p_cnt), np.array(p_spread)
            num = ((ps * rs[:, None]).T @ xs).astype(np.float64)
            with np.errstate(divide="ignore", invalid="ignore"):
                tscore = np.where((cnt >= MIN_PAIR_ROWS) & (tspread > floor), num**2 / tspread, -1.0)
            tscore[np.arange(len(parents))[:, None], pt] = -1.0
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
        cols.add(padded(new))
        coef, err, r = cols.fit(folds)
        if err < best_err * (1.0 - 1e-9):
            best_err, best, stall = err, (len(terms), coef), 0
        else:
            stall += 1
            if stall >= PATIENCE:
                break
    return padded(terms[: best[0]]), best[1]


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

    def control(self, i, z, y, delta, unit, coalition=None, zb=None) -> Control:
        m = z.shape[1]
        sampled = unit >= 0
        if not self.plan.sampled or int(sampled.sum()) == 0:
            return Control(y, delta, 0.0, 0.0)
        # distinct coalitions for the fit; folds by coalition, exact rows in every fit
        if coalition is None:
            zb = z.astype(bool)
            rep, inverse = unique_rows(zb)  # first row of each coalition, coalition of each row
        else:  # the same, from ids numbered in unique_rows's order
            rep, inverse = np.unique(coalition, return_index=True, return_inverse=True)[1:]
            inverse = np.asarray(inverse).ravel()
        n_distinct = len(rep)
        if int(sampled[rep].sum()) < MIN_ROWS:
            return Control(y, delta, 0.0, 0.0)
        rng = np.random.default_rng([i, m, 0x5A])
        fold_of = np.where(unit[rep] >= 0, rng.permutation(n_distinct) % FOLDS, -1)
        zd = z[rep].astype(bool) if zb is None else zb[rep]  # the distinct coalitions
        bins = size_bins(zd.sum(axis=1), BIN_ROWS)
        terms, coef = fit_surrogate(zd, y[rep], bins, fold_of, FOLDS)
        n_bins = int(bins.max()) + 1
        self.n_terms[i] = len(terms)
        if len(terms) == 0:
            return Control(y, delta, 0.0, 0.0)
        mean = coef.mean(axis=0)
        # the surrogate on every distinct coalition: g_k of its fold, ḡ on exact ones
        tv = term_values(zd, terms)
        own = np.maximum(fold_of, 0)
        g = np.where(
            fold_of >= 0,
            coef[own, bins] + (tv @ coef[:, n_bins:].T)[np.arange(n_distinct), own],
            mean[bins] + tv @ mean[n_bins:],
        )[inverse]
        # Shapley(g_k): g(N) = δ by its full-coalition intercept, a symmetric term worth (δ − poly(N))/m to every
        # player; Shapley(ḡ) is their mean (Shapley is linear)
        per_fold = np.stack([term_shapley(terms, c, m) + (delta - float(c.sum())) / m for c in coef[:, n_bins:]])
        # the fold fits are delete-a-group replicates of the surrogate's coefficients: their jackknife variance is how
        # much Shapley(ḡ) rests on the rows drawn
        return Control(y - g, 0.0, per_fold.mean(axis=0), jackknife_variance(per_fold))


__all__ = ["Sparse", "fit_surrogate", "term_shapley"]
