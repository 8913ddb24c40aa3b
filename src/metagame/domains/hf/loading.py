"""Loading and checking Hugging Face causal LMs: by name or local folder (safetensors, or a GGUF file de-quantized by
transformers; pickle ``.bin`` weights are refused), dtype and device resolution with errors that name the fix, and a
causality check (a bidirectional encoder is refused)."""

from __future__ import annotations

import os
import struct
from typing import Any, Callable

import torch

from ...errors import MetagameError
from ...models.loaded import shared_load
from .common import first_line, load_config
from .gguf import gguf_error, resolve_gguf

_CONTEXT_ATTRS = ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length", "n_ctx")


def resolve_dtype(dtype: str | torch.dtype | None) -> torch.dtype | str | None:
    if dtype is None or isinstance(dtype, torch.dtype) or dtype == "auto":
        return dtype
    value = getattr(torch, str(dtype), None)
    if not isinstance(value, torch.dtype):
        raise MetagameError(f"unknown dtype {dtype!r}; use e.g. 'float32', 'bfloat16', 'float16', 'float64' or 'auto'")
    return value


@shared_load
def load_causal_lm(
    name_or_path: str | os.PathLike,
    *,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
    trust_remote_code: bool = False,
    gguf_file: str | None = None,
) -> tuple[torch.nn.Module, Any]:
    """Load ``(model, tokenizer)`` of a causal LM by Hugging Face name, local folder or ``.gguf`` path.

    Weights are safetensors, or a GGUF file (``gguf_file`` in the folder; a folder with exactly one ``.gguf`` file
    and no safetensors uses it; :func:`~metagame.domains.hf.gguf.resolve_gguf`), de-quantized to float32 by transformers.

    Raises:
        MetagameError: when the checkpoint cannot be loaded or is not a causal (decoder-only) LM.
    """
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    name, gguf_file = resolve_gguf(name_or_path, gguf_file)
    gguf = {} if gguf_file is None else {"gguf_file": gguf_file}
    if gguf_file is None:
        config = load_config(name, trust_remote_code=trust_remote_code)
    else:
        try:
            config = AutoConfig.from_pretrained(name, trust_remote_code=trust_remote_code, **gguf)
        except (OSError, ValueError, KeyError, EOFError, IndexError, struct.error) as e:
            raise gguf_error(name, gguf_file, e) from None
    if getattr(config, "is_encoder_decoder", False):
        raise MetagameError(
            f"{name!r} is an encoder-decoder model ({type(config).__name__}); metagame lm explains causal "
            f"(decoder-only) language models such as GPT-2, Llama or Qwen"
        )
    kwargs: dict[str, Any] = {"trust_remote_code": trust_remote_code, **(gguf or {"use_safetensors": True})}
    resolved = resolve_dtype(dtype)
    if resolved is not None:
        kwargs["dtype"] = resolved
    try:
        model = AutoModelForCausalLM.from_pretrained(name, config=config, **kwargs)
    except ValueError as e:
        raise MetagameError(
            f"{name!r} ({type(config).__name__}) is not a causal language model that AutoModelForCausalLM can load "
            f"({first_line(e)}); pass a decoder-only LM"
        ) from None
    except OSError as e:
        raise MetagameError(
            f"could not load weights from {name!r} ({first_line(e)}); metagame loads safetensors or GGUF only — "
            f"convert the checkpoint with save_pretrained(..., safe_serialization=True)"
        ) from None
    except (KeyError, EOFError, IndexError, struct.error) as e:  # a GGUF file whose tensors cannot be read
        raise gguf_error(name, str(gguf_file), e) from None
    try:
        tokenizer = AutoTokenizer.from_pretrained(name, trust_remote_code=trust_remote_code, **gguf)
    except (OSError, ValueError, KeyError) as e:
        raise MetagameError(f"could not load a tokenizer from {name!r} ({first_line(e)}); pass tokenizer=...") from None
    if device is not None:
        model = model.to(device)
    return model, tokenizer


