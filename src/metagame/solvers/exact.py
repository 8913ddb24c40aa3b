"""Exact solvers on full value tables, for k outputs at once.

A value table holds ``v(S)`` for all ``2**d`` coalitions in bitmask order (row ``s`` is the
coalition whose bits are ``s``, player 0 = least significant bit), shape ``[2**d]`` or
``[2**d, k]``. Every function here is pure numpy and works column-wise on the k outputs.
"""

from __future__ import annotations

from math import factorial
from typing import Literal

import numpy as np

from ..errors import MetagameError
from ..players.coalitions import coalition_bits, sizes_of_all

#: rows of the coalition table processed per chunk in the matrix products
CHUNK = 1 << 15


def _as_table(values) -> tuple[np.ndarray, int, bool]:
    v = np.asarray(values, dtype=np.float64)
    squeeze = v.ndim == 1
    if squeeze:
        v = v[:, None]
    n = v.shape[0]
    d = int(round(np.log2(n))) if n > 0 else -1
    if n < 1 or 2**d != n:
        raise MetagameError(f"a value table needs 2**d rows (one per coalition); got {n}")
    return v, d, squeeze


def _subset_transform(values, sign: float) -> np.ndarray:
    """In-place butterfly over the d bits: sign −1 gives the Möbius transform, +1 its inverse (subset sums)."""
    v, d, squeeze = _as_table(values)
    out = v.copy()
    k = out.shape[1]
    for i in range(d):
        view = out.reshape(-1, 2, 2**i, k)
        view[:, 1] += sign * view[:, 0]
    return out[:, 0] if squeeze else out


def moebius(values) -> np.ndarray:
    """Möbius transform m(A) = Σ_{B⊆A} (−1)^{|A|−|B|} v(B) of a table ``[2**d(, k)]``."""
    return _subset_transform(values, -1.0)


def zeta(coefficients) -> np.ndarray:
    """Inverse Möbius (subset-sum) transform v(S) = Σ_{A⊆S} m(A)."""
    return _subset_transform(coefficients, 1.0)


def shapley_weights(n: int) -> np.ndarray:
    """w(t) = t!(n−1−t)!/n! for t = 0 .. n−1: weight of a marginal contribution to a size-t coalition."""
    if n <= 0:
        return np.zeros(0)
    return np.array([factorial(t) * factorial(n - 1 - t) / factorial(n) for t in range(n)], dtype=np.float64)


def _semivalue(values, kind: Literal["shapley", "banzhaf"]) -> np.ndarray:
    v, d, squeeze = _as_table(values)
    n = v.shape[0]
    if kind == "shapley":
        w = shapley_weights(d)
        w_in = np.concatenate([[0.0], w])  # index by |S|: S contains i, marginal to size |S|-1
        w_out = np.concatenate([w, [0.0]])  # index by |S|: S lacks i
    else:
        c = 1.0 / 2 ** (d - 1)
        w_in = np.full(d + 1, c)
        w_out = np.full(d + 1, c)
    sizes = sizes_of_all(d)
    out = np.zeros((d, v.shape[1]))
    for start in range(0, n, CHUNK):
        stop = min(n, start + CHUNK)
        bits = coalition_bits(start, stop, d)
        s = sizes[start:stop]
        weights = np.where(bits, w_in[s][:, None], -w_out[s][:, None])
        out += weights.T @ v[start:stop]
    return out[:, 0] if squeeze else out


def shapley_values(values) -> np.ndarray:
    """Exact Shapley values ``[d(, k)]`` of a table ``[2**d(, k)]``: Σ_S w(|S|)[v(S∪i) − v(S)]."""
    return _semivalue(values, "shapley")


def banzhaf_values(values) -> np.ndarray:
    """Exact Banzhaf values ``[d(, k)]``: 2^{−(d−1)} Σ_{S⊆N∖i} [v(S∪i) − v(S)]."""
    return _semivalue(values, "banzhaf")


def shapley_taylor_from_moebius(m) -> np.ndarray:
    """Order-2 Shapley-Taylor index from Möbius coefficients, ``[d, d(, k)]``.

    Off the diagonal STII_ij = Σ_{A⊇{i,j}} m(A) / C(|A|, 2); on the diagonal the order-1 terms m({i}).
    """
    mm, d, squeeze = _as_table(m)
    k = mm.shape[1]
    n = mm.shape[0]
    sizes = sizes_of_all(d)
    pair = np.zeros(d + 1)
    pair[2:] = 2.0 / (np.arange(2, d + 1) * (np.arange(2, d + 1) - 1))
    out = np.zeros((d, d, k))
    for start in range(0, n, CHUNK):
        stop = min(n, start + CHUNK)
        bits = coalition_bits(start, stop, d).astype(np.float64)
        c = mm[start:stop] * pair[sizes[start:stop]][:, None]  # [c, k]
        out += np.einsum("si,sj,sk->ijk", bits, bits, c, optimize=True)
    singles = mm[1 << np.arange(d)]  # [d, k]
    idx = np.arange(d)
    out[idx, idx] = singles
    return out[:, :, 0] if squeeze else out


def shapley_taylor(values) -> np.ndarray:
    """Exact order-2 Shapley-Taylor interaction index ``[d, d(, k)]`` of a value table."""
    return shapley_taylor_from_moebius(moebius(values))


RestrictedRule = Literal["occlusion", "shapley", "banzhaf"]


def restricted_attributions(values, rule: RestrictedRule) -> np.ndarray:
    """φ_i(v_S) for every coalition S at once, where v_S(T) = v(S ∩ T); shape ``[2**d, d]``.

    occlusion: v(S) − v(S∖i); shapley: Σ_{A⊆S, A∋i} m(A)/|A|; banzhaf: Σ_{A⊆S, A∋i} m(A)/2^{|A|−1}
    (entries for i ∉ S are 0). ``values`` must be a single-output table ``[2**d]``.
    """
    v, d, _ = _as_table(values)
    if v.shape[1] != 1:
        raise MetagameError("restricted_attributions takes a single-output table [2**d]")
    v = v[:, 0]
    n = v.shape[0]
    idx = np.arange(n, dtype=np.int64)
    out = np.zeros((n, d))
    if rule == "occlusion":
        for i in range(d):
            has = (idx >> i) & 1 == 1
            out[has, i] = v[has] - v[idx[has] ^ (1 << i)]
        return out
    m = moebius(v)
    sizes = sizes_of_all(d)
    if rule == "shapley":
        scale = np.where(sizes > 0, 1.0 / np.maximum(sizes, 1), 0.0)
    elif rule == "banzhaf":
        scale = np.where(sizes > 0, 1.0 / 2.0 ** np.maximum(sizes - 1, 0), 0.0)
    else:  # pragma: no cover - guarded by Literal
        raise MetagameError(f"unknown rule {rule!r}; use 'occlusion', 'shapley' or 'banzhaf'")
    g = m * scale
    for i in range(d):
        has = (idx >> i) & 1 == 1
        out[has, i] = g[has]
    return zeta(out)
