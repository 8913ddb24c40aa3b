"""What every estimator shares: blocks of evaluated rows, stored rows, the jackknife, and the protocol the driver
talks to (no type checks on estimators anywhere: the driver asks the class attributes of :class:`Estimator`)."""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from .plan import Plan


class Rows:
    """Per-row quantities of a block of evaluated coalitions for all target games at once."""

    def __init__(self, plan: Plan, rows: np.ndarray, phi: np.ndarray, log_q: np.ndarray | None):
        self.rows = rows
        self.phi = phi
        self.size = rows.sum(axis=1)
        self.t = self.size - plan.offset  # local size
        self.relevant = rows if plan.variant == "metagame" else np.ones_like(rows)
        self.log_q = np.zeros(len(rows)) if log_q is None else log_q


def coefficients(plan: Plan, block: Rows, lin: np.ndarray, lout: np.ndarray) -> np.ndarray:
    """C[r, j] = c_j(T_r) / q(A_r)."""
    t = np.clip(block.t, 0, plan.m)
    cin = np.exp(lin[t] - block.log_q)
    cout = np.exp(lout[t] - block.log_q)
    return np.where(block.rows, cin[:, None], -cout[:, None])


class Estimator:
    """Protocol of the shared-sample estimators. The driver feeds exact strata (:meth:`add_exact`) and batches of
    sampled units (:meth:`add_units`), calls :meth:`before_batch` before drawing each batch, and asks
    :meth:`result` for ``(matrix, stderr)`` (rows before the driver's final efficiency clean-up)."""

    name: ClassVar[str] = "estimator"
    #: outer values the estimator supports
    values: ClassVar[tuple[str, ...]] = ("shapley",)
    #: True when the estimator keeps every evaluated row (the budget sets its memory)
    stores_rows: ClassVar[bool] = True
    #: True when :meth:`result` already scales its standard errors so that ±1.96·stderr is its own calibrated 95%
    #: interval (else the driver applies a Student-t factor for the sampled units reaching each target)
    calibrated: ClassVar[bool] = False
    #: True when :meth:`tensor` estimates the third-order tensor (``order=3``) from the same samples
    supports_tensor: ClassVar[bool] = False

    def __init__(self, plan: Plan):
        self.plan = plan
        self.k = 0  # sampled units so far

    @classmethod
    def share_power(cls, d: int, budget: int) -> float:
        """The plan's ``share_power`` for this estimator (−1: sizes at the extremes, KernelSHAP's main effects)."""
        return -1.0

    def add_exact(self, block: Rows) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def add_units(self, block: Rows, unit: np.ndarray, n_units: int) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def before_batch(self, u_empty: np.ndarray, u_full: np.ndarray) -> None:
        """Hook run before each batch of units is drawn (e.g. to refresh a control variate)."""

    def result(self, u_empty: np.ndarray, u_full: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover
        raise NotImplementedError

    def tensor(
        self, u_empty: np.ndarray, u_full: np.ndarray, matrix: np.ndarray, stderr: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover - only estimators with supports_tensor are asked
        """T[i, j, k] ``[d, d, d]`` and its standard errors, summing over k to the final ``matrix`` (after
        :meth:`result`)."""
        raise NotImplementedError


class StoredRows(Estimator):
    """An estimator that keeps every evaluated block (exact blocks, and sampled blocks with their global unit ids)."""

    def __init__(self, plan: Plan):
        super().__init__(plan)
        self.blocks: list[tuple[Rows, np.ndarray | None]] = []

    def add_exact(self, block: Rows) -> None:
        self.blocks.append((block, None))

    def add_units(self, block: Rows, unit: np.ndarray, n_units: int) -> None:
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


def jackknife_variance(replicates: np.ndarray) -> np.ndarray:
    """Delete-a-group jackknife variance (G − 1)/G · Σ_g (θ_g − θ̄)² of G replicate estimates."""
    groups = len(replicates)
    dev = replicates - replicates.mean(axis=0, keepdims=True)
    return (groups - 1) / groups * (dev**2).sum(axis=0)


#: distinct sampled coalitions needed on each side of an entry (its player in / out of the target's game) before the
#: data can speak for it (regression, montecarlo: stderr = inf below; stratified: at least the row's widest bar)
MIN_SIDE_ROWS = 5


def thin_sides(n_in: np.ndarray, n_rows) -> np.ndarray:
    """Entries whose player is in ``n_in`` of ``n_rows`` sampled coalitions and so on one side (in / out) of fewer
    than ``MIN_SIDE_ROWS`` of them: the data cannot speak for their share."""
    return np.minimum(n_in, n_rows - n_in) < MIN_SIDE_ROWS

#: groups of the delete-a-group jackknives
JACKKNIFE_GROUPS = 20
_Z95 = 1.959963984540054


def unique_rows(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(first, inverse)`` of the distinct rows of ``bool[n, m]`` in lexicographic order of their packed bytes:
    ``np.unique(np.packbits(z, axis=1), axis=0, return_index=True, return_inverse=True)``'s, ~20× faster (the packed
    rows are compared as one opaque byte string each, the same order)."""
    packed = np.ascontiguousarray(np.packbits(np.asarray(z, dtype=bool), axis=1))
    keys = packed.view(np.dtype((np.void, max(packed.shape[1], 1)))).ravel() if packed.shape[1] else np.zeros(len(z))
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    return first, np.asarray(inverse).ravel()


def distinct_rows(z: np.ndarray) -> np.ndarray:
    """Indices of the first occurrence of every distinct row of ``bool[n, m]``, in their original order."""
    if len(z) == 0:
        return np.zeros(0, dtype=np.int64)
    return np.sort(unique_rows(z)[0])


def t_factors(dof) -> np.ndarray:
    """t_{0.975}(dof)/z_{0.975}: the stderr multiplier that makes ±1.96·stderr a Student-t 95% interval."""
    from scipy.special import stdtrit

    return stdtrit(np.maximum(dof, 1.0), 0.975) / _Z95


def t_factor(dof: float) -> float:
    """:func:`t_factors` for one number of degrees of freedom."""
    return float(t_factors(dof))

__all__ = [
    "JACKKNIFE_GROUPS",
    "MIN_SIDE_ROWS",
    "thin_sides",
    "Estimator",
    "Rows",
    "StoredRows",
    "coefficients",
    "distinct_rows",
    "unique_rows",
    "jackknife_variance",
    "t_factor",
    "t_factors",
]
