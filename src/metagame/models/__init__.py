"""Generic model adapters: the adapter protocol, joint games of several adapters, model state and fingerprints.
The adapters of each kind of model (tensors, language models, encoders, ...) live in :mod:`metagame.domains`."""

from ..players.coalitions import player_labels
from .base import ModelAdapter, repeat_rows, take_rows

__all__ = ["ModelAdapter", "player_labels", "repeat_rows", "take_rows"]
