"""Text players: group a tokenizer's subword tokens into words (or keep one player per token).

Players of a text are built from the tokenizer's character offsets: token ``t`` covers
``text[start_t:end_t]``. In ``"words"`` mode consecutive tokens belong to the same word while no
whitespace separates them (``"un" + "believ" + "able"`` is one player); punctuation attached to a
word stays with it unless ``split_punctuation=True``. Special tokens (offset ``(0, 0)`` with an
empty span, or flagged in ``special_mask``) and tokens outside ``span`` are never players.

Used by the language-model adapter and by text encoders alike; no model code lives here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Sequence, get_args

import numpy as np

from ..errors import MetagameError, one_of

Grouping = Literal["words", "tokens"]


@dataclass(frozen=True)
class Word:
    """One text player: its label, character span ``[start, end)`` and token indices."""

    label: str
    start: int
    end: int
    tokens: tuple[int, ...] = field(default_factory=tuple)


def _is_punctuation(ch: str) -> bool:
    return not ch.isalnum() and not ch.isspace() and ch not in "'’_-"


def group_words(
    text: str,
    offsets: Sequence[tuple[int, int]],
    grouping: Grouping = "words",
    special_mask: Sequence[bool] | None = None,
    span: tuple[int, int] | None = None,
    split_punctuation: bool = False,
) -> list[Word]:
    """Group tokens into players: a word is a maximal run of tokens not separated by whitespace.

    Args:
        text: the string the offsets refer to.
        offsets: ``(start, end)`` character span of each token (as returned by a fast tokenizer
            with ``return_offsets_mapping=True``).
        grouping: ``"words"`` (default) or ``"tokens"`` (each non-special token is a player).
        special_mask: optional ``bool`` per token; ``True`` tokens are never players.
        span: optional ``(start, end)`` character range; only tokens inside it become players
            (e.g. the user prompt inside a chat template).
        split_punctuation: in ``"words"`` mode, make a run of punctuation its own player.

    Returns:
        The players in text order, each with its token indices (ascending).
    """
    if grouping not in get_args(Grouping):
        raise MetagameError(f"unknown grouping {grouping!r}; use {one_of(Grouping)}")
    offsets = [(int(a), int(b)) for a, b in offsets]
    if special_mask is not None and len(special_mask) != len(offsets):
        raise MetagameError(
            f"special_mask has {len(special_mask)} entries but there are {len(offsets)} tokens; "
            "pass one flag per token"
        )
    lo, hi = (0, len(text)) if span is None else (int(span[0]), int(span[1]))

    # Token positions that can be players, with their trimmed character spans.
    candidates: list[tuple[int, int, int]] = []
    for t, (a, b) in enumerate(offsets):
        if special_mask is not None and special_mask[t]:
            continue
        if b <= a:  # (0, 0) special tokens and empty spans
            continue
        if a < lo or b > hi:
            continue
        piece = text[a:b]
        # Tokenizers that fold a leading space into the token ("Ġword") report it in the span.
        stripped = piece.lstrip()
        a2 = a + (len(piece) - len(stripped))
        stripped = stripped.rstrip()
        b2 = a2 + len(stripped)
        if b2 <= a2:  # a pure whitespace token is never a player
            continue
        candidates.append((t, a2, b2))

    if grouping == "tokens":
        return _attach_orphans([Word(text[a:b], a, b, (t,)) for t, a, b in candidates], offsets, special_mask, lo, hi)

    words: list[Word] = []
    cur_tokens: list[int] = []
    cur_start = cur_end = -1
    cur_punct = False
    for t, a, b in candidates:
        piece = text[a:b]
        punct = all(_is_punctuation(ch) for ch in piece)
        joined = (
            bool(cur_tokens)
            and a <= cur_end  # adjacent (or overlapping, as byte-level tokens can be)
            and (not split_punctuation or punct == cur_punct)
        )
        if joined:
            cur_tokens.append(t)
            cur_end = max(cur_end, b)
        else:
            if cur_tokens:
                words.append(Word(text[cur_start:cur_end], cur_start, cur_end, tuple(cur_tokens)))
            cur_tokens, cur_start, cur_end, cur_punct = [t], a, b, punct
    if cur_tokens:
        words.append(Word(text[cur_start:cur_end], cur_start, cur_end, tuple(cur_tokens)))
    return _attach_orphans(words, offsets, special_mask, lo, hi)


def _attach_orphans(
    words: list[Word], offsets: list[tuple[int, int]], special_mask: Sequence[bool] | None, lo: int, hi: int
) -> list[Word]:
    """Give every non-special token inside the span that no word holds (whitespace or zero-width pieces such as a
    lone BPE space) to the next word (the last word when none follows), so masking all the words leaves none of the
    span's text behind: x_∅ is the same for every text."""
    if not words:
        return words
    owned = {t for w in words for t in w.tokens}
    firsts = [w.tokens[0] for w in words]
    extra: dict[int, list[int]] = {}
    for t, (a, b) in enumerate(offsets):
        if t in owned or (special_mask is not None and special_mask[t]) or (a, b) == (0, 0):
            continue
        if a < lo or b > hi:
            continue
        k = next((i for i, first in enumerate(firsts) if first > t), len(words) - 1)
        extra.setdefault(k, []).append(t)
    if not extra:
        return words
    return [Word(w.label, w.start, w.end, tuple(sorted(w.tokens + tuple(extra.get(k, ()))))) for k, w in enumerate(words)]


def token_player_map(words: Sequence[Word], n_tokens: int) -> np.ndarray:
    """Player index of every token (``-1`` for tokens that are not players), ``int64[n_tokens]``."""
    out = np.full(n_tokens, -1, dtype=np.int64)
    for p, w in enumerate(words):
        for t in w.tokens:
            if t >= n_tokens:
                raise MetagameError(f"word {w.label!r} refers to token {t} but there are {n_tokens} tokens")
            out[t] = p
    return out


def unique_labels(words: Sequence[Word]) -> list[str]:
    """Player labels, disambiguated with ``#k`` when a word occurs more than once."""
    counts: dict[str, int] = {}
    for w in words:
        counts[w.label] = counts.get(w.label, 0) + 1
    seen: dict[str, int] = {}
    labels = []
    for w in words:
        if counts[w.label] > 1:
            seen[w.label] = seen.get(w.label, 0) + 1
            labels.append(f"{w.label}#{seen[w.label]}")
        else:
            labels.append(w.label)
    return labels


__all__ = ["Grouping", "Word", "group_words", "token_player_map", "unique_labels"]
