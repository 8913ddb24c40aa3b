"""Training points: players are training examples, f a model trained on a subset (or a K-nearest-neighbour
classifier) scored on a query; KNN-Shapley and gradient influence are this domain's own methods. Entry point:
:func:`metagame.explain_data`; features × training points: :func:`metagame.explain_feature_data`."""

from .adapter import DataModel, KNNDataModel
from .feature_data import FeatureDataModel
from .methods import GradientInfluence, KNNShapley

__all__ = ["DataModel", "FeatureDataModel", "GradientInfluence", "KNNDataModel", "KNNShapley"]
