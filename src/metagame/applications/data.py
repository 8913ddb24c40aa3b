"""Meta-attributions over training points: how the presence of training point j changes the
attribution (data value) of training point i, M[i, j] = Shapley value of j in
u_i(T) = ψ_i(model trained on T ∪ {i}).

    >>> from metagame.applications.data import explain_data
    >>> res = explain_data(X, y, X_test=Xt, y_test=yt)                 # KNN utility, KNN-Shapley inside
    >>> res = explain_data(X, y, X_test=Xt, y_test=yt, train=LogisticRegression(), method="occlusion")
"""

from __future__ import annotations

from typing import Any, Callable, Literal, Sequence

from ..api import Estimator, explain
from ..errors import MetagameError
from ..meta.tables import Value, Variant
from ..methods.base import AttributionMethod
from ..methods.data import GradientInfluence, KNNShapley
from ..methods.registry import ALIASES, get_method
from ..models.data import DataModel, KNNDataModel, UtilityName
from ..results.result import MetaAttribution

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
        try:
            if key == "knn_shapley":
                return KNNShapley(**kwargs)
            if key == "gradient_influence":
                return GradientInfluence(**kwargs)
        except TypeError as exc:
            raise MetagameError(f"method {key!r} got unexpected options {sorted(kwargs)}: {exc}") from None
        return get_method(key, kwargs)
    return get_method(method, method_kwargs)


def data_game(
    X,
    y,
    *,
    X_test,
    y_test,
    train: Any = None,
    k: int = 5,
    utility: UtilityName | Callable = "accuracy",
    seed: int = 0,
    empty_value: float = 0.0,
    players: Sequence[str] | None = None,
) -> DataModel | KNNDataModel:
    """The data adapter: the closed-form KNN utility when ``train`` is None, else train-on-subset
    (a scikit-learn estimator or ``train(X_sub, y_sub, seed) -> model``) scored by ``utility``."""
    if train is None:
        if utility != "accuracy":
            raise MetagameError("the closed-form KNN utility is the KNN likelihood of the test label; pass train=... to use another utility")
        return KNNDataModel(X, y, X_test=X_test, y_test=y_test, k=k, players=players)
    return DataModel(X, y, train=train, X_test=X_test, y_test=y_test, utility=utility, seed=seed, empty_value=empty_value, players=players)


def explain_data(
    X,
    y,
    *,
    X_test,
    y_test,
    train: Any = None,
    method: DataMethodName | AttributionMethod | Any = None,
    method_kwargs: dict | None = None,
    k: int = 5,
    utility: UtilityName | Callable = "accuracy",
    variant: Variant = "metagame",
    value: Value = "shapley",
    budget: int | None = None,
    seed: int | None = 0,
    estimator: Estimator = "auto",
    empty_value: float = 0.0,
    players: Sequence[str] | None = None,
    progress: bool | None = None,
) -> MetaAttribution:
    """Data meta-attributions M[i, j] (row = target training point, column = source); rows sum to
    the first-order data values φ_i (KNN-Shapley, Data Shapley, leave-one-out, ...).

    Args:
        X, y: training set; X_test, y_test: a test point or test set.
        train: None for the closed-form KNN utility, else an estimator or training function.
        method: inner data-attribution method; default ``knn_shapley`` for the KNN utility, else ``shapley``.
        budget: None for exact enumeration (2^n coalitions); else attribution calls for the sampling estimator.
        seed: training seed of the data game and seed of the estimator.
    """
    model = data_game(
        X, y, X_test=X_test, y_test=y_test, train=train, k=k, utility=utility, seed=0 if seed is None else seed,
        empty_value=empty_value, players=players,
    )
    if method is None:
        method = "knn_shapley" if train is None else "shapley"
    inner = data_method(method, method_kwargs)
    return explain(model, inner, variant=variant, value=value, budget=budget, seed=seed, estimator=estimator, progress=progress)
