"""Component adapter: players are attention heads, MLP neurons (or groups), whole layers or named modules.

Every player p has a gate z_p ∈ [0, 1]. Running the model at gates z replaces the activation a of
each component by the interpolation

    a(z) = b + z · (a − b),

where a is the component's activation in the current run and b its ablated value (``zero``; ``mean``
over a reference batch; ``patch``: the activation on a corrupted input). A coalition S is the gate
vector 1_S (baseline 0), so f(x_S) is the model with every component outside S ablated, and
gradient × input on the gates at z = 1 is attribution patching, ∂f/∂a · (a − b).

Coalitions run as a batch: the explained input is repeated once per coalition and each row gets
its own gates, so one forward pass evaluates many ablation masks. Hooks live only inside a
``with`` block and are removed on exit, also after exceptions.

Inside :func:`metagame.joint` the gates ride along another adapter's forward pass (e.g. a causal LM whose prompt
words are masked at the same time): :meth:`ComponentModel.gating` installs the gates of ``n`` coalitions for any
run whose batch holds those ``n`` rows, or stacked blocks of them, at any sequence length when the ablated values do
not depend on the position.

Components are located by a small per-architecture registry (:data:`ARCHITECTURES`: GPT-2,
Llama-style, BERT-style, CLIP vision tower) or named directly (any module of ``model.named_modules()``).
"""

from __future__ import annotations

import re
from typing import Any, Callable, Sequence, get_args

import numpy as np
import torch

from ...errors import MetagameError
from ...models.base import ModelAdapter
from ...models.state import keeps_models
from .hooks import GateHooks, Site
from .options import Ablation, ComponentKind, ComponentOptions, with_option_keywords
from .registry import ARCHITECTURES, MODEL_TYPES, Architecture, detect_architecture, num_heads


def _module_list_message(names: Sequence[str], limit: int = 60) -> str:
    shown = ", ".join(names[:limit])
    more = f", ... ({len(names) - limit} more)" if len(names) > limit else ""
    return shown + more


