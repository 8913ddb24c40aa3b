"""The gates of component players: forward hooks that replace a component's activation a by b + z·(a − b) for gates
z (one row of gates per batch row), or record activations; installed only inside a ``with`` block and removed on
exit, also after errors."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any, Iterator, Literal

import torch

from ...errors import MetagameError

SiteKind = Literal["input", "output", "residual"]


@dataclass
class Site:
    """One hooked module and the players that gate (slices of) its activation's last dimension."""

    module_name: str
    kind: SiteKind
    layer: int | None = None
    players: list[int] = field(default_factory=list)
    slices: list[slice] = field(default_factory=list)
    indicator: torch.Tensor | None = None  # [len(players), width]
    ablated: torch.Tensor | None = None  # [1, ..., width]
    #: True when the ablated value is the same at every position (zero, or a mean over positions)
    position_free: bool = True


def _first_tensor(out: Any) -> torch.Tensor:
    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, (tuple, list)) and out and isinstance(out[0], torch.Tensor):
        return out[0]
    raise MetagameError(f"component output of type {type(out).__name__} has no tensor to gate; name a module that returns a tensor")


def _replace_first(out: Any, new: torch.Tensor) -> Any:
    if isinstance(out, torch.Tensor):
        return new
    return type(out)([new, *out[1:]]) if isinstance(out, list) else (new, *out[1:])


class GateHooks:
    """Mixin of :class:`~metagame.domains.components.adapter.ComponentModel` (uses its ``sites`` and ``_module``)."""

    @contextlib.contextmanager
    def hooks(self, gates: torch.Tensor | None = None, record: list | None = None) -> Iterator[None]:
        """Install gating (``gates [n, d]``) or recording hooks; they are removed on exit, also on errors."""
        handles = []
        try:
            for s, site in enumerate(self.sites):
                module = self._module(site.module_name)
                if site.kind == "input":
                    handles.append(module.register_forward_pre_hook(self._pre_hook(s, gates, record)))
                elif site.kind == "output":
                    handles.append(module.register_forward_hook(self._out_hook(s, gates, record)))
                else:
                    handles.append(module.register_forward_hook(self._res_hook(s, gates, record), with_kwargs=True))
            yield
        finally:
            for h in handles:
                h.remove()

    @contextlib.contextmanager
    def gating(self, gates: torch.Tensor) -> Iterator[None]:
        """Inside the block every forward pass of ``self.model`` (or of a model holding it) runs with the components
        interpolated by ``gates`` ``[n, d]`` (differentiable): row r of a batch of n rows gets gates[r]; a batch of
        k·n rows is read as k stacked blocks of the n rows (e.g. two texts encoded in one call)."""
        if gates.ndim != 2 or gates.shape[1] != self.n_players:
            raise MetagameError(f"gates must have shape (n, {self.n_players}); got {tuple(gates.shape)}")
        with self.hooks(gates=gates):
            yield

    @property
    def positional_ablation(self) -> bool:
        """True when some ablated value depends on the position (patching, or a mean over same-length inputs)."""
        return not all(site.position_free for site in self.sites)

    def _ablated_like(self, site: Site, act: torch.Tensor) -> torch.Tensor:
        b = site.ablated.to(device=act.device, dtype=act.dtype)
        if b.ndim == act.ndim and all(x in (1, y) for x, y in zip(b.shape[1:-1], act.shape[1:-1])):
            return b
        if site.position_free:
            return b.reshape(-1, b.shape[-1])[:1].reshape((1,) * (act.ndim - 1) + (b.shape[-1],))
        raise MetagameError(
            f"the ablated activations of {site.module_name} were captured with shape {tuple(b.shape)}, but this run "
            f"has {tuple(act.shape)}; position-dependent ablation (patch, or a mean over same-length inputs) needs runs "
            f"of the captured length. Use ablation='zero', pool_positions=True, or a mean over inputs of other lengths"
        )

    def _gate(self, s: int, gates: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        site = self.sites[s]
        n = gates.shape[0]
        if act.shape[0] != n:
            if n == 0 or act.shape[0] % n:
                raise MetagameError(
                    f"{site.module_name} ran on a batch of {act.shape[0]} rows with gates for {n} coalitions; the batch "
                    f"must hold the coalitions once or as stacked blocks"
                )
            gates = gates.repeat(act.shape[0] // n, 1)
        ind = site.indicator.to(device=act.device, dtype=act.dtype)
        zs = gates[:, site.players].to(device=act.device, dtype=act.dtype)
        g = 1.0 + (zs - 1.0) @ ind  # [n, width]: gate of each activation coordinate
        g = g.reshape((g.shape[0],) + (1,) * (act.ndim - 2) + (g.shape[1],))
        b = self._ablated_like(site, act)
        return b + g * (act - b)

    def _pre_hook(self, s, gates, record):
        def hook(module, args):
            if record is not None:
                record[s] = args[0].detach()
                return None
            return (self._gate(s, gates, args[0]), *args[1:])

        return hook

    def _out_hook(self, s, gates, record):
        def hook(module, args, out):
            act = _first_tensor(out)
            if record is not None:
                record[s] = act.detach()
                return None
            return _replace_first(out, self._gate(s, gates, act))

        return hook

    def _res_hook(self, s, gates, record):
        def hook(module, args, kwargs, out):
            h_in = args[0] if args else kwargs.get("hidden_states")
            if not isinstance(h_in, torch.Tensor):
                raise MetagameError(f"could not find the input hidden states of layer {self.sites[s].module_name}")
            h_out = _first_tensor(out)
            update = h_out - h_in
            if record is not None:
                record[s] = update.detach()
                return None
            return _replace_first(out, h_in + self._gate(s, gates, update))

        return hook


__all__ = ["GateHooks", "Site", "SiteKind"]
