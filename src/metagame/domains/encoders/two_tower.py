"""Two-tower similarity games, evaluated two halves at a time.

A two-tower model scores f(S) = sim(e_A(x_{S∩A}), e_B(x_{S∩B})): text pairs (one encoder applied to each text) and
CLIP/SigLIP (image tower × text tower). Tower A sees only S ∩ A, so among the 2^{|A|+|B|} coalitions there are only
2^{|A|} + 2^{|B|} distinct tower inputs. This base class evaluates every tower once per distinct half-coalition:

* **values** (occlusion, Shapley, Banzhaf, KernelSHAP, LIME, the Möbius route): each half is embedded once (cached
  by its content for the adapter's life, so sampled runs reuse halves across batches) and f is the similarity of
  the two cached embeddings;
* **linear gradient methods** (:class:`~metagame.methods.base.PathRule`: gradient×input, Integrated Gradients,
  saliency): along the straight path z(α) = b + α(z − b), ∇_{z_A} f = J_Aᵀ ∂sim/∂e_A, so
  φ_i = Σ_k w_k ⟨J_A(z_A(α_k)) t_i, ∂sim/∂e_A⟩ — one forward-mode pass (Jacobian–vector product) per distinct
  half, step and player of that side, contracted with the cotangent each partner half induces (cheap, batched).

Methods without a path rule (SmoothGrad, Captum classes) run on the adapter's joint differentiable view unchanged.

The empty side (``empty``): with ``"zero"`` (the default for text pairs) a coalition that holds no player of one
side leaves that side without an embedding, whose cosine with anything is 0: f(S) = 0 for a cosine (the logit bias
for SigLIP); the attribution of such a coalition is 0 for every player (f is constant there). With ``"model"`` the model embeds the empty input (e.g. ``[CLS] [SEP]``), so
f(∅) is the similarity of two empty inputs (≈ 1 for a shared encoder).
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator, Literal, get_args

import numpy as np
import torch

from ...errors import MetagameError
from ...models.base import ModelAdapter
from ...players.coalitions import CoalitionCache

EmptySide = Literal["zero", "model"]
EMPTY_MODES: tuple[str, ...] = get_args(EmptySide)
#: rows per tower call in the halves route
_TOWER_BATCH = 256


@contextlib.contextmanager
def forward_mode_attention() -> Iterator[None]:
    """Inside the block, scaled-dot-product attention uses its math kernel, which forward-mode AD supports (the fused
    CPU kernels do not); models keep their own attention setting."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    with sdpa_kernel(SDPBackend.MATH):
        yield


