"""Third order: meta-meta-attributions T[i, j, k] — how player k moves the push of j on i (docs/mathematics.md, "Third order").

For i ≠ j, w_ij(R) = M[i, j](f, x_{R∪{i,j}}) over R ⊆ N∖{i, j}; T[i, j, k] = Shapley value of k in w_ij,
T[i, j, j] = w_ij(∅) = φ_i(x_{{i,j}}) − φ_i(x_{{i}}), T[i, j, i] = 0, T[i, i, i] = M[i, i], T[i, i, k] = 0, so that
Σ_k T[i, j, k] = M[i, j]. With c_i the Möbius coefficients of the target's metagame u_i(T) = φ_i(x_{T∪{i}}):

    T[i, j, j] = c_i({j}),   T[i, j, k] = Σ_{B ⊇ {j,k}} c_i(B) / (|B|(|B| − 1)),

i.e. T[i, ·, ·] is the Meta-SV of the scalar game u_i (symmetric in j, k; T[i, j, k] = STII_jk(u_i)/2), whatever
the inner method. The exact tensor is post-processing of the 2^d attribution vectors the exact metagame already
has: per target one Möbius transform of 2^(d−1) values (O(d·2^d) for all targets) and one pair sum
(O(d²·2^d) for all targets); memory 2^(d−1) floats per target at a time plus the d³ tensor (d = 16: a few ms of
transforms, ~0.3 s in all; d = 20: seconds).
"""

from __future__ import annotations

import numpy as np

from ..errors import MetagameError
from .options import RunOptions
from .tables import meta_shapley_from_values


def check_order(options: RunOptions) -> None:
    """Refuse ``order=3`` outside the metagame variant with the Shapley value (T[i] is the Meta-SV of u_i).

    Raises:
        MetagameError: for ``order=3`` with ``variant="serial"`` or ``value="banzhaf"``.
    """
    if options.order == 3 and (options.value != "shapley" or options.variant != "metagame"):
        raise MetagameError(
            "order=3 (meta-meta-attributions) is defined for the metagame variant with the Shapley value "
            "(docs/mathematics.md, Third order); drop variant/value or use order=2"
        )


def target_game(phi: np.ndarray, i: int) -> np.ndarray:
    """u_i(T) = φ_i(x_{T∪{i}}) as a table ``[2**(d−1)]`` over N∖{i} (bitmask order of the other players)."""
    d = phi.shape[1]
    idx = np.arange(2**d, dtype=np.int64)
    with_i = idx[(idx >> i) & 1 == 1]  # ascending; dropping bit i maps them onto 0 .. 2^(d−1) − 1 in order
    return phi[with_i, i]


def third_order_from_table(phi: np.ndarray) -> np.ndarray:
    """T ``[d, d, d]`` (T[i, j, k]: target i, source j, mover k) from the attribution table ``phi[2**d, d]``."""
    phi = np.asarray(phi, dtype=np.float64)
    if phi.ndim != 2:
        raise MetagameError("order=3 needs scalar attributions (one number per player); this run is vector-valued")
    d = phi.shape[1]
    out = np.zeros((d, d, d))
    for i in range(d):
        others = np.array([j for j in range(d) if j != i], dtype=np.int64)
        if len(others):
            block = meta_shapley_from_values(target_game(phi, i))  # [d−1, d−1]: Meta-SV of u_i
            out[i][np.ix_(others, others)] = block
        out[i, i, i] = phi[1 << i, i]  # M[i, i] = φ_i(x_{{i}})
    return out


__all__ = ["check_order", "target_game", "third_order_from_table"]
