"""Words × components: the words of a prompt (causal LM, text pair, CLIP caption and patches) and the attention heads
(neurons, layers) of the same model, masked and ablated in the same forward pass. M[word i, head j] = how head j
moves the attribution of word i; M[head j, word i] = how word i moves head j's attribution.

    >>> res = metagame.explain_lm(path, "The movie was not bad", " good", components="heads", layers=[1])
    >>> res.extras["head_to_word"]          # [n_words, n_heads]

The component keywords of the word entry points are :class:`~metagame.domains.components.options.ComponentOptions`
(declared there once); :func:`component_extension` routes them, :func:`lm_components` / :func:`encoder_components`
turn texts into model inputs and hand them to the component adapter as one set of keywords.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Protocol, runtime_checkable

import torch

from ...applications.common import Extension
from ...errors import MetagameError
from ...models.base import ModelAdapter
from ...models.contract import TorchModule, require_capability
from ...models.joint import JointModel, joint
from .adapter import ComponentModel
from .options import COMPONENT_OPTIONS, ComponentOptions


def _reference_inputs(reference: Any, tokenize: Callable[[str], dict] | None) -> Any:
    """Reference inputs of a mean ablation: texts are tokenized one by one (a list of single inputs)."""
    if reference is None:
        return None
    if isinstance(reference, str):
        reference = [reference]
    if isinstance(reference, (list, tuple)) and all(isinstance(r, str) for r in reference):
        if tokenize is None:
            raise MetagameError("reference texts need a tokenizer; pass model inputs (dicts of tensors) instead")
        return [tokenize(r) for r in reference]
    return reference


def lm_components(words: Any, **options: Any) -> ComponentModel:
    """Component players of a causal LM adapter's model, for :func:`metagame.joint` with the LM's words.

    The component adapter runs on the LM's full token sequence (template, prompt, answer), so on its own its f is
    log p(answer | prompt) with all words present (the alternative answer, if any, is the joint game's business).
    ``reference``: texts (or model inputs) whose activations, averaged over every position, are the ``mean``
    ablation; ``corrupted``: a prompt with the same number of tokens whose activations are patched in (needs a
    masking that keeps positions, ``mask_token`` or ``zero_embedding``). ``options``:
    :class:`~metagame.domains.components.options.ComponentOptions`.
    """
    o = ComponentOptions.build(options)
    device = words.device
    ids = torch.tensor([words.sequence_ids()], device=device)

    def tokenize(text: str) -> dict:
        enc = words.tokenizer(text, return_tensors="pt")
        return {"input_ids": enc["input_ids"].to(device)}

    def answer_log_prob(out: Any) -> torch.Tensor:
        return words.answer_log_prob(out.logits)

    corrupted_input = None
    if o.corrupted is not None:
        if o.ablation != "patch":
            raise MetagameError("corrupted=... is the input of ablation='patch'; pass ablation='patch' or drop it")
        other = words.sequence_ids(o.corrupted)
        if len(other) != ids.shape[1]:
            raise MetagameError(
                f"the corrupted prompt has {len(other) - len(words.answer_ids)} tokens with the template but the prompt "
                f"{len(words.prompt_ids)}; activation patching needs the same number of tokens (pick a prompt of the "
                f"same length, or ablation='zero' / 'mean')"
            )
        corrupted_input = {"input_ids": torch.tensor([other], device=device)}
    return ComponentModel(
        words.model, {"input_ids": ids}, output=answer_log_prob, batch_size=words.batch_size,
        pool_positions=o.ablation == "mean" and getattr(words, "moves_positions", False),
        **o.replace(reference=_reference_inputs(o.reference, tokenize), corrupted=corrupted_input).keywords(),
    )


@runtime_checkable
class ComponentHost(TorchModule, Protocol):
    """The capability :func:`encoder_components` needs: the torch ``model`` whose components join the players, its
    ``batch_size``, and ``component_inputs()`` -> (the model inputs the components are read at, a tokenizer of
    ``reference`` texts or None). Text pairs and CLIP/SigLIP adapters (scalar mode) provide it."""

    batch_size: int

    def component_inputs(self) -> tuple[dict, Callable[[str], dict] | None]:
        """The model inputs (dict of tensors, one row) and the tokenizer of reference texts (None: none)."""


def encoder_components(adapter: Any, **options: Any) -> ComponentModel:
    """Component players of a text-pair encoder (BERT-style heads) or a CLIP model (vision-tower heads), for
    :func:`metagame.joint` with the adapter's words / patches. The components only gate (``output=None``); a ``mean``
    ablation averages ``reference`` (texts for a text pair, or model inputs) over every position. ``options``:
    :class:`~metagame.domains.components.options.ComponentOptions`."""
    o = ComponentOptions.build(options)
    if o.corrupted is not None or o.ablation == "patch":
        raise MetagameError("activation patching is not offered for encoder components; use ablation='zero' or 'mean'")
    require_capability(adapter, ComponentHost, "components=...",
                       "components=... is offered for text pairs and CLIP (scalar mode)")
    inputs, tokenize = adapter.component_inputs()
    return ComponentModel(adapter.model, inputs, output=None, batch_size=adapter.batch_size, pool_positions=True,
                          **o.replace(reference=_reference_inputs(o.reference, tokenize)).keywords())


def with_components(adapter: ModelAdapter, options: Mapping[str, Any], builder: Callable[..., ComponentModel]) -> JointModel:
    """``joint(adapter, builder(adapter, **options))``: the adapter's players followed by the components."""
    return joint(adapter, builder(adapter, **dict(options)))


def component_extension(builder: Callable[..., ComponentModel], entry: str) -> Extension:
    """The ``components=`` extension of an application entry point: with ``components`` set, the adapter's players
    are joined by the model's components (:data:`COMPONENT_OPTIONS` go to ``builder``); without it, the component
    options are refused and the adapter stays as it is."""

    def extend(adapter: ModelAdapter, options: dict) -> ModelAdapter:
        given = {k: v for k, v in options.items() if v is not None}
        if given.get("components") is None:
            if given:
                raise MetagameError(f"{entry}: {', '.join(sorted(given))} only apply with components='heads' (or "
                                    f"'neurons', 'layers')")
            return adapter
        return with_components(adapter, given, builder)

    return COMPONENT_OPTIONS, extend


__all__ = ["ComponentHost", "component_extension", "encoder_components", "lm_components", "with_components"]
