"""Meta-attributions for causal language models: which word of a prompt changes how much another word
matters for the model's answer, M[i, j] = Shapley value of word j in u_i(T) = φ_i(f, x_{T ∪ {i}}),
with f the teacher-forced log-probability of the answer.

    >>> from metagame.domains.lm.entry import explain_lm
    >>> res = explain_lm("Qwen/Qwen2.5-0.5B-Instruct", "The movie was not bad", method="integrated_gradients")
    >>> res.matrix[i, j]        # how word j moves the attribution of word i
    >>> res = explain_lm(path, "The movie was not bad", " good", components="heads", layers=[1])
    >>> res.extras["head_to_word"]   # words and attention heads in one game: how head j moves word i
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from ...applications.common import build_adapter, check_texts, explain_application
from ...applications.sets import SetItem, check_text, explain_inputs, is_input_list, item_error
from ...errors import MetagameError
from ...methods.base import AttributionMethod
from ...methods.registry import MethodName
from ...results.result import MetaAttribution
from ...results.result_set import ResultSet
from ...run.options import RunOptions
from ..components.options import ComponentKind
from .adapter import CausalLM


def lm_adapter(model, prompt: str, answer: str | Sequence[int] | None = None, **options: Any) -> CausalLM:
    """The causal-LM adapter (:class:`~metagame.domains.lm.adapter.CausalLM`; its keywords are the options)."""
    return build_adapter(CausalLM, "lm_adapter", model, prompt, answer, **options)


def explain_lm(
    model,
    prompt: str | Sequence[str | Mapping[str, Any]],
    answer: str | Sequence[int] | None = None,
    *,
    method: MethodName | AttributionMethod | Any = "integrated_gradients",
    method_kwargs: dict | None = None,
    options: RunOptions | Mapping[str, Any] | None = None,
    components: ComponentKind | Sequence[str] | None = None,
    **kwargs: Any,
) -> MetaAttribution | ResultSet:
    """Meta-attributions over the words of ``prompt``; f = Σ_k log p(answer_k | prompt, answer_<k).

    ``kwargs`` are :class:`~metagame.domains.lm.adapter.CausalLM`'s options (tokenizer, alternative, grouping,
    masking, chat_template, device, dtype, ...) and the run options (budget, seed, variant, ...). Exact
    (``budget=None``) for up to 16 words by default; longer prompts need ``budget`` (attribution calls).

    ``components`` (``"heads"``, ``"neurons"``, ``"layers"`` or module names) adds the model's components as
    players of the same game (:func:`metagame.joint`), masked in the same forward pass as the words, with the
    keywords ``layers``, ``ablation`` (``"zero"``, ``"mean"`` over ``reference`` texts, ``"patch"`` from a
    ``corrupted`` prompt), ``neuron_groups`` and ``architecture``; ``extras["head_to_word"]`` [words, heads] and
    ``extras["word_to_head"]`` [heads, words] hold the cross blocks.

    A list of prompts (strings, or dicts with ``prompt`` and optional ``answer`` / ``alternative``) returns a
    :class:`~metagame.ResultSet`, one result per prompt equal to the separate call, the model loaded once;
    ``answer`` is then shared by every prompt (or a list, one per prompt) and ``checkpoint=`` is a folder.
    """
    from ..components.extension import component_extension, lm_components

    if is_input_list(prompt):
        items = lm_items(prompt, answer, kwargs.get("alternative"))
        kwargs = {k: v for k, v in kwargs.items() if k != "alternative"}
        return explain_inputs(CausalLM, "explain_lm", model, items, method, method_kwargs, options,
                              {**kwargs, "components": components}, component_extension(lm_components, "explain_lm"))
    check_texts(prompt=prompt)  # before the model loads
    return explain_application(CausalLM, "explain_lm", (model, prompt, answer), method, method_kwargs, options,
                               {**kwargs, "components": components}, component_extension(lm_components, "explain_lm"))


def lm_items(prompts: Sequence[Any], answer: Any, alternative: Any) -> list[SetItem]:
    """The items of a prompt set, checked before any work (an error names the bad item's index)."""
    entry = "explain_lm"
    if is_input_list(answer) and answer and isinstance(answer[0], str):
        if len(answer) != len(prompts):
            raise MetagameError(f"{entry}: {len(prompts)} prompts but {len(answer)} answers; pass one answer for all or one per prompt")
        answers = list(answer)
    else:
        answers = [answer] * len(prompts)
    items = []
    for k, p in enumerate(prompts):
        ans, alt = answers[k], alternative
        if isinstance(p, Mapping):
            unknown = sorted(set(p) - {"prompt", "answer", "alternative"})
            if unknown:
                raise item_error(entry, k, f"has unknown field(s) {unknown}; use prompt, answer, alternative")
            ans, alt = p.get("answer", ans), p.get("alternative", alt)
            p = p.get("prompt")
        check_text(entry, k, p, "prompt")
        for name, value in (("answer", ans), ("alternative", alt)):
            if value is not None and isinstance(value, str) and not value:
                raise item_error(entry, k, f"has an empty {name}; drop it or give the text")
        extra = {} if alt is None else {"alternative": alt}
        items.append(SetItem((p, ans), extra, {"prompt": p, "answer": ans, "alternative": alt}))
    return items


__all__ = ["explain_lm", "lm_adapter", "lm_items"]
