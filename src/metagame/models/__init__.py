"""Model adapters: a model seen through its players (tensor callables, language models, encoders, ...)."""

from ..players.coalitions import player_labels
from .base import ModelAdapter, repeat_rows, take_rows
from .set_function import SetFunctionModel
from .tensor import TensorModel

__all__ = ["ModelAdapter", "SetFunctionModel", "TensorModel", "player_labels", "repeat_rows", "take_rows"]
