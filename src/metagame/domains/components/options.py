"""The component options, declared once: :class:`ComponentOptions` is what
:class:`~metagame.domains.components.adapter.ComponentModel` takes as keywords (its signature lists these fields),
what the ``components=`` keywords of ``explain_lm`` / ``explain_text_pair`` / ``explain_vision`` are
(:data:`COMPONENT_OPTIONS`), and what ``metagame lm --components`` reads its choices and defaults from.
"""

from __future__ import annotations

import dataclasses
import inspect
from dataclasses import dataclass, fields
from typing import Any, Callable, Literal, Mapping, Sequence

from ...errors import MetagameError

Ablation = Literal["zero", "mean", "patch"]
ComponentKind = Literal["heads", "neurons", "layers"]


@dataclass(frozen=True)
class ComponentOptions:
    """Which components are players and how an absent one is ablated.

    Attributes:
        components: ``"heads"``, ``"neurons"``, ``"layers"`` (located by the architecture registry) or a list of
            module names (each module's whole output is one player).
        layers: restrict heads / neurons / layers to these layer indices (default all).
        ablation: ``"zero"``, ``"mean"`` (over ``reference``) or ``"patch"`` (activations of ``corrupted``).
        neuron_groups: split each layer's MLP neurons into this many contiguous groups (default one player per
            neuron).
        reference: the inputs whose activations are averaged for the ``mean`` ablation: a batch of inputs, or a list
            of single inputs of any lengths, averaged over every position (the entry points also take texts and
            tokenize them).
        corrupted: the input whose activations are patched in (``patch``), of the same shape as the explained one
            (``explain_lm`` also takes a prompt).
        architecture: registry key; default detected from ``model.config.model_type``.
    """

    components: ComponentKind | Sequence[str] = "heads"
    layers: Sequence[int] | None = None
    ablation: Ablation = "zero"
    neuron_groups: int | None = None
    reference: Any = None
    corrupted: Any = None
    architecture: str | None = None

    @classmethod
    def build(cls, options: Mapping[str, Any]) -> "ComponentOptions":
        """Options from keywords, with an error naming the valid ones for an unknown keyword."""
        unknown = sorted(set(options) - set(COMPONENT_OPTIONS))
        if unknown:
            raise MetagameError(f"unknown component option(s) {unknown}; they are: {', '.join(COMPONENT_OPTIONS)}")
        return cls(**options)

    def replace(self, **changes: Any) -> "ComponentOptions":
        """A copy with some options changed."""
        return dataclasses.replace(self, **changes)

    def keywords(self) -> dict[str, Any]:
        """The options as keywords (values as they are, not copied)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


#: the component keywords, in declaration order
COMPONENT_OPTIONS: tuple[str, ...] = tuple(f.name for f in fields(ComponentOptions))


def with_option_keywords(init: Callable[..., None]) -> Callable[..., None]:
    """Give an ``__init__(self, ..., **options)`` the signature that lists :class:`ComponentOptions`' fields as
    keyword-only parameters in place of ``**options`` (what option listings and errors read); the function is
    unchanged."""
    signature = inspect.signature(init)
    params = [p for p in signature.parameters.values() if p.kind is not p.VAR_KEYWORD]
    defaults = ComponentOptions()
    hints = {f.name: f.type for f in fields(ComponentOptions)}
    listed = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=getattr(defaults, name),
                                annotation=hints[name]) for name in COMPONENT_OPTIONS]
    at = next((k for k, p in enumerate(params) if p.kind is p.KEYWORD_ONLY and p.default is not p.empty), len(params))
    init.__signature__ = signature.replace(parameters=params[:at] + listed + params[at:])  # type: ignore[attr-defined]
    return init


__all__ = ["Ablation", "COMPONENT_OPTIONS", "ComponentKind", "ComponentOptions", "with_option_keywords"]
