"""Meta-attributions for causal language models: which word of a prompt changes how much another word
matters for the model's answer, M[i, j] = Shapley value of word j in u_i(T) = φ_i(f, x_{T ∪ {i}}),
with f the teacher-forced log-probability of the answer.

    >>> from metagame.applications.lm import explain_lm
    >>> res = explain_lm("Qwen/Qwen2.5-0.5B-Instruct", "The movie was not bad", method="integrated_gradients")
    >>> res.matrix[i, j]        # how word j moves the attribution of word i
    >>> res = explain_lm(path, "The movie was not bad", " good", components="heads", layers=[1])
    >>> res.extras["head_to_word"]   # words and attention heads in one game: how head j moves word i
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from ..methods.base import AttributionMethod
from ..methods.registry import MethodName
from ..models.components import ComponentKind
from ..models.language import CausalLM
from ..results.result import MetaAttribution
from ..run.options import RunOptions
from .common import build_adapter, check_texts, explain_application

#: the most words explained exactly by default (2^16 coalitions, each a forward pass per inner-method row)
LM_EXACT_MAX_PLAYERS = CausalLM.exact_max_players


def lm_adapter(model, prompt: str, answer: str | Sequence[int] | None = None, **options: Any) -> CausalLM:
    """The causal-LM adapter (:class:`~metagame.models.language.CausalLM`; its keywords are the options)."""
    return build_adapter(CausalLM, "lm_adapter", model, prompt, answer, **options)


def explain_lm(
    model,
    prompt: str,
    answer: str | Sequence[int] | None = None,
    *,
    method: MethodName | AttributionMethod | Any = "integrated_gradients",
    method_kwargs: dict | None = None,
    options: RunOptions | Mapping[str, Any] | None = None,
    components: ComponentKind | Sequence[str] | None = None,
    **kwargs: Any,
) -> MetaAttribution:
    """Meta-attributions over the words of ``prompt``; f = Σ_k log p(answer_k | prompt, answer_<k).

    ``kwargs`` are :class:`~metagame.models.language.CausalLM`'s options (tokenizer, alternative, grouping,
    masking, chat_template, device, dtype, ...) and the run options (budget, seed, variant, ...). Exact
    (``budget=None``) for up to 16 words by default; longer prompts need ``budget`` (attribution calls).

    ``components`` (``"heads"``, ``"neurons"``, ``"layers"`` or module names) adds the model's components as
    players of the same game (:func:`metagame.joint`), masked in the same forward pass as the words, with the
    keywords ``layers``, ``ablation`` (``"zero"``, ``"mean"`` over ``reference`` texts, ``"patch"`` from a
    ``corrupted`` prompt), ``neuron_groups`` and ``architecture``; ``extras["head_to_word"]`` [words, heads] and
    ``extras["word_to_head"]`` [heads, words] hold the cross blocks.
    """
    from .joint import component_extension, lm_components

    check_texts(prompt=prompt)  # before the model loads
    return explain_application(CausalLM, "explain_lm", (model, prompt, answer), method, method_kwargs, options,
                               {**kwargs, "components": components}, component_extension(lm_components, "explain_lm"))


__all__ = ["LM_EXACT_MAX_PLAYERS", "explain_lm", "lm_adapter"]
