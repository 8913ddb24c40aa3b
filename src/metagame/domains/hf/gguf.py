"""GGUF checkpoints (llama.cpp's single-file format): which file a model name stands for, and the checks that run
before transformers de-quantizes it (packages present, a readable GGUF header, a single file to choose).

A model is named by a folder (with ``gguf_file=`` naming the file in it), by the path of a ``.gguf`` file, or by a
folder holding exactly one ``.gguf`` file and no safetensors weights (loaded without the option). Transformers
reads the config, the weights (de-quantized to float32) and the tokenizer (with its chat template) from the file.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from ...errors import MetagameError

#: the first four bytes of every GGUF file
GGUF_MAGIC = b"GGUF"
#: the packages transformers de-quantizes GGUF files with (the ``gguf`` extra of metagame installs them)
GGUF_PACKAGES: tuple[str, ...] = ("gguf", "accelerate")


def resolve_gguf(name_or_path: str | os.PathLike, gguf_file: str | None = None) -> tuple[str, str | None]:
    """``(name, gguf_file)`` to pass to ``from_pretrained``: ``gguf_file`` is None for a safetensors checkpoint.

    A ``.gguf`` path splits into its folder and file name; a local folder with no ``gguf_file`` uses its only
    ``.gguf`` file when it has no safetensors weights. Local files are checked here (exists, GGUF header,
    packages installed), before any weights are read.

    Raises:
        MetagameError: a missing or corrupt file, several GGUF files and no choice, or a missing package.
    """
    name = str(name_or_path)
    path = Path(name)
    if gguf_file is None and path.suffix.lower() == ".gguf":
        if not path.is_file():
            raise MetagameError(f"the GGUF file {name!r} does not exist; pass the path of a .gguf file or a model folder")
        name, gguf_file = str(path.parent), path.name
        path = path.parent
    if gguf_file is not None:
        gguf_file = str(gguf_file)
        if os.sep in gguf_file or "/" in gguf_file:
            raise MetagameError(f"gguf_file={gguf_file!r} must be a file name inside the model folder {name!r}, not a path")
        if path.is_dir():
            if not (path / gguf_file).is_file():
                found = sorted(p.name for p in path.glob("*.gguf"))
                raise MetagameError(
                    f"{name!r} has no file {gguf_file!r}"
                    + (f"; its GGUF files: {', '.join(found)}" if found else " and no .gguf file at all")
                )
            check_gguf_file(path / gguf_file)
        check_gguf_packages()
        return name, gguf_file
    if not path.is_dir():
        return name, None  # a Hugging Face name: safetensors from the local cache
    found = sorted(p.name for p in path.glob("*.gguf"))
    if not found or any(path.glob("*.safetensors")):
        return name, None
    if len(found) > 1:
        raise MetagameError(
            f"{name!r} holds {len(found)} GGUF files ({', '.join(found)}) and no safetensors weights; choose one with "
            f"gguf_file='{found[0]}'"
        )
    check_gguf_file(path / found[0])
    check_gguf_packages()
    return name, found[0]


def check_gguf_file(path: Path) -> None:
    """Raise unless ``path`` starts with the GGUF magic bytes (a truncated or foreign file is refused before loading)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(len(GGUF_MAGIC))
    except OSError as e:
        raise MetagameError(f"cannot read the GGUF file {str(path)!r} ({e}); check the path and its permissions") from None
    if head != GGUF_MAGIC:
        raise MetagameError(
            f"{str(path)!r} is not a GGUF file (it does not start with the bytes 'GGUF'); the file is corrupt or of "
            f"another format — download it again or pass a safetensors folder"
        )


def check_gguf_packages() -> None:
    """Raise, naming the extra, when a package transformers needs to de-quantize GGUF files is missing."""
    missing = [p for p in GGUF_PACKAGES if importlib.util.find_spec(p) is None]
    if missing:
        raise MetagameError(
            f"loading a GGUF checkpoint needs the package(s) {', '.join(missing)}; install them with "
            f"pip install 'metagame[gguf]'"
        )


def gguf_error(name: str, gguf_file: str, exc: BaseException) -> MetagameError:
    """The error for a GGUF file transformers refused: an unsupported architecture, or a file it cannot parse."""
    from .common import first_line

    text = first_line(exc)
    if "not supported" in text:
        try:
            from transformers.modeling_gguf_pytorch_utils import GGUF_SUPPORTED_ARCHITECTURES

            archs = ", ".join(a for a in GGUF_SUPPORTED_ARCHITECTURES if a not in ("general", "tokenizer"))
        except ImportError:  # pragma: no cover - older transformers
            archs = "see the transformers GGUF documentation"
        return MetagameError(
            f"{gguf_file!r} in {name!r}: {text} Transformers loads GGUF files of these architectures: {archs}; "
            f"convert the model to safetensors or use one of them"
        )
    return MetagameError(
        f"cannot read the GGUF file {gguf_file!r} in {name!r} ({text}); the file is corrupt or truncated — download it "
        f"again or pass a safetensors folder"
    )


__all__ = ["GGUF_MAGIC", "GGUF_PACKAGES", "check_gguf_file", "check_gguf_packages", "gguf_error", "resolve_gguf"]
