"""Across aspects: players of different kinds in one game (:func:`metagame.joint`). The domains add their own
mixed games: words × components (:mod:`metagame.domains.components.extension`, the ``components=`` option of
``explain_lm`` / ``explain_text_pair`` / ``explain_vision``) and features × training points
(:func:`metagame.explain_feature_data`, in the data domain).

    >>> res = metagame.explain_joint(words_adapter, heads_adapter, method="gradient_x_input")
    >>> res.extras["head_to_word"]          # how head j moves the attribution of word i
"""

from __future__ import annotations

from typing import Any, Mapping

from ..methods.base import AttributionMethod
from ..methods.registry import MethodName
from ..models.base import ModelAdapter
from ..models.joint import joint
from ..results.result import MetaAttribution
from ..run.explain import explain
from ..run.options import RunOptions


def explain_joint(
    *adapters: ModelAdapter,
    method: MethodName | AttributionMethod | Any = "integrated_gradients",
    method_kwargs: dict | None = None,
    options: RunOptions | Mapping[str, Any] | None = None,
    **run_options: Any,
) -> MetaAttribution:
    """Meta-attributions of the joint game of ``adapters`` (see :func:`metagame.joint`); rows sum to φ_i, and
    ``extras["{a}_to_{b}"]`` holds each cross block (sources of kind a, targets of kind b)."""
    return explain(joint(*adapters), method, method_kwargs=method_kwargs, options=options, **run_options)


__all__ = ["explain_joint"]
