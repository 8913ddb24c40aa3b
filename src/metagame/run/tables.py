"""The metagame on full tables of attribution vectors.

``phi`` is a table ``[2**d, d]`` (bitmask order) with ``phi[S, i] = φ_i(f, x_S)``. For target i
the game is u_i(T) = φ_i(x_{T∪{i}}) over T ⊆ N∖{i}, and

* ``M[i, j]`` (j ≠ i) = Shapley (or Banzhaf) value of j in u_i,
* ``M[i, i]`` = φ_i(x_{{i}}).

Written with S = T ∪ {i}: M[i, j] = Σ_{S∋i,j} w(|S|−2) φ_i(x_S) − Σ_{S∋i, S∌j} w(|S|−1) φ_i(x_S),
with w the Shapley weights of a (d−1)-player game, so every target is solved at once by one
chunked matrix product over the table.
"""

from __future__ import annotations

import numpy as np

from ..players.coalitions import coalition_bits, sizes_of_all
from ..solvers.exact import CHUNK, banzhaf_values, moebius, shapley_values, shapley_weights
from .options import Value


def _outer_weights(d: int, value: Value) -> tuple[np.ndarray, np.ndarray]:
    """Weights indexed by |S| for S ∋ j (``w_in``) and S ∌ j (``w_out``), target i ∈ S."""
    n = d - 1  # players of each target's game
    w_in = np.zeros(d + 1)
    w_out = np.zeros(d + 1)
    if n == 0:
        return w_in, w_out
    if value == "shapley":
        w = shapley_weights(n)  # w[t], t = |T| before adding j, t in 0..n-1
        w_in[2:] = w[: d - 1]  # |S| = t + 2
        w_out[1:d] = w  # |S| = t + 1
    else:
        c = 1.0 / 2 ** (n - 1)
        w_in[2:] = c
        w_out[1:d] = c
    return w_in, w_out


def _as_vector_table(phi: np.ndarray) -> tuple[np.ndarray, tuple[int, ...]]:
    """``phi[2**d, d, *k]`` as ``[2**d, d, K]`` (K = prod k, 1 for scalar attributions) and the trailing shape."""
    phi = np.asarray(phi, dtype=np.float64)
    return phi.reshape(phi.shape[0], phi.shape[1], -1), tuple(phi.shape[2:])


def metagame_from_table(phi: np.ndarray, value: Value = "shapley") -> np.ndarray:
    """Meta-attributions (row = target, column = source) from ``phi[2**d, d]`` -> ``[d, d]``.

    Vector-valued attributions ``phi[2**d, d, *k]`` (e.g. one map per target) give ``[d, d, *k]``: every
    coordinate is its own metagame, M[i, j, p] = value of j in u_{i,p}(T) = φ_{i,p}(x_{T∪{i}}).
    """
    phi3, tail = _as_vector_table(phi)
    n, d, k = phi3.shape
    w_in, w_out = _outer_weights(d, value)
    sizes = sizes_of_all(d)
    out = np.zeros((d, k, d))
    for start in range(0, n, CHUNK):
        stop = min(n, start + CHUNK)
        bits = coalition_bits(start, stop, d)
        s = sizes[start:stop]
        p = np.where(bits[:, :, None], phi3[start:stop], 0.0)  # φ_i(x_S) where i ∈ S
        q = np.where(bits, w_in[s][:, None], -w_out[s][:, None])
        out += (p.reshape(stop - start, d * k).T @ q).reshape(d, k, d)
    out = out.transpose(0, 2, 1)  # [target, source, k]
    singles = 1 << np.arange(d)
    idx = np.arange(d)
    out[idx, idx] = phi3[singles, idx]
    return out.reshape((d, d) + tail)


def serial_from_table(phi: np.ndarray, value: Value = "shapley") -> np.ndarray:
    """Serial variant: M[i, :] = value of the d-player game ν_i(S) = φ_i(x_S) (rows sum to φ_i(x) − φ_i(b));
    ``[d, d]``, or ``[d, d, *k]`` for vector-valued ``phi[2**d, d, *k]``."""
    phi3, tail = _as_vector_table(phi)
    n, d, k = phi3.shape
    solve = shapley_values if value == "shapley" else banzhaf_values
    vals = solve(phi3.reshape(n, d * k)).reshape(d, d, k)  # [source, target, k]
    return vals.transpose(1, 0, 2).reshape((d, d) + tail)


def side_from_table(side: np.ndarray, value: Value = "shapley") -> np.ndarray:
    """Always-present side targets (not players): row p = value of each player j in the game S ↦ φ_p(x_S),
    from ``side[2**d, k]`` -> ``[k, d]``; row p sums (Shapley) to φ_p(x) − φ_p(x_∅)."""
    solve = shapley_values if value == "shapley" else banzhaf_values
    return solve(np.asarray(side, dtype=np.float64)).T


def meta_shapley_from_values(values: np.ndarray) -> np.ndarray:
    """Meta-SV (inner and outer Shapley, baseline masking) from the 2**d model values alone.

    M[i, i] = m({i}),  M[i, j] = Σ_{A⊇{i,j}} m(A) / (|A|(|A|−1)).
    """
    m = moebius(np.asarray(values, dtype=np.float64).reshape(-1))
    n = m.shape[0]
    d = int(round(np.log2(n)))
    sizes = sizes_of_all(d)
    scale = np.zeros(d + 1)
    scale[2:] = 1.0 / (np.arange(2, d + 1) * (np.arange(1, d)))
    out = np.zeros((d, d))
    for start in range(0, n, CHUNK):
        stop = min(n, start + CHUNK)
        bits = coalition_bits(start, stop, d).astype(np.float64)
        c = m[start:stop] * scale[sizes[start:stop]]
        out += bits.T @ (bits * c[:, None])
    idx = np.arange(d)
    out[idx, idx] = m[1 << idx]
    return out