def causal_lm_from(model: Any, tokenizer: Any = None, *, device: str | torch.device | None = None,
                   dtype: str | torch.dtype | None = None, trust_remote_code: bool = False,
                   gguf_file: str | None = None, load: Callable[..., tuple] | None = None
                   ) -> tuple[torch.nn.Module, Any, str]:
    """``(model, tokenizer, name)`` of a causal LM given by name/path (loaded by ``load``, default
    :func:`load_causal_lm`: safetensors or GGUF) or as a loaded decoder-only Hugging Face model with its fast tokenizer
    (moved to ``dtype`` / ``device`` when given)."""
    if isinstance(model, (str, os.PathLike)):
        name = str(model)
        model, loaded_tok = (load or load_causal_lm)(model, device=device, dtype=dtype, trust_remote_code=trust_remote_code,
                                           gguf_file=gguf_file)
        tokenizer = tokenizer if tokenizer is not None else loaded_tok
    else:
        if not isinstance(model, torch.nn.Module):
            raise MetagameError(f"model must be a Hugging Face name/path or a loaded PreTrainedModel; got {type(model).__name__}")
        name = str(getattr(getattr(model, "config", None), "_name_or_path", "") or type(model).__name__)
        if gguf_file is not None:
            raise MetagameError("gguf_file names a file to load; a loaded model needs none (drop gguf_file)")
        if tokenizer is None:
            raise MetagameError("a loaded model needs its tokenizer: CausalLM(model, prompt, tokenizer=tokenizer)")
        if getattr(getattr(model, "config", None), "is_encoder_decoder", False):
            raise MetagameError(f"{type(model).__name__} is an encoder-decoder model; pass a decoder-only causal LM")
        resolved = resolve_dtype(dtype)
        if isinstance(resolved, torch.dtype):
            model = model.to(resolved)
        if device is not None:
            model = model.to(device)
    if not getattr(tokenizer, "is_fast", False):
        raise MetagameError(
            "metagame needs a fast tokenizer (character offsets group subwords into words); load it with "
            "AutoTokenizer.from_pretrained(..., use_fast=True)"
        )
    if not hasattr(model, "get_input_embeddings") or not hasattr(model, "config"):
        raise MetagameError(f"{type(model).__name__} is not a Hugging Face model (no get_input_embeddings/config)")
    return model, tokenizer, name


def context_length(config: Any) -> int | None:
    """The longest sequence the model accepts (``max_position_embeddings`` or its synonyms), if known."""
    cfg = config.get_text_config() if hasattr(config, "get_text_config") else config
    for attr in _CONTEXT_ATTRS:
        v = getattr(cfg, attr, None)
        if isinstance(v, int) and v > 0:
            return v
    return None


def check_causal(model: torch.nn.Module, vocab_size: int, device: str | torch.device) -> None:
    """Raise unless the model is causal: logits at positions < t must not depend on the token at t."""
    g = torch.Generator().manual_seed(0)
    a = torch.randint(0, vocab_size, (1, 4), generator=g)
    b = a.clone()
    b[0, -1] = (a[0, -1] + 1) % vocab_size
    with torch.no_grad():
        la = model(input_ids=a.to(device)).logits[0, :-1].float()
        lb = model(input_ids=b.to(device)).logits[0, :-1].float()
    scale = float(la.abs().max()) + 1e-6
    if float((la - lb).abs().max()) > 1e-3 * scale:
        raise MetagameError(
            f"{type(model).__name__} is not a causal language model: its outputs at earlier positions depend on later "
            f"tokens (a bidirectional encoder such as BERT?). Pass a decoder-only LM (GPT-2, Llama, Qwen, ...)"
        )


def check_device(device: str | torch.device | None) -> None:
    """Raise a plain error when a CUDA / MPS device is asked for but this PyTorch build cannot use it."""
    if device is None:
        return
    kind = torch.device(device).type
    if kind == "cuda" and not torch.cuda.is_available():
        raise MetagameError(
            f"device {str(device)!r} was asked for, but this PyTorch build sees no CUDA GPU "
            f"(torch {torch.__version__}, cuda available: no); drop the device option or pass device='cpu'"
        )
    if kind == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise MetagameError(f"device {str(device)!r} was asked for, but MPS is not available here; pass device='cpu'")


__all__ = ["causal_lm_from", "check_causal", "check_device", "context_length", "load_causal_lm", "resolve_dtype"]
