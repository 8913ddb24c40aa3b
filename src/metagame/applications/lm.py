"""Meta-attributions for causal language models: which word of a prompt changes how much another word
matters for the model's answer, M[i, j] = Shapley value of word j in u_i(T) = φ_i(f, x_{T ∪ {i}}),
with f the teacher-forced log-probability of the answer.

    >>> from metagame.applications.lm import explain_lm
    >>> res = explain_lm("Qwen/Qwen2.5-0.5B-Instruct", "The movie was not bad", method="integrated_gradients")
    >>> res.matrix[i, j]        # how word j moves the attribution of word i
"""

from __future__ import annotations

from typing import Any, Sequence

import torch

from ..api import Estimator
from ..meta.tables import Value, Variant
from ..methods.base import AttributionMethod
from ..methods.registry import MethodName
from ..models.language import CausalLM, MaskingMode, PaddingSide
from ..players.text import Grouping
from ..results.result import MetaAttribution
from .common import explain_adapter

#: the most words explained exactly by default (2^16 coalitions, each a forward pass per inner-method row)
LM_EXACT_MAX_PLAYERS = 16


def explain_lm(
    model,
    prompt: str,
    answer: str | Sequence[int] | None = None,
    *,
    tokenizer=None,
    method: MethodName | AttributionMethod | Any = "integrated_gradients",
    method_kwargs: dict | None = None,
    variant: Variant = "metagame",
    value: Value = "shapley",
    budget: int | None = None,
    seed: int | None = None,
    estimator: Estimator = "auto",
    alternative: str | None = None,
    grouping: Grouping = "words",
    masking: MaskingMode = "attention",
    baseline_token: str | int | None = None,
    chat_template: bool | None = None,
    system_prompt: str | None = None,
    max_new_tokens: int = 16,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
    trust_remote_code: bool = False,
    batch_size: int = 32,
    padding_side: PaddingSide = "left",
    prefix_cache: bool = True,
    exact_max_players: int = LM_EXACT_MAX_PLAYERS,
    progress: bool | None = None,
) -> MetaAttribution:
    """Meta-attributions over the words of ``prompt``; f = Σ_k log p(answer_k | prompt, answer_<k).

    Builds a :class:`~metagame.models.language.CausalLM` (see it for the model, answer and masking options)
    and runs :func:`metagame.explain`. Exact (``budget=None``) for up to ``exact_max_players`` words;
    longer prompts need ``budget`` (a number of attribution calls).
    """
    adapter = CausalLM(
        model, prompt, answer, tokenizer=tokenizer, alternative=alternative, grouping=grouping, masking=masking,
        baseline_token=baseline_token, chat_template=chat_template, system_prompt=system_prompt,
        max_new_tokens=max_new_tokens, device=device, dtype=dtype, trust_remote_code=trust_remote_code,
        batch_size=batch_size, padding_side=padding_side, prefix_cache=prefix_cache,
    )
    return explain_causal_lm(
        adapter, method, method_kwargs=method_kwargs, variant=variant, value=value, budget=budget, seed=seed,
        estimator=estimator, exact_max_players=exact_max_players, progress=progress,
    )


def explain_causal_lm(
    adapter: CausalLM,
    method: MethodName | AttributionMethod | Any = "integrated_gradients",
    *,
    method_kwargs: dict | None = None,
    variant: Variant = "metagame",
    value: Value = "shapley",
    budget: int | None = None,
    seed: int | None = None,
    estimator: Estimator = "auto",
    exact_max_players: int = LM_EXACT_MAX_PLAYERS,
    progress: bool | None = None,
) -> MetaAttribution:
    """Run :func:`metagame.explain` on a built :class:`CausalLM` with its context (prompt, answer, f(x), f(∅))."""
    return explain_adapter(
        adapter, method, exact_max_players=exact_max_players,
        what=f"exact meta-attributions of a {adapter.n_players}-word prompt",
        method_kwargs=method_kwargs, variant=variant, value=value, budget=budget, seed=seed, estimator=estimator,
        progress=progress,
    )


__all__ = ["LM_EXACT_MAX_PLAYERS", "explain_causal_lm", "explain_lm"]
