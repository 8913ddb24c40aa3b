"""Generic model adapters: the adapter contract (:mod:`~metagame.models.contract`), the base class, joint games of
several adapters, model state and fingerprints. The adapters of each kind of model (tensors, language models, encoders, ...) live in :mod:`metagame.domains`."""

from ..players.coalitions import player_labels
from .base import ModelAdapter, repeat_rows, take_rows
from .contract import (
    Adapter,
    Differentiable,
    KNNTables,
    NativeInput,
    SideTargets,
    TorchModule,
    TrainingRuns,
    VectorValued,
    provides,
    require_capability,
)

__all__ = ["Adapter", "Differentiable", "KNNTables", "ModelAdapter", "NativeInput", "SideTargets", "TorchModule",
           "TrainingRuns", "VectorValued", "player_labels", "provides", "repeat_rows", "require_capability", "take_rows"]
