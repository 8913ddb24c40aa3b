"""Loaded ``sentence_transformers.SentenceTransformer`` objects, read as the parts the text-pair adapter rebuilds:
the Hugging Face transformer, its tokenizer, the pooling modes and whether embeddings are normalised."""

from __future__ import annotations

import sys
from typing import Any, get_args

from ...errors import MetagameError, one_of
from .text_pair import PoolingMode


def is_sentence_transformer(model: Any) -> bool:
    """True for a loaded ``sentence_transformers.SentenceTransformer``."""
    st = sys.modules.get("sentence_transformers")
    cls = getattr(st, "SentenceTransformer", None)
    return cls is not None and isinstance(model, cls)


def _st_module_classes() -> tuple[type, type]:
    """sentence-transformers' Pooling and Normalize classes, from where the installed version keeps them (the old
    ``sentence_transformers.models`` path prints a deprecation notice in 6.x)."""
    import importlib

    for where in ("sentence_transformers.sentence_transformer.modules", "sentence_transformers.models"):
        try:
            mod = importlib.import_module(where)
            return mod.Pooling, mod.Normalize
        except (ImportError, AttributeError):
            continue
    raise MetagameError("cannot find sentence-transformers' Pooling module; pass the model's folder instead")


def unpack_sentence_transformer(model: Any) -> tuple[Any, Any, list[str], bool]:
    """``(transformer, tokenizer, pooling modes, normalize)`` of a loaded SentenceTransformer: its first module's
    Hugging Face model and tokenizer, then Pooling and Normalize modules (anything else is refused, by name)."""
    modules = list(model.children())
    first = modules[0] if modules else None
    hf = getattr(first, "auto_model", None) or getattr(first, "model", None)
    tokenizer = getattr(first, "tokenizer", None)
    if hf is None or tokenizer is None:
        raise MetagameError("this SentenceTransformer does not start with a Hugging Face transformer module; pass "
                            "the model's folder instead")
    pooling_cls, normalize_cls = _st_module_classes()
    modes: list[str] = ["mean"]
    normalize = False
    for mod in modules[1:]:
        if isinstance(mod, pooling_cls):
            mode = getattr(mod, "pooling_mode", None)
            if mode is None and hasattr(mod, "get_pooling_mode_str"):
                mode = mod.get_pooling_mode_str()
            parts = [mode] if isinstance(mode, str) else list(mode or [])
            parts = [{"mean_tokens": "mean", "cls_token": "cls", "max_tokens": "max"}.get(p, p)
                     for p in (q for part in parts for q in str(part).split("+"))]
            if not parts or any(p not in get_args(PoolingMode) for p in parts):
                raise MetagameError(f"this SentenceTransformer pools with {mode!r}, which metagame does not reproduce; "
                                    f"pass pooling={one_of(PoolingMode)} to override")
            modes = parts
        elif isinstance(mod, normalize_cls):
            normalize = True
        else:
            raise MetagameError(
                f"this SentenceTransformer has a {type(mod).__name__} module after pooling, which metagame does not "
                "reproduce (supported: Transformer, Pooling, Normalize)")
    return hf, tokenizer, modes, normalize


__all__ = ["is_sentence_transformer", "unpack_sentence_transformer"]