class ComponentModel(GateHooks, ModelAdapter):
    """A torch / Hugging Face model explained over its components with ablation masking.

    f(x_S) = output of the model run on ``inputs`` with every component outside S ablated.

    Args:
        model: a ``torch.nn.Module`` (put in eval mode).
        inputs: the explained input with batch size 1: a dict of tensors (e.g. tokenizer output,
            passed as keyword arguments) or a tensor (passed positionally).
        output: a token id (f = logit of that token at the last position), a callable
            ``output(model_outputs) -> [n]``, or None for a part of a joint game only (:func:`metagame.joint`: the
            other adapter's forward pass gives f; ``inputs`` then only serve to find widths and ablated values).
        batch_size: coalitions (rows) per forward pass.
        pool_positions: average ``mean`` / ``patch`` ablated values over the positions too (one value per
            coordinate, usable at any sequence length, e.g. in a joint game whose word masking moves positions).
        **options: the fields of :class:`~metagame.domains.components.options.ComponentOptions` (``components``,
            ``layers``, ``ablation``, ``neuron_groups``, ``reference``, ``corrupted``, ``architecture``), listed
            in this class's signature; ``reference`` and ``corrupted`` are model inputs here.
    """

    @with_option_keywords
    @keeps_models
    def __init__(
        self,
        model: torch.nn.Module,
        inputs: Any,
        *,
        output: int | Callable[[Any], torch.Tensor] | None,
        batch_size: int = 64,
        pool_positions: bool = False,
        **options: Any,
    ):
        super().__init__(batch_size=batch_size, cache_values=True)
        o = ComponentOptions.build(options)
        ablation, reference, corrupted = o.ablation, o.reference, o.corrupted
        if not isinstance(model, torch.nn.Module):
            raise MetagameError(f"model must be a torch.nn.Module; got {type(model).__name__}")
        if ablation not in get_args(Ablation):
            raise MetagameError(f"unknown ablation {ablation!r}; use 'zero', 'mean' (with reference=...) or 'patch' (with corrupted=...)")
        if ablation == "mean" and reference is None:
            raise MetagameError("ablation='mean' needs reference=... (a batch of inputs to average activations over)")
        if ablation == "patch" and corrupted is None:
            raise MetagameError("ablation='patch' needs corrupted=... (an input of the same shape to patch activations from)")
        self.model = model  # in eval mode while metagame runs it, then left as given (models/state.py)
        self.inputs = self._batch1(inputs, "inputs")
        self.ablation = ablation
        if isinstance(output, (int, np.integer)) and not isinstance(output, bool):
            token = int(output)
            self.output_fn: Callable = lambda out: _last_logit(out, token)
            self.output_desc = f"logit[{token}] at the last position"
        elif output is None:
            self.output_fn = _no_output
            self.output_desc = "none (a part of a joint game)"
        elif callable(output):
            self.output_fn = output
            self.output_desc = getattr(output, "__name__", "callable")
        else:
            raise MetagameError("output must be a token id (int), a callable output(model_outputs) -> [n], or None "
                                "(a part of metagame.joint(...))")
        self.has_output = output is not None
        self.pool_positions = bool(pool_positions)
        self._modules_by_name = dict(model.named_modules())
        self.architecture = None
        self._build_sites(o.components, o.layers, o.neuron_groups, o.architecture)
        self._gates: torch.Tensor | None = None
        self._capture_ablations(reference, corrupted)

    # ------------------------------------------------------------------ set-up
    @staticmethod
    def _batch1(inputs: Any, name: str) -> Any:
        if isinstance(inputs, torch.Tensor):
            t = inputs.unsqueeze(0) if inputs.ndim == 1 else inputs
            if t.shape[0] != 1:
                raise MetagameError(f"{name} must hold one example (batch size 1); got batch size {t.shape[0]}")
            return t
        if isinstance(inputs, dict) or hasattr(inputs, "keys"):
            out = {}
            for k in inputs.keys():
                v = inputs[k]
                if isinstance(v, torch.Tensor):
                    if v.ndim == 0 or v.shape[0] != 1:
                        raise MetagameError(f"{name}[{k!r}] must have batch size 1 (shape (1, ...)); got {tuple(v.shape)}")
                out[k] = v
            return out
        raise MetagameError(f"{name} must be a tensor or a dict of tensors (e.g. tokenizer(..., return_tensors='pt'))")

    def _block_names(self, arch: Architecture) -> dict[int, str]:
        pattern = re.compile(arch.layer_pattern)
        blocks: dict[int, str] = {}
        for name in self._modules_by_name:
            m = pattern.search(name)
            if m and name.endswith(m.group(0)):
                blocks.setdefault(int(m.group(1)), name)
        return blocks

    def _module(self, name: str) -> torch.nn.Module:
        mod = self._modules_by_name.get(name)
        if mod is None:
            names = [n for n in self._modules_by_name if n]
            raise MetagameError(f"unknown module {name!r}; available modules: {_module_list_message(names)}")
        return mod

    def _build_sites(self, components, layers, neuron_groups, architecture) -> None:
        """Sites to hook; players are assigned in :meth:`_finish_players` once widths are known."""
        self.sites: list[Site] = []
        self._plan: list[tuple[str, int | None]] = []  # per site: (what, heads / groups)
        if isinstance(components, str):
            if components not in get_args(ComponentKind):
                raise MetagameError(
                    f"unknown components {components!r}; use {', '.join(map(repr, get_args(ComponentKind)))} or a list "
                    f"of module names"
                )
            key = architecture or detect_architecture(self.model)
            if key not in ARCHITECTURES:
                raise MetagameError(f"unknown architecture {key!r}; registered: {', '.join(ARCHITECTURES)}")
            self.architecture = key
            arch = ARCHITECTURES[key]
            blocks = self._block_names(arch)
            if not blocks:
                raise MetagameError(f"no transformer blocks matching the {key!r} layout were found; name modules directly instead")
            chosen = sorted(blocks) if layers is None else [int(l) for l in layers]
            for l in chosen:
                if l not in blocks:
                    raise MetagameError(f"layer {l} does not exist; the model has layers {sorted(blocks)}")
            for l in chosen:
                block = blocks[l]
                if components == "heads":
                    site = Site(f"{block}.{arch.head_site}", "input", layer=l)
                    self._plan.append(("heads", num_heads(self.model, arch)))
                elif components == "neurons":
                    site = Site(f"{block}.{arch.neuron_site}", "input", layer=l)
                    self._plan.append(("neurons", neuron_groups))
                else:
                    site = Site(block, "residual", layer=l)
                    self._plan.append(("layer", None))
                self._module(site.module_name)
                self.sites.append(site)
        else:
            names = [str(n) for n in components]
            if not names:
                raise MetagameError("components is an empty list; name at least one module")
            for name in names:
                self._module(name)
                self.sites.append(Site(name, "output"))
                self._plan.append(("module", None))

    def _finish_players(self, widths: list[int]) -> None:
        """Assign players and slices once activation widths are known (heads split evenly; neurons by group)."""
        players: list[str] = []
        kinds: list[str] = []
        for site, width, (what, n) in zip(self.sites, widths, self._plan):
            if what == "heads":
                if width % n:
                    raise MetagameError(f"{site.module_name} has width {width}, not divisible by {n} heads")
                hd = width // n
                site.slices = [slice(h * hd, (h + 1) * hd) for h in range(n)]
                labels, kind = [f"L{site.layer}.H{h}" for h in range(n)], "head"
            elif what == "neurons":
                groups = width if n is None else int(n)
                if groups < 1 or groups > width:
                    raise MetagameError(f"neuron_groups must be between 1 and {width} (the MLP width); got {n}")
                edges = np.linspace(0, width, groups + 1).round().astype(int)
                site.slices = [slice(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:])]
                if n is None:
                    labels = [f"L{site.layer}.N{j}" for j in range(width)]
                else:
                    labels = [f"L{site.layer}.N{a}-{b - 1}" for a, b in zip(edges[:-1], edges[1:])]
                kind = "neuron"
            else:
                site.slices = [slice(None)]
                labels = [f"L{site.layer}"] if what == "layer" else [site.module_name]
                kind = "layer" if what == "layer" else "component"
            site.players = list(range(len(players), len(players) + len(labels)))
            players += labels
            kinds += [kind] * len(labels)
        self.players = players
        self.player_kinds = kinds
        self.n_players = len(players)
        for site, width in zip(self.sites, widths):
            ind = torch.zeros(len(site.players), width, dtype=self.dtype)
            for r, sl in enumerate(site.slices):
                ind[r, sl] = 1.0
            site.indicator = ind

    # ------------------------------------------------------------------ activations
    def _run(self, inputs: Any):
        if isinstance(inputs, dict):
            return self.model(**inputs)
        return self.model(inputs)

    def _expand(self, inputs: Any, n: int) -> Any:
        if isinstance(inputs, torch.Tensor):
            return inputs.expand((n,) + tuple(inputs.shape[1:]))
        return {k: (v.expand((n,) + tuple(v.shape[1:])) if isinstance(v, torch.Tensor) else v) for k, v in inputs.items()}

    def capture(self, inputs: Any, check_output: bool = False) -> list[torch.Tensor]:
        """Each site's activation on ``inputs`` (no gating): ``[batch, ..., width]`` per site.

        With ``check_output`` the explained output f is computed on this run and validated (one scalar per row).
        """
        store: list[torch.Tensor | None] = [None] * len(self.sites)
        with self.hooks(record=store), torch.no_grad():
            out = self._run(inputs)
            if check_output and self.has_output:
                self.value_clean = float(self.check_output(self.output_fn(out), 1)[0])
        missing = [self.sites[s].module_name for s, a in enumerate(store) if a is None]
        if missing:
            raise MetagameError(f"modules {missing} were not called in the forward pass; choose modules that run on these inputs")
        return [a.detach() for a in store]  # type: ignore[union-attr]

    def _capture_ablations(self, reference: Any, corrupted: Any) -> None:
        clean = self.capture(self.inputs, check_output=True)
        self._finish_players([int(a.shape[-1]) for a in clean])
        if self.n_players < 1:
            raise MetagameError("no components were selected")
        if self.ablation == "zero":
            ablated = [torch.zeros_like(a) for a in clean]
        elif self.ablation == "mean" and isinstance(reference, (list, tuple)):
            # single inputs of any lengths: every position of every input counts once
            if not reference:
                raise MetagameError("reference is an empty list; pass at least one input to average activations over")
            runs = [self.capture(self._batch1(r, "reference[" + str(k) + "]")) for k, r in enumerate(reference)]
            ablated = []
            for s_idx, a in enumerate(clean):
                flat = torch.cat([run[s_idx].reshape(-1, a.shape[-1]) for run in runs])
                ablated.append(flat.mean(dim=0).reshape((1,) * (a.ndim - 1) + (a.shape[-1],)))
        elif self.ablation == "mean":
            ref = self.capture(reference)
            ablated = []
            for a, r in zip(clean, ref):
                if tuple(r.shape[1:]) == tuple(a.shape[1:]):
                    ablated.append(r.mean(dim=0, keepdim=True))
                else:  # different lengths: average over the batch and every position
                    if r.shape[-1] != a.shape[-1]:
                        raise MetagameError(f"reference activations have width {r.shape[-1]}, expected {a.shape[-1]}")
                    ablated.append(r.reshape(-1, r.shape[-1]).mean(dim=0).reshape((1,) * (a.ndim - 1) + (a.shape[-1],)))
        else:
            corr = self.capture(self._batch1(corrupted, "corrupted"))
            for a, c in zip(clean, corr):
                if c.shape != a.shape:
                    raise MetagameError(
                        f"corrupted activations have shape {tuple(c.shape)} but clean ones {tuple(a.shape)}; the corrupted "
                        f"input must have the same shape as inputs (same number of tokens)"
                    )
            ablated = corr
        for site, b in zip(self.sites, ablated):
            if self.pool_positions and b.ndim > 2:
                b = b.reshape(-1, b.shape[-1]).mean(dim=0).reshape((1,) * (b.ndim - 1) + (b.shape[-1],))
            site.ablated = b.to(self.dtype)
            flat = site.ablated.reshape(-1, site.ablated.shape[-1])
            site.position_free = bool((flat == flat[:1]).all())
        self.clean_activations = clean

    # ------------------------------------------------------------------ hooks
    # ------------------------------------------------------------------ adapter protocol
    @property
    def dtype(self) -> torch.dtype:
        p = next(self.model.parameters(), None)
        return p.dtype if p is not None and p.is_floating_point() else torch.float32

    def embed(self, coalitions: np.ndarray):
        z = torch.as_tensor(np.asarray(coalitions, dtype=bool), dtype=self.dtype)
        return z, torch.zeros_like(z), None

    def forward(self, z: torch.Tensor, extra: Any = None, row_coalitions: np.ndarray | None = None) -> torch.Tensor:
        if not self.has_output:
            _no_output(None)
        n = z.shape[0]
        self.count(n)
        with self.hooks(gates=z):
            out = self.output_fn(self._run(self._expand(self.inputs, n)))
        return self.check_output(out, n, row_coalitions)

    def reduce(self, coordinate_scores: torch.Tensor) -> torch.Tensor:
        return coordinate_scores

    def fingerprint_parts(self) -> dict[str, Any]:
        return {
            "model": self.model, "inputs": self.inputs, "output": self.output_fn, "output_desc": self.output_desc,
            "sites": [(s.module_name, s.kind, s.players, [(sl.start, sl.stop) for sl in s.slices]) for s in self.sites],
            "ablated": [s.ablated for s in self.sites], "has_output": self.has_output,
        }

    def explained(self) -> dict[str, str]:
        """f = the chosen output of the model at the input; components ablated as chosen."""
        how = {"zero": "its output set to zero", "mean": "its output replaced by its mean over the reference inputs",
               "patch": "its output patched in from the corrupted input"}[self.ablation]
        return {"f": f"{self.output_desc} of {type(self.model).__name__} at the input",
                "masking": f"an absent component has {how}",
                "empty": "every component ablated"}

    def describe(self) -> dict:
        cfg = getattr(self.model, "config", None)
        return {
            "adapter": "ComponentModel",
            "model": type(self.model).__name__,
            "model_type": getattr(cfg, "model_type", None),
            "architecture": self.architecture,
            "ablation": self.ablation,
            "pool_positions": self.pool_positions,
            "output": self.output_desc,
            "n_players": self.n_players,
        }


def _no_output(out: Any) -> torch.Tensor:
    raise MetagameError(
        "this ComponentModel was built with output=None, so it has no value of its own; use it inside "
        "metagame.joint(words_adapter, components_adapter), or pass output=<token id or callable>"
    )


def _last_logit(out: Any, token: int) -> torch.Tensor:
    logits = getattr(out, "logits", out)
    if isinstance(logits, (tuple, list)):
        logits = logits[0]
    if not isinstance(logits, torch.Tensor):
        raise MetagameError("the model output has no logits; pass output=callable(model_outputs) -> [n]")
    if logits.ndim == 3:
        logits = logits[:, -1]
    if logits.ndim != 2:
        raise MetagameError(f"expected logits of shape (n, seq, vocab) or (n, vocab); got {tuple(logits.shape)}")
    if not 0 <= token < logits.shape[-1]:
        raise MetagameError(f"token id {token} is outside the vocabulary (size {logits.shape[-1]})")
    return logits[:, token]


__all__ = [
    "ARCHITECTURES",
    "Ablation",
    "Architecture",
    "ComponentKind",
    "ComponentModel",
    "MODEL_TYPES",
    "Site",
    "detect_architecture",
]
