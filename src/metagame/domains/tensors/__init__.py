"""Tensor callables and set functions: players are input features (or the items of a set), f is the model's
scalar output; the entry point is :func:`metagame.meta_attributions`."""

from .adapter import TensorModel
from .entry import attribute, meta_attributions, shapley_taylor
from .set_function import SetFunctionModel, is_set_function

__all__ = ["SetFunctionModel", "TensorModel", "attribute", "is_set_function", "meta_attributions", "shapley_taylor"]
