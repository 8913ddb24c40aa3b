"""Meta-attributions over training points: how the presence of training point j changes the
attribution (data value) of training point i, M[i, j] = Shapley value of j in
u_i(T) = ψ_i(model trained on T ∪ {i}).

    >>> from metagame.domains.data.entry import explain_data
    >>> res = explain_data(X, y, X_test=Xt, y_test=yt)                 # KNN utility, KNN-Shapley inside
    >>> res = explain_data(X, y, X_test=Xt, y_test=yt, train=LogisticRegression(), method="occlusion")
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, Literal, Mapping, Sequence

import numpy as np

from ...applications.common import explain_application
from ...applications.sets import SetItem, check_pair, explain_inputs, item_error
from ...errors import MetagameError
from ...methods.base import AttributionMethod
from ...methods.registry import ALIASES, build_method, get_method
from ...results.result import MetaAttribution
from ...results.result_set import ResultSet
from ...run.options import RunOptions
from .adapter import DataModel, KNNDataModel, UtilityName
from .feature_data import FeatureDataModel, FeatureUtility
from .methods import GradientInfluence, KNNShapley

DataMethodName = Literal[
    "knn_shapley", "gradient_influence", "tracin", "occlusion", "leave_one_out", "loo", "shapley", "data_shapley",
    "banzhaf", "data_banzhaf",
]


def data_method(method: DataMethodName | AttributionMethod | Any, method_kwargs: dict | None = None) -> AttributionMethod:
    """A data-attribution method object from a name (``knn_shapley``, ``gradient_influence``/``tracin``,
    ``occlusion``/``leave_one_out``, ``shapley``/``data_shapley``, ``banzhaf``/``data_banzhaf``) or an object."""
    if isinstance(method, str):
        key = ALIASES.get(method.lower(), method.lower())  # the registry's aliases (tracin, data_shapley, ...)
        kwargs = dict(method_kwargs or {})
        if key == "knn_shapley":
            return build_method(KNNShapley, kwargs, key)
        if key == "gradient_influence":
            return build_method(GradientInfluence, kwargs, key)
        return get_method(key, kwargs)
    return get_method(method, method_kwargs)


def data_adapter(
    X,
    y,
    *,
    X_test,
    y_test,
    train: Any = None,
    k: int = 5,
    utility: UtilityName | Callable = "accuracy",
    train_seed: int = 0,
    empty_value: float = 0.0,
    players: Sequence[str] | None = None,
) -> DataModel | KNNDataModel:
    """The data adapter: the closed-form KNN utility when ``train`` is None, else train-on-subset
    (a scikit-learn estimator or ``train(X_sub, y_sub, seed) -> model``, trained with ``train_seed``) scored by
    ``utility``."""
    if train is None:
        if utility != "accuracy":
            raise MetagameError("the closed-form KNN utility is the KNN likelihood of the test label; pass train=... to use another utility")
        return KNNDataModel(X, y, X_test=X_test, y_test=y_test, k=k, players=players)
    return DataModel(
        X, y, train=train, X_test=X_test, y_test=y_test, utility=utility, seed=train_seed, empty_value=empty_value,
        players=players,
    )


def explain_data(
    X,
    y,
    *,
    method: DataMethodName | AttributionMethod | Any = None,
    method_kwargs: dict | None = None,
    options: RunOptions | Mapping[str, Any] | None = None,
    queries: Sequence[tuple[Any, Any]] | None = None,
    **kwargs: Any,
) -> MetaAttribution | ResultSet:
    """Data meta-attributions M[i, j] (row = target training point, column = source); rows sum to
    the first-order data values φ_i (KNN-Shapley, Data Shapley, leave-one-out, ...).

    ``kwargs``: :func:`data_adapter`'s options (X_test, y_test, train, k, utility, train_seed, empty_value,
    players) and the run options (budget, seed, ...). ``method`` defaults to ``knn_shapley`` for the KNN utility
    (no ``train``), else ``shapley`` (Data Shapley).

    ``queries=[(X_test, y_test), ...]`` (instead of ``X_test``/``y_test``) explains each test query and returns a
    :class:`~metagame.ResultSet`, one result per query equal to the separate call; ``checkpoint=`` is then a folder.
    """
    if method is None:
        method = "knn_shapley" if kwargs.get("train") is None else "shapley"
    inner = data_method(method, method_kwargs)
    if queries is not None:
        if "X_test" in kwargs or "y_test" in kwargs:
            raise MetagameError("explain_data: pass either queries=[(X_test, y_test), ...] or X_test/y_test, not both")
        if not isinstance(queries, (list, tuple)) or not queries:
            raise MetagameError("explain_data: queries must be a non-empty list of (X_test, y_test) pairs")
        items = []
        for k, q in enumerate(queries):
            xq, yq = check_pair("explain_data", k, q, ("X_test", "y_test"))
            if xq is None or np.size(xq) == 0 or yq is None or np.size(yq) == 0:
                raise item_error("explain_data", k, "has an empty X_test or y_test; give the test points")
            items.append(SetItem((), {"X_test": xq, "y_test": yq}, {"n_test": int(np.shape(np.atleast_1d(yq))[0])}))
        return explain_inputs(_query_adapter(X, y), "explain_data", None, items, inner, None, options, kwargs)
    return explain_application(data_adapter, "explain_data", (X, y), inner, None, options, kwargs)


def _query_adapter(X: Any, y: Any) -> Callable[..., DataModel | KNNDataModel]:
    """The data adapter of one query (``factory(None, X_test=..., y_test=..., **options)``) for a set of queries."""

    def factory(_model: Any, **options: Any) -> DataModel | KNNDataModel:
        return data_adapter(X, y, **options)

    factory.__signature__ = inspect.signature(data_adapter).replace(  # type: ignore[attr-defined]
        parameters=[inspect.Parameter("_model", inspect.Parameter.POSITIONAL_ONLY),
                    *list(inspect.signature(data_adapter).parameters.values())[2:]])
    return factory


FeatureDataMethod = Literal["shapley", "banzhaf", "occlusion", "kernel_shap", "lime"]


def feature_data_adapter(
    X,
    y,
    *,
    X_test,
    y_test,
    train: Any = None,
    k: int = 5,
    utility: FeatureUtility | Callable | None = None,
    baseline: Any = None,
    feature_names: Sequence[str] | None = None,
    players: Sequence[str] | None = None,
    train_seed: int = 0,
    empty_value: float = 0.0,
) -> FeatureDataModel:
    """The features × training points adapter (:class:`~metagame.domains.data.feature_data.FeatureDataModel`)."""
    return FeatureDataModel(X, y, X_test=X_test, y_test=y_test, train=train, k=k, utility=utility, baseline=baseline,
                            feature_names=feature_names, players=players, seed=train_seed, empty_value=empty_value)


def explain_feature_data(
    X,
    y,
    *,
    method: FeatureDataMethod | AttributionMethod | Any = "shapley",
    method_kwargs: dict | None = None,
    options: RunOptions | Mapping[str, Any] | None = None,
    **kwargs: Any,
) -> MetaAttribution:
    """Meta-attributions over the features of a test input and the training points together.

    f(S) = U(model trained on the training points of S, test input with the features outside S at their baseline);
    M[i, j] = Shapley value of j in u_i(T) = φ_i(f, x_{T∪{i}}). ``extras["data_to_feature"][i, j]`` = how training
    point j moves the attribution of feature i; ``extras["feature_to_data"][j, i]`` = how feature i moves the value of
    training point j.

    ``kwargs``: :func:`feature_data_adapter`'s options (X_test, y_test, train, k, utility, baseline, feature_names,
    players, train_seed, empty_value) and the run options.

    Example:
        >>> res = explain_feature_data(X[:6], y[:6], X_test=x, y_test=label, k=3)      # KNN closed form
        >>> res.extras["data_to_feature"]                                                # [n_features, 6]
    """
    return explain_application(feature_data_adapter, "explain_feature_data", (X, y), method, method_kwargs, options, kwargs)

__all__ = ["DataMethodName", "data_adapter", "data_method", "explain_data", "explain_feature_data", "feature_data_adapter"]
