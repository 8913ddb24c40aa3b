"""Players: what a player is and how a coalition becomes a model input (masking)."""

from .coalitions import (
    EXACT_MAX_PLAYERS,
    all_coalitions,
    as_coalitions,
    check_exact_size,
    chunks_of_all,
    coalition_bits,
    coalition_index,
    coalition_keys,
    coalitions_from_index,
    format_coalition,
    sizes_of_all,
)
from .masking import BaselineMasking, Masking, to_tensor

__all__ = [
    "EXACT_MAX_PLAYERS",
    "BaselineMasking",
    "Masking",
    "all_coalitions",
    "as_coalitions",
    "check_exact_size",
    "chunks_of_all",
    "coalition_bits",
    "coalition_index",
    "coalition_keys",
    "coalitions_from_index",
    "format_coalition",
    "sizes_of_all",
    "to_tensor",
]
