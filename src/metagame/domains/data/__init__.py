"""Training points: players are training examples, f a model trained on a subset (or a K-nearest-neighbour
classifier) scored on a query; KNN-Shapley and gradient influence are this domain's own methods. Entry point:
:func:`metagame.explain_data`; features × training points: :func:`metagame.explain_feature_data`."""

from .. import lazy_exports

_NAMES = {"DataModel": "adapter", "KNNDataModel": "adapter", "FeatureDataModel": "feature_data",
          "GradientInfluence": "methods", "KNNShapley": "methods"}
__getattr__, __dir__ = lazy_exports(__name__, _NAMES)
__all__ = sorted(_NAMES)