class TwoTowerModel(ModelAdapter):
    """Base class of two-tower adapters (module docstring). Subclasses set ``side_players`` (the player indices of
    side 0 and side 1) and ``empty``, and implement :meth:`side_inputs`, :meth:`side_encode`, :meth:`player_masks`
    and :meth:`similarity`."""

    #: player indices (in 0..d−1) of side 0 and side 1
    side_players: tuple[np.ndarray, np.ndarray]
    empty: EmptySide = "zero"
    #: evaluate by halves (False: the joint route, for comparison)
    halves: bool = True

    def _init_two_tower(self, empty: str, halves: bool) -> None:
        if empty not in EMPTY_MODES:
            raise MetagameError(f"unknown empty {empty!r}; use 'zero' (an empty side scores 0) or 'model'")
        self.empty = empty  # type: ignore[assignment]
        self.halves = bool(halves)
        self.n_tower_rows = 0
        self._half_values = (CoalitionCache(), CoalitionCache())
        self._half_paths: dict[tuple, CoalitionCache] = {}

    # ------------------------------------------------------------------ what subclasses provide
    def side_inputs(self, side: int, halves: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, Any]:  # pragma: no cover
        """Continuous inputs of one side for half-coalitions ``bool[m, n_side]``: ``(z, zb, extra)``."""
        raise NotImplementedError

    def side_encode(self, side: int, z: torch.Tensor, extra: Any) -> torch.Tensor:  # pragma: no cover
        """The side's embedding ``[m, D]`` (differentiable in ``z``)."""
        raise NotImplementedError

    def player_masks(self, side: int) -> torch.Tensor:  # pragma: no cover
        """``[n_side, *shape]`` float 0/1: the coordinates of each player of the side."""
        raise NotImplementedError

    def similarity(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        """f from the two embeddings ``[m, D]`` -> ``[m]`` (differentiable)."""
        raise NotImplementedError

    def empty_value(self) -> float:
        """f of a coalition with an empty side under ``empty="zero"``: the similarity at cosine 0 (0 for a cosine)."""
        return 0.0

    def empty_words(self, zero: str) -> str:
        """The empty side in words (``zero``: what f is then under ``empty="zero"``)."""
        if self.empty == "zero":
            return f"a coalition without a player of one side scores {zero} (empty='zero')"
        return "a side without players is embedded as the model embeds an empty input (empty='model')"

    # ------------------------------------------------------------------ helpers
    def _split(self, coalitions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return coalitions[:, self.side_players[0]], coalitions[:, self.side_players[1]]

    def empty_side(self, coalitions: np.ndarray) -> np.ndarray:
        """``bool[m]``: rows whose f is 0 because a side with players holds none of them (``empty="zero"``)."""
        if self.empty != "zero":
            return np.zeros(len(coalitions), dtype=bool)
        out = np.zeros(len(coalitions), dtype=bool)
        for half in self._split(np.asarray(coalitions, dtype=bool)):
            if half.shape[1]:
                out |= ~half.any(axis=1)
        return out

    def _encode_halves(self, side: int, halves: np.ndarray) -> np.ndarray:
        """Embeddings ``[m, D]`` of half-coalitions ``bool[m, n_side]``: each distinct half embedded once for the
        adapter's life (cached by content). A side without players has one input, embedded once."""
        halves = np.ascontiguousarray(halves, dtype=bool)

        def compute(rows: np.ndarray) -> np.ndarray:
            parts = []
            with torch.no_grad():
                for s in range(0, len(rows), _TOWER_BATCH):
                    z, _, extra = self.side_inputs(side, rows[s : s + _TOWER_BATCH])
                    parts.append(self.side_encode(side, z, extra).double().cpu().numpy())
                    self.n_tower_rows += len(z)
            return np.concatenate(parts)

        if halves.shape[1] == 0:  # the key of the one (empty) half: a single False column
            one = self._half_values[side].fill(np.zeros((1, 1), dtype=bool),
                                               lambda rows: compute(np.zeros((len(rows), 0), dtype=bool)))
            return np.repeat(one, len(halves), axis=0)
        uniq, inv = np.unique(halves, axis=0, return_inverse=True)  # look up each distinct half once
        return self._half_values[side].fill(uniq, compute)[inv.reshape(-1)]

    # ------------------------------------------------------------------ values
    def _values_batched(self, coalitions: np.ndarray) -> torch.Tensor:
        """By halves, all coalitions at once: the distinct halves are found over the whole request and embedded in
        ``_TOWER_BATCH``-row tower calls (chunking the coalitions would split one side's halves across calls)."""
        if not self.halves:
            return super()._values_batched(coalitions)
        with torch.no_grad():
            return self._values(coalitions).detach()

    def _values(self, coalitions: np.ndarray) -> torch.Tensor:
        """f(x_S) with each distinct half (S ∩ A, S ∩ B) embedded once; 0 where a side is empty (``"zero"``)."""
        coalitions = np.asarray(coalitions, dtype=bool)
        if not self.halves:  # the joint route: both towers on every coalition
            f = super()._values(coalitions)
        else:
            self.count(len(coalitions))
            halves = self._split(coalitions)
            ea = torch.as_tensor(self._encode_halves(0, halves[0]))
            eb = torch.as_tensor(self._encode_halves(1, halves[1]))
            f = self.similarity(ea, eb).to(self.dtype)
        f = torch.where(torch.as_tensor(self.empty_side(coalitions)), torch.full_like(f, self.empty_value()), f)
        return self.check_output(f, len(coalitions), coalitions)

    # ------------------------------------------------------------------ attributions
    def attribute(self, method: Any, coalitions: np.ndarray) -> torch.Tensor:
        """φ(x_S) per row: 0 on rows with an empty side (``"zero"``), the halves route for linear gradient methods,
        else the method on the joint view."""
        coalitions = np.asarray(coalitions, dtype=bool)
        out = torch.zeros(len(coalitions), self.n_players + len(self.side_targets), dtype=torch.float64)
        live = ~self.empty_side(coalitions)
        if not live.any():
            return out
        rule = method.path_rule if self.halves else None
        if rule is None:
            phi = method.attribute(self, coalitions[live])
        else:
            phi = self._path_attributions(rule, coalitions[live])
        out[torch.as_tensor(live)] = phi.detach().to(torch.float64).cpu()
        return out

    def _half_paths_for(self, side: int, rule: Any, halves: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """For distinct half-coalitions: e(z(α_k)) ``[u, K, D]`` and the tangent outputs J(z(α_k)) t_p
        ``[u, K, n_side, D]`` (forward-mode), cached by content per rule."""
        n = len(self.side_players[side])
        K = len(rule.alphas)
        key = (side, rule.tangent, rule.alphas)
        cache = self._half_paths.setdefault(key, CoalitionCache())
        masks = self.player_masks(side)  # [n, *shape]

        def compute(rows: np.ndarray) -> np.ndarray:
            z, zb, extra = self.side_inputs(side, rows)  # [u, *shape]
            u = len(rows)
            shape = tuple(z.shape[1:])
            alphas = torch.as_tensor(rule.alphas, dtype=z.dtype, device=z.device).reshape((1, K) + (1,) * len(shape))
            path = (zb.unsqueeze(1) + alphas * (z - zb).unsqueeze(1)).reshape((u * K,) + shape)  # [(h, k), ...]
            ext = _repeat_extra(extra, K)
            with torch.no_grad():  # the path points' embeddings
                e = torch.cat([self.side_encode(side, path[s : s + _TOWER_BATCH], _take(ext, slice(s, s + _TOWER_BATCH)))
                               for s in range(0, len(path), _TOWER_BATCH)])
            self.n_tower_rows += len(path)
            # one forward-mode row per (half, step, player with a nonzero tangent): displacement tangents vanish for
            # absent players, indicator tangents (saliency) do not
            m = masks.to(dtype=z.dtype, device=z.device)
            if rule.tangent == "displacement":
                hp = np.argwhere(rows)  # (half, player) pairs with the player present
            else:
                hp = np.argwhere(np.ones_like(rows))
            de = torch.zeros(u, K, n, e.shape[-1], dtype=e.dtype)
            if len(hp):
                h_idx = torch.as_tensor(hp[:, 0]).repeat_interleave(K)
                p_idx = torch.as_tensor(hp[:, 1]).repeat_interleave(K)
                k_idx = torch.arange(K).repeat(len(hp))
                prim = path.reshape((u, K) + shape)[h_idx, k_idx]
                if rule.tangent == "displacement":
                    tans = (z - zb)[h_idx] * m[p_idx]
                else:
                    tans = m[p_idx]
                rows_ext = _take(ext, h_idx * K + k_idx)
                outs = []
                with forward_mode_attention():
                    for s in range(0, len(prim), _TOWER_BATCH):
                        sl = slice(s, s + _TOWER_BATCH)
                        _, d_e = torch.func.jvp(lambda zz: self.side_encode(side, zz, _take(rows_ext, sl)),
                                                (prim[sl],), (tans[sl],))
                        outs.append(d_e.detach())
                self.n_tower_rows += len(prim)
                de[h_idx, k_idx, p_idx] = torch.cat(outs)
            e = e.reshape(u, K, -1).double().cpu()
            de = de.double().cpu()
            return torch.cat([e.reshape(u, -1), de.reshape(u, -1)], dim=1).numpy()

        if n == 0:  # a side without players: one input, no tangents
            z, zb, extra = self.side_inputs(side, np.zeros((1, 0), dtype=bool))
            with torch.no_grad():
                e = self.side_encode(side, z, extra).double().cpu()
            self.n_tower_rows += 1
            return e.reshape(1, 1, -1).expand(len(halves), K, -1), torch.zeros(len(halves), K, 0, e.shape[-1], dtype=torch.float64)
        flat = torch.as_tensor(cache.fill(np.ascontiguousarray(halves), compute))
        width = flat.shape[1] // (K * (n + 1))
        e = flat[:, : K * width].reshape(len(halves), K, width)
        de = flat[:, K * width :].reshape(len(halves), K, n, width)
        return e, de

    def _path_attributions(self, rule: Any, coalitions: np.ndarray) -> torch.Tensor:
        """φ_i = Σ_k w_k ⟨J_side(z(α_k)) t_i, ∂sim/∂e_side⟩ for every row, each side's tower run once per distinct half."""
        m = len(coalitions)
        halves = self._split(coalitions)
        w = torch.as_tensor(rule.weights, dtype=torch.float64)
        parts = []
        for side in (0, 1):
            uniq, inv = np.unique(halves[side], axis=0, return_inverse=True)
            parts.append((uniq, inv.reshape(-1)))
        (ua, ia), (ub, ib) = parts
        ea, dea = self._half_paths_for(0, rule, ua)
        eb, deb = self._half_paths_for(1, rule, ub)
        out = torch.zeros(m, self.n_players, dtype=torch.float64)
        for s in range(0, m, 512):
            sl = slice(s, s + 512)
            a = ea[ia[sl]].clone().requires_grad_(True)  # [r, K, D]
            b = eb[ib[sl]].clone().requires_grad_(True)
            with torch.enable_grad():
                f = self.similarity(a.reshape(-1, a.shape[-1]), b.reshape(-1, b.shape[-1]))
                ca, cb = torch.autograd.grad(f.sum(), (a, b))
            for side, de, idx, c in ((0, dea, ia, ca), (1, deb, ib, cb)):
                players = self.side_players[side]
                if len(players) == 0:
                    continue
                phi = torch.einsum("rkpd,rkd,k->rp", de[idx[sl]], c, w)
                out[sl, torch.as_tensor(players)] = phi
        return out

    def finalize(self, result: Any) -> None:
        result.metadata["tower_rows"] = int(self.n_tower_rows)


def _repeat_extra(extra: Any, reps: int) -> Any:
    if extra is None:
        return None
    return extra.repeat_interleave(reps, dim=0)


def _take(extra: Any, sl: slice) -> Any:
    return None if extra is None else extra[sl]


__all__ = ["EMPTY_MODES", "EmptySide", "TwoTowerModel", "forward_mode_attention"]
