"""Machinery shared by the Hugging Face adapters (causal LM, text pair, vision-language).

* :func:`load_config` — ``AutoConfig`` by name or local folder with an error that names the fix;
* :class:`TokenEmbeddingOverride` — differentiate with respect to token embeddings while the model
  runs its own code path;
* :func:`encode_words` — tokenize a text and group its tokens into word players;
* :func:`token_keep` / :func:`add_token_scores` — the token ↔ player maps of a coalition:
  x_S keeps token t iff its player is in S (non-player tokens always), and a player's score is the
  sum of its tokens' scores.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Any, Iterator

import numpy as np
import torch

from ...errors import MetagameError
from ...players.text import Word, group_words, token_player_map


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (Hugging Face errors are long)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def load_config(name_or_path: str | os.PathLike, trust_remote_code: bool = False) -> Any:
    """``AutoConfig`` of a model by Hugging Face name or local folder.

    Raises:
        MetagameError: naming the fix (a local folder with config.json, or a model in the local cache).
    """
    from transformers import AutoConfig

    from .sources import resolve_source

    name = resolve_source(name_or_path)  # a missing local folder is named as such; bundled models offline
    try:
        return AutoConfig.from_pretrained(name, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as e:
        raise MetagameError(
            f"cannot load a model config from {name!r} ({first_line(e)}); pass a local folder with "
            f"config.json or the name of a model in the local Hugging Face cache"
        ) from None


class TokenEmbeddingOverride:
    """Replaces the output of a token-embedding layer by a given tensor while active.

    Lets the model run its normal code path (position ids, pooling at the EOS token) while the
    gradient methods differentiate with respect to the token embeddings. The forward hook exists only
    inside :meth:`active`, so adapters sharing one model never see each other's embeddings.
    """

    def __init__(self, layer: torch.nn.Module):
        self.layer = layer

    @contextmanager
    def active(self, value: torch.Tensor) -> Iterator[None]:
        """Within the block, the layer returns ``value`` (same shape as its own output)."""

        def hook(module, inputs, output):
            if value.shape != output.shape:
                raise MetagameError(
                    f"internal: token embedding override has shape {tuple(value.shape)}, the layer produced "
                    f"{tuple(output.shape)}"
                )
            return value.to(output.dtype)

        handle = self.layer.register_forward_hook(hook)
        try:
            yield
        finally:
            handle.remove()

    def embed_ids(self, ids: torch.Tensor) -> torch.Tensor:
        """The layer's own embeddings of ``ids``."""
        with torch.no_grad():
            return self.layer(ids).detach()


def encode_words(
    tokenizer: Any, text: str, what: str, max_len: int, **tokenizer_kwargs: Any
) -> tuple[list[int], list[Word], np.ndarray]:
    """Token ids, word players and the token → player map (``-1``: not a player) of one text.

    Special tokens are never players; ``what`` names the text in error messages ("text_a", "the text").

    Raises:
        MetagameError: when the text is longer than ``max_len`` tokens or has no word the tokenizer keeps.
    """
    enc = tokenizer(
        text, return_offsets_mapping=True, return_special_tokens_mask=True, truncation=False, **tokenizer_kwargs
    )
    ids = [int(t) for t in enc["input_ids"]]
    if len(ids) > max_len:
        raise MetagameError(f"{what} has {len(ids)} tokens; the model takes at most {max_len}; shorten it")
    words = group_words(text, enc["offset_mapping"], "words", special_mask=enc["special_tokens_mask"])
    if not words:
        raise MetagameError(f"{what} has no words the tokenizer keeps; pass a text with at least one word")
    return ids, words, token_player_map(words, len(ids))


def token_keep(coalitions: np.ndarray, token_player: torch.Tensor) -> torch.Tensor:
    """``bool[m, L]``: token t is kept in x_S iff ``token_player[t]`` ∈ S; tokens with player ``-1`` always are."""
    c = torch.as_tensor(np.asarray(coalitions, dtype=bool), device=token_player.device)
    c = torch.cat([c, torch.ones(len(c), 1, dtype=torch.bool, device=c.device)], dim=1)  # index -1 → kept
    return c[:, token_player]


def add_token_scores(out: torch.Tensor, token_scores: torch.Tensor, token_player: torch.Tensor) -> torch.Tensor:
    """Add per-token scores ``[m, L]`` into player scores ``out [m, d]`` (in place): Σ over each player's tokens."""
    sel = token_player >= 0
    return out.index_add_(1, token_player[sel], token_scores[:, sel])


__all__ = [
    "TokenEmbeddingOverride",
    "add_token_scores",
    "encode_words",
    "first_line",
    "load_config",
    "token_keep",
]
