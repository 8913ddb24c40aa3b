"""Players of different kinds in one game: prompt words and model components (heads, neurons, layers) together.

A joint game has one *driver* (an adapter whose forward pass computes f: a causal LM over the words of a prompt, a
text-pair or CLIP encoder) and one or more *modifiers* (component adapters whose gates act on the driver's model
through hooks, :meth:`~metagame.domains.components.adapter.ComponentModel.gating`). The players are the union of the parts'
players, in the order the parts are given; a coalition S splits into each part's mask, and

    f(x_S) = f_driver(x_{S ∩ words}) with every component outside S ablated,

evaluated in one forward pass per batch of coalitions: word masking and component gates ride in the same pass. The
continuous input of the differentiable view is the parts' inputs side by side (word embeddings and gates, flattened
and concatenated), so gradient methods differentiate with respect to both at once and Integrated Gradients walks
the joint straight path from (baseline embeddings, all gates 0) to x_S.

M[word i, head j] then says how attention head j moves the attribution of word i, and M[head j, word i] how word i
moves the attribution of head j (the cross blocks, ``result.extras["head_to_word"]`` / ``["word_to_head"]``).

What a part provides (duck-typed capabilities, no type checks):

* a modifier: ``gating(gates [n, d_part])`` (a context manager) and ``model`` (the module it hooks, which must be the
  driver's ``model`` or inside it); optionally ``positional_ablation`` (refused when the driver moves positions);
* the driver: ``model``, ``embed`` / ``forward`` / ``reduce``; optionally ``full_sequence()`` (a context manager
  that turns off caches computed without the gates, e.g. a causal LM's cached template prefix),
  ``moves_positions`` (True when masking re-packs tokens) and ``empty_side(coalitions)`` / ``empty_value()`` (rows
  whose f is a constant, e.g. a two-tower model with one side empty).

    >>> words = CausalLM(model, "The movie was not bad", " good", tokenizer=tok)
    >>> heads = ComponentModel(model, {"input_ids": torch.tensor([words.sequence_ids()])}, output=None, layers=[1])
    >>> res = metagame.explain(metagame.joint(words, heads), "integrated_gradients")
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator, Sequence

import numpy as np
import torch

from ..errors import MetagameError
from ..players.coalitions import as_coalitions
from ..results.extras import cross_block_key
from .base import ModelAdapter
from .contract import Adapter, TorchModule, provides


def _is_modifier(adapter: ModelAdapter) -> bool:
    return callable(getattr(adapter, "gating", None))


def _holds(outer: torch.nn.Module, inner: torch.nn.Module) -> bool:
    return any(m is inner for m in outer.modules())


def _unique(labels: Sequence[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for label in labels:
        n = seen.get(label, 0)
        seen[label] = n + 1
        out.append(label if n == 0 else f"{label} ({n + 1})")
    if len(set(out)) != len(out):  # a label like "x (2)" was already taken: number every duplicate
        return [f"{label} #{k}" for k, label in enumerate(labels)]
    return out


def _flatten(obj: Any, leaves: list) -> Any:
    """The structure of ``obj`` (None, tensors, tuples, lists, dicts of them) with its tensors moved to ``leaves``."""
    if isinstance(obj, torch.Tensor):
        leaves.append(obj)
        return ("leaf",)
    if isinstance(obj, (tuple, list)):
        return (type(obj), [_flatten(o, leaves) for o in obj])
    if isinstance(obj, dict):
        return (dict, [(k, _flatten(v, leaves)) for k, v in obj.items()])
    return ("const", obj)


def _unflatten(spec: Any, leaves: Iterator[torch.Tensor]) -> Any:
    if spec[0] == "leaf":
        return next(leaves)
    if spec[0] == "const":
        return spec[1]
    if spec[0] is dict:
        return {k: _unflatten(v, leaves) for k, v in spec[1]}
    return spec[0](_unflatten(s, leaves) for s in spec[1])


def block_name(source: str, target: str) -> str:
    """The extras key of the cross block with sources of kind ``source`` and targets of kind ``target``
    (:func:`metagame.results.extras.cross_block_key`)."""
    return cross_block_key(source, target)


def kind_blocks(kinds: Sequence[str]) -> list[tuple[str, np.ndarray]]:
    """The player kinds in order of first appearance with the indices of their players."""
    arr = np.asarray(list(kinds))
    order: list[str] = []
    for k in kinds:
        if k not in order:
            order.append(k)
    return [(k, np.flatnonzero(arr == k)) for k in order]


def cross_blocks(result: Any) -> dict[str, np.ndarray]:
    """Every cross block of a result with players of several kinds: ``"{a}_to_{b}"`` = M[players of kind b, players
    of kind a] ``[n_b, n_a]`` (row = target of kind b, column = source of kind a), e.g. ``head_to_word[i, j]`` = how
    head j moves the attribution of word i."""
    kinds = result.player_kinds
    if kinds is None:
        return {}
    blocks = kind_blocks(kinds)
    out: dict[str, np.ndarray] = {}
    for a, ia in blocks:
        for b, ib in blocks:
            if a != b:
                out[block_name(a, b)] = np.asarray(result.matrix)[np.ix_(ib, ia)].copy()
    return out


class JointModel(ModelAdapter):
    """One game over the players of several adapters: a driver (words) and modifiers (component gates).

    f(x_S) = the driver's f at its part of S, run with each modifier's part of S applied through its gates; one
    forward pass per batch of coalitions. See the module docstring.

    Args:
        parts: the adapters, in the order their players appear: exactly one driver (an adapter with its own forward
            pass, e.g. :class:`~metagame.domains.lm.adapter.CausalLM`) and at least one modifier
            (:class:`~metagame.domains.components.adapter.ComponentModel` on the driver's model or a module inside it).
        batch_size: coalitions per forward pass (default: the driver's).
    """

    def __init__(self, *parts: ModelAdapter, batch_size: int | None = None):
        if len(parts) < 2:
            raise MetagameError("a joint game needs at least two adapters, e.g. joint(words_adapter, components_adapter)")
        for p in parts:
            if not provides(p, Adapter):
                raise MetagameError(f"joint(...) takes model adapters; got {type(p).__name__}")
            if isinstance(p, JointModel):
                raise MetagameError("a joint game cannot hold another joint game; pass all the parts to one joint(...)")
        drivers = [k for k, p in enumerate(parts) if not _is_modifier(p)]
        if len(drivers) != 1:
            raise MetagameError(
                f"a joint game needs exactly one adapter with its own forward pass (words, patches) and component "
                f"adapters that gate its model; got {len(drivers)} of the former "
                f"({', '.join(type(parts[k]).__name__ for k in drivers) or 'none'})"
            )
        self.parts = list(parts)
        self.driver_index = drivers[0]
        self.driver = parts[self.driver_index]
        self.modifiers = [p for k, p in enumerate(parts) if k != self.driver_index]
        super().__init__(batch_size=batch_size or self.driver.batch_size, cache_values=True)
        self._check_parts()
        sizes = [int(p.n_players) for p in parts]
        self.offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(int)
        self.slices = [slice(int(a), int(b)) for a, b in zip(self.offsets[:-1], self.offsets[1:])]
        self.n_players = int(self.offsets[-1])
        self.players = _unique([str(label) for p in parts for label in p.players])
        self.player_kinds = [k for p in parts for k in (p.player_kinds or ["feature"] * p.n_players)]
        self.exact_max_players = min(int(getattr(p, "exact_max_players", 16)) for p in parts)
        # the shape of each part's continuous input (one row), for splitting the joint z
        probe = np.ones((1, self.n_players), dtype=bool)
        outs = [p.embed(probe[:, sl]) for p, sl in zip(parts, self.slices)]
        self._shapes: list[tuple[int, ...]] = [tuple(z.shape[1:]) for z, _, _ in outs]
        dtypes = [z.dtype for z, _, _ in outs]
        self._extra_spec = _flatten(tuple(extra for _, _, extra in outs), [])  # the parts' extras, tensors as leaves
        self.differentiable = all(getattr(p, "differentiable", True) for p in parts)
        self._z_dtype = dtypes[0]
        for dt in dtypes[1:]:
            self._z_dtype = torch.promote_types(self._z_dtype, dt)
        self._part_dtypes = dtypes
        self._widths = [int(np.prod(s)) if s else 1 for s in self._shapes]

    def _check_parts(self) -> None:
        driver = self.driver
        for p in self.parts:
            if not getattr(p, "differentiable", True) and p is not driver:
                raise MetagameError(f"{type(p).__name__} has no gradient path and cannot gate a joint game")
            if tuple(getattr(p, "attribution_shape", ())) or tuple(getattr(p, "side_targets", ())):
                raise MetagameError(
                    f"{type(p).__name__} has vector-valued attributions or side targets; a joint game needs scalar parts "
                    f"(use the plain adapter, e.g. mode='scalar')"
                )
        if not provides(driver, TorchModule):
            raise MetagameError(f"{type(driver).__name__} keeps no torch model in .model, so components cannot gate it")
        host = driver.model
        for mod in self.modifiers:
            if not _holds(host, mod.model):
                raise MetagameError(
                    f"the component adapter gates {type(mod.model).__name__}, which is not the model of "
                    f"{type(driver).__name__} nor inside it; build both adapters on the same loaded model"
                )
            if getattr(driver, "moves_positions", False) and getattr(mod, "positional_ablation", False):
                raise MetagameError(
                    "the component ablation depends on the position (patching, or a mean over same-length inputs), but "
                    "the word masking re-packs the kept tokens, so positions move; use ablation='zero', "
                    "pool_positions=True (mean over positions), or masking='mask_token'"
                )

    # ------------------------------------------------------------------ the split
    def split(self, coalitions: np.ndarray) -> list[np.ndarray]:
        """Each part's mask of the joint coalitions ``bool[m, d]``."""
        coalitions = np.asarray(coalitions, dtype=bool)
        return [coalitions[:, sl] for sl in self.slices]

    def _split_z(self, z: torch.Tensor) -> list[torch.Tensor]:
        n = z.shape[0]
        pieces = torch.split(z, self._widths, dim=1)
        return [piece.reshape((n,) + shape) for piece, shape in zip(pieces, self._shapes)]

    # ------------------------------------------------------------------ adapter protocol
    @property
    def dtype(self) -> torch.dtype:
        return self.driver.dtype

    @property
    def model(self) -> torch.nn.Module:
        """The torch model the parts share (the driver's), for methods that modify it (AttnLRP rules, Captum hooks)."""
        return self.driver.model

    def embed(self, coalitions: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, Any]:
        """z = the parts' continuous inputs flattened side by side ``[m, Σ widths]`` (word embeddings, gates), zb the
        same of their baselines, extra = the tensors of the parts' extras as one flat tuple (None without any), so
        code that repeats row arguments (gradient methods, Captum) sees every one of them."""
        coalitions = as_coalitions(coalitions, self.n_players)
        m = coalitions.shape[0]
        outs = [p.embed(part) for p, part in zip(self.parts, self.split(coalitions))]
        device = outs[self.driver_index][0].device  # where the driver's model runs
        zs = [z.reshape(m, -1).to(device=device, dtype=self._z_dtype) for z, _, _ in outs]
        zbs = [zb.reshape(m, -1).to(device=device, dtype=self._z_dtype) for _, zb, _ in outs]
        extras = [extra for _, _, extra in outs]
        leaves: list[torch.Tensor] = []
        _flatten(tuple(extras), leaves)
        return torch.cat(zs, dim=1), torch.cat(zbs, dim=1), (tuple(leaves) if leaves else None)

    def _part_extras(self, extra: Any) -> tuple:
        """Each part's extra from the flat tuple of :meth:`embed` (or its single tensor, as Captum passes it)."""
        if extra is None:
            leaves: list = []
        elif isinstance(extra, (tuple, list)):
            leaves = list(extra)
        else:
            leaves = [extra]
        return _unflatten(self._extra_spec, iter(leaves))

    @contextlib.contextmanager
    def applied(self, z: torch.Tensor) -> Iterator[list[torch.Tensor]]:
        """Inside the block the modifiers' gates (their pieces of ``z``) act on the model; yields every part's piece."""
        pieces = self._split_z(z)
        with contextlib.ExitStack() as stack:
            full = getattr(self.driver, "full_sequence", None)
            if callable(full):
                stack.enter_context(full())
            for k, p in enumerate(self.parts):
                if p is not self.driver:
                    stack.enter_context(p.gating(pieces[k].reshape(z.shape[0], -1)))
            yield pieces

    def forward(self, z: torch.Tensor, extra: Any = None, row_coalitions: np.ndarray | None = None) -> torch.Tensor:
        """f at joint inputs ``z`` ``[n, Σ widths]``: the driver's forward pass with the gates applied -> ``[n]``."""
        n = z.shape[0]
        k = self.driver_index
        rows = None if row_coalitions is None else np.asarray(row_coalitions, dtype=bool)
        self.count(n)
        with self.applied(z) as pieces:
            dz = pieces[k].to(self._part_dtypes[k])
            dextra = self._part_extras(extra)[k]
            out = self.driver.forward(dz, dextra, row_coalitions=None if rows is None else rows[:, self.slices[k]])
        out = out.to(self.dtype)
        if rows is not None:
            empty = self._empty_rows(rows)
            if empty.any():
                const = torch.full_like(out, float(self.driver.empty_value()))
                out = torch.where(torch.as_tensor(empty, device=out.device), const, out)
        return self.check_output(out, n, row_coalitions)

    def _empty_rows(self, coalitions: np.ndarray) -> np.ndarray:
        """Rows where a two-tower driver has an empty side (f is the constant ``empty_value`` there)."""
        rule = getattr(self.driver, "empty_side", None)
        if not callable(rule):
            return np.zeros(len(coalitions), dtype=bool)
        return np.asarray(rule(coalitions[:, self.slices[self.driver_index]]), dtype=bool)

    def attribute(self, method: Any, coalitions: np.ndarray) -> torch.Tensor:
        """φ(x_S) of ``method`` per row on the joint game; 0 on rows where a two-tower driver has an empty side."""
        coalitions = np.asarray(coalitions, dtype=bool)
        empty = self._empty_rows(coalitions)
        if not empty.any():
            return method.attribute(self, coalitions)
        out = torch.zeros(len(coalitions), self.n_players, dtype=torch.float64)
        if (~empty).any():
            phi = method.attribute(self, coalitions[~empty])
            out[torch.as_tensor(~empty)] = phi.detach().to(torch.float64).cpu()
        return out

    def reduce(self, coordinate_scores: torch.Tensor) -> torch.Tensor:
        """Per-coordinate scores ``[m, Σ widths]`` -> per-player scores ``[m, d]`` (each part reduces its own piece)."""
        pieces = self._split_z(coordinate_scores)
        outs = [p.reduce(piece.to(dtype)).to(torch.float64).cpu()
                for p, piece, dtype in zip(self.parts, pieces, self._part_dtypes)]
        return torch.cat(outs, dim=1)

    # ------------------------------------------------------------------ reporting
    def display_context(self) -> dict:
        """The driver's context, plus the parts (adapter, kind, number of players) in player order."""
        ctx = dict(self.driver.display_context())
        for p in self.modifiers:
            for key, value in p.display_context().items():
                ctx.setdefault(key, value)
        ctx["joint_parts"] = [
            {"adapter": type(p).__name__, "kind": (p.player_kinds or ["feature"])[0] if p.n_players else "",
             "n_players": int(p.n_players)}
            for p in self.parts
        ]
        return ctx

    def finalize(self, result: Any) -> None:
        """Adds every cross block ``"{a}_to_{b}"`` (sources of kind a, targets of kind b; see :func:`cross_blocks`)."""
        result.extras.update(cross_blocks(result))

    def explained(self) -> dict[str, str]:
        """The driver's f; each part's masking."""
        driver = self.driver.explained()
        masking = "; ".join(p.explained()["masking"] for p in self.parts)
        return {"f": driver["f"], "masking": masking, "empty": "; ".join(p.explained()["empty"] for p in self.parts)}

    def describe(self) -> dict:
        return {"adapter": "JointModel", "parts": [p.describe() for p in self.parts], "driver": type(self.driver).__name__}

    def fingerprint_parts(self) -> dict[str, Any]:
        return {"parts": [p.fingerprint_parts() for p in self.parts], "order": [type(p).__name__ for p in self.parts]}

    def exact_hint(self) -> str:
        return "explain fewer words or fewer components, e.g. layers=[...]"


def joint(*adapters: ModelAdapter, batch_size: int | None = None) -> JointModel:
    """One game whose players are the union of the adapters' players (see :class:`JointModel`).

    f(x_S) = the driver's f at S ∩ (its players) with every component of S's complement ablated, one forward pass per
    batch of coalitions; M[i, j] mixes kinds, e.g. M[word i, head j] = how head j moves word i's attribution.

    Example:
        >>> res = metagame.explain(metagame.joint(words, heads), "integrated_gradients")
        >>> res.extras["head_to_word"]     # [n_words, n_heads]
    """
    return JointModel(*adapters, batch_size=batch_size)


__all__ = ["JointModel", "block_name", "cross_blocks", "joint", "kind_blocks"]
